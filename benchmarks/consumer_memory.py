"""Everything a scoring consumer keeps in Redis after a replay of the handbook's first days, by kind
of key, run by hand (prints figures, asserts nothing)::

    .venv/bin/python benchmarks/consumer_memory.py [--days 30]

Publishes the first `days` days of ../shared/data/fdh_dev.csv.gz with their labels (reported 7 days
after each transaction, interleaved as a replay publishes them) to the embedded broker, runs the
consumer over them as fast as it goes, then measures every key of its Redis with MEMORY USAGE
(SAMPLES 0: exact) and prints, per kind of key, the keys, their bytes and the bytes per customer,
and the server's used_memory. Unlike `feature_state_memory.py` (the feature engine alone) this has
what only a running consumer keeps: the labels' "applied" markers, the label stream, the model
checkpoints and the score lists. A replay compresses event time: what lives for a wall-clock time
(the markers and scored records' retention, the checkpoints' cadence) holds more event time here
than it would live.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from datetime import timedelta

import redis
from consumer_throughput import DATA, labels, publish_backlog, transactions

from fraudstream.config import Settings
from fraudstream.kafka_io import ensure_topics
from fraudstream.services import embedded_services
from fraudstream.stream.app import scoring_consumer


def kind_of(key: str) -> str:
    """The kind of a consumer's Redis key: its entity's key suffix, or the registry's key name."""
    if ":{c:" in key:
        return f"customer {key.rsplit(':', 1)[1]}"
    if ":{t:" in key:
        return f"terminal {key.rsplit(':', 1)[1]}"
    if ":{r:" in key:
        return "scored records (hours)"
    if ":models}:" in key:
        return "registry " + key.split(":models}:", 1)[1].split(":", 1)[0]
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()
    if not DATA.exists():
        raise SystemExit(f"needs {DATA}")
    txs, frauds = transactions(args.days * 11_000)  # ~9,600 a day in the handbook: then cut at the day
    end = txs[0].event_time + timedelta(days=args.days)
    txs = [tx for tx in txs if tx.event_time < end]
    due = labels(txs, frauds)
    with embedded_services(Settings(max_poll_records=2000)) as settings:
        ensure_topics(settings)
        publish_backlog(settings, txs, due)
        with scoring_consumer(settings) as app:
            started = time.perf_counter()
            app.run(max_transactions=len(txs))
            seconds = time.perf_counter() - started
            learned = app.stats.labels_learned
        client = redis.Redis.from_url(settings.redis_url or "")
        keys = list(client.scan_iter(count=5000))
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.execute_command("MEMORY", "USAGE", key, "SAMPLES", "0")
        sizes = pipe.execute()
        kinds: defaultdict[str, list[int]] = defaultdict(lambda: [0, 0])
        for key, size in zip(keys, sizes):
            entry = kinds[kind_of(key.decode())]
            entry[0] += 1
            entry[1] += int(size or 0)
        used_mb = client.info("memory")["used_memory"] / 1e6
        client.close()
    customers = kinds["customer ev"][0]
    print(f"{len(txs):,} transactions ({args.days} days) and {len(due):,} labels consumed in {seconds:.1f} s "
          f"({learned:,} labels learned); {customers:,} customers")
    for kind, (count, size) in sorted(kinds.items(), key=lambda item: -item[1][1]):
        print(f"  {kind:24s} {count:8,} keys {size / 1e6:8.2f} MB {size / customers:8,.0f} B per customer")
    total = sum(size for _, size in kinds.values())
    print(f"  {'all keys':24s} {len(keys):8,} keys {total / 1e6:8.2f} MB {total / customers:8,.0f} B per customer; "
          f"the server's used_memory {used_mb:,.1f} MB")


if __name__ == "__main__":
    main()
