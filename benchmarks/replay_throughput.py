"""Replay throughput against the raw kafka-python producer, run by hand:

    .venv/bin/python benchmarks/replay_throughput.py [--rows 200000] [--repeats 2]

In one run on one embedded Tansu broker: (1) the raw producer rate — the same transactions and
labels, serialised beforehand, sent by a `KafkaProducer` with exactly the replay's settings
(`make_producer(settings)`: acks, linger, batch size, compression) and the same keys, partitioned by
the client's default partitioner as a plain ``producer.send(topic, key=..., value=...)`` loop would;
(2) `replay` of the file as fast as possible (read, check, serialise, send, labels); and their ratio
(target >= 0.70). The two alternate which goes first, so a broker that slows down as it fills does
not favour either. Rates are messages per second (a replayed row is one transaction and one label
message); the CPU ratio (process CPU time per message, both threads of the client) is printed too,
as it is steadier than wall time on a shared machine. Input: the first N rows of the handbook CSV
when present (``--input recorded``: a recorded simulation in our CSV format).
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

from fraudstream.config import Settings
from fraudstream.kafka_io import ensure_topics, make_producer
from fraudstream.producer.files import read_recorded
from fraudstream.producer.recorded import labels_for
from fraudstream.producer.recorder import record
from fraudstream.producer.replay import replay
from fraudstream.producer.simulator import SimulatorConfig
from fraudstream.services import embedded_services

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "fdh_dev.csv.gz"


def input_file(rows: int, folder: Path, kind: str) -> Path:
    path = folder / "input.csv"
    if kind == "handbook" and DATA.exists():
        with gzip.open(DATA, "rt") as src, path.open("w") as dst:
            dst.writelines(itertools.islice(src, rows + 1))
        return path
    record(path, days=max(1, rows // 10_000 + 1), config=SimulatorConfig())
    with path.open() as src:
        head = list(itertools.islice(src, rows + 1))
    path.write_text("".join(head))
    return path


def raw_rate(settings: Settings, messages: list[tuple[str, bytes, bytes]]) -> tuple[float, float]:
    """Messages per second of wall time and of process CPU time."""
    producer = make_producer(settings)
    began, cpu = time.perf_counter(), time.process_time()
    for topic, key, value in messages:
        producer.send(topic, key=key, value=value)
    producer.flush()
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    producer.close()
    return len(messages) / seconds, len(messages) / cpu


def replay_rate(settings: Settings, path: Path, delay: timedelta) -> tuple[float, float, float]:
    """Messages per second of wall time and of process CPU time, and rows per second."""
    cpu = time.process_time()
    stats = replay(settings, path, label_delay=delay)
    cpu = time.process_time() - cpu
    messages = stats.transactions + stats.labels
    return messages / stats.seconds, messages / cpu, stats.rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--input", choices=["handbook", "recorded"], default="handbook")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, \
            embedded_services(Settings(redis_url="redis://127.0.0.1:1/0")) as live:
        path = input_file(args.rows, Path(folder), args.input)
        delay = timedelta(days=7)
        messages: list[tuple[str, bytes, bytes]] = []
        labels: list[tuple[str, bytes, bytes]] = []
        for rec in read_recorded(path):
            key = rec.transaction.customer_id.encode()
            messages.append(("raw-tx", key, rec.transaction.to_json_bytes()))
            label = labels_for(rec, delay)
            if label is not None:
                labels.append(("raw-labels", key, label.to_json_bytes()))
        messages += labels
        print(f"input: {path.name} with {len(labels):,} rows; {len(messages):,} messages, "
              f"{sum(len(m[2]) for m in messages) / len(messages):.0f} bytes on average")
        for attempt in range(args.repeats):
            uid = uuid.uuid4().hex[:8]
            settings = live.model_copy(update={"topic_transactions": f"tx-{uid}", "topic_labels": f"labels-{uid}"})
            ensure_topics(settings, [settings.topic_transactions, settings.topic_labels, "raw-tx", "raw-labels"])
            if attempt % 2 == 0:
                (raw, raw_cpu), (replayed, replayed_cpu, rows) = raw_rate(settings, messages), replay_rate(
                    settings, path, delay)
            else:
                (replayed, replayed_cpu, rows), (raw, raw_cpu) = replay_rate(settings, path, delay), raw_rate(
                    settings, messages)
            print(f"run {attempt + 1} ({'raw' if attempt % 2 == 0 else 'replay'} first): raw producer {raw:,.0f} "
                  f"msg/s | replay {replayed:,.0f} msg/s ({rows:,.0f} rows/s) | ratio {replayed / raw:.2f} "
                  f"| CPU ratio {replayed_cpu / raw_cpu:.2f}")


if __name__ == "__main__":
    main()
