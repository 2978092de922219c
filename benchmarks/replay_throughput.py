"""Replay throughput against the raw kafka-python producer, run by hand:

    .venv/bin/python benchmarks/replay_throughput.py [--rows 200000] [--repeats 2]

In one run on one embedded Tansu broker: (1) the raw producer rate — the same transactions and
labels, serialised beforehand, sent with the same producer settings and keys; (2) `replay` of the
file as fast as possible (read, check, serialise, send, labels); and their ratio (target >= 0.70).
Rates are messages per second (a replayed row is one transaction and one label message). Input:
the first N rows of the handbook CSV when present, else a recorded simulation.
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
from fraudstream.producer.files import labels_for, read_recorded
from fraudstream.producer.recorder import record
from fraudstream.producer.replay import replay
from fraudstream.producer.simulator import SimulatorConfig
from fraudstream.services import embedded_services

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "fdh_dev.csv.gz"


def input_file(rows: int, folder: Path) -> Path:
    path = folder / "input.csv"
    if DATA.exists():
        with gzip.open(DATA, "rt") as src, path.open("w") as dst:
            dst.writelines(itertools.islice(src, rows + 1))
        return path
    record(path, days=max(1, rows // 10_000 + 1), config=SimulatorConfig())
    with path.open() as src:
        head = list(itertools.islice(src, rows + 1))
    path.write_text("".join(head))
    return path


def raw_rate(settings: Settings, messages: list[tuple[str, bytes, bytes]]) -> float:
    producer = make_producer(settings)
    began = time.perf_counter()
    for topic, key, value in messages:
        producer.send(topic, key=key, value=value)
    producer.flush()
    seconds = time.perf_counter() - began
    producer.close()
    return len(messages) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, \
            embedded_services(Settings(redis_url="redis://127.0.0.1:1/0")) as live:
        path = input_file(args.rows, Path(folder))
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
            raw = raw_rate(settings, messages)
            stats = replay(settings, path, label_delay=delay)
            replayed = (stats.transactions + stats.labels) / stats.seconds
            print(f"run {attempt + 1}: raw producer {raw:,.0f} msg/s | replay {replayed:,.0f} msg/s "
                  f"({stats.rate:,.0f} rows/s) | ratio {replayed / raw:.2f}")


if __name__ == "__main__":
    main()
