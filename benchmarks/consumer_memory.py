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
from datetime import timedelta

import redis
from consumer_throughput import DATA, labels, publish_backlog, transactions
from feature_state_memory import key_bytes

from fraudstream.config import Settings
from fraudstream.kafka_io import ensure_topics
from fraudstream.services import embedded_services
from fraudstream.stream.app import scoring_consumer


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
    with embedded_services(Settings()) as settings:
        ensure_topics(settings)
        publish_backlog(settings, txs, due)
        with scoring_consumer(settings) as app:
            started = time.perf_counter()
            app.run(max_transactions=len(txs))
            seconds = time.perf_counter() - started
            learned = app.stats.labels_learned
        client = redis.Redis.from_url(settings.redis_url or "")
        kinds = key_bytes(client, match="*")
        used_mb = client.info("memory")["used_memory"] / 1e6
        client.close()
    customers = len(kinds["customer ev"])
    print(f"{len(txs):,} transactions ({args.days} days) and {len(due):,} labels consumed in {seconds:.1f} s "
          f"({learned:,} labels learned); {customers:,} customers")
    for kind, sizes in sorted(kinds.items(), key=lambda item: -sum(item[1])):
        print(f"  {kind:24s} {len(sizes):8,} keys {sum(sizes) / 1e6:8.2f} MB {sum(sizes) / customers:8,.0f} B per customer")
    keys, total = sum(map(len, kinds.values())), sum(map(sum, kinds.values()))
    print(f"  {'all keys':24s} {keys:8,} keys {total / 1e6:8.2f} MB {total / customers:8,.0f} B per customer; "
          f"the server's used_memory {used_mb:,.1f} MB")


if __name__ == "__main__":
    main()
