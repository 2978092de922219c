"""Feature-engine throughput: MemoryStore with one call per transaction, the Redis store with batches.

Run by hand (prints figures, asserts nothing)::

    .venv/bin/python benchmarks/features_throughput.py [--rows 200000] [--redis-rows 100000] [--batch 1000]

Uses the first rows of ../shared/data/fdh_dev.csv.gz when present (handbook traffic: ~2 transactions
per customer per day), otherwise a synthetic stream with the same rates. The Redis figure is for an
embedded Valkey server started here (stopped at the end), one client, `batch` transactions per
`transform` call, labels applied between batches like the consumer does; with it, the CPU time the
server spent per transaction (its scripts' cost: `--warmup 150000` gives ~30 days of state first).
"""

from __future__ import annotations

import argparse
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

from fraudstream.models.events import Label, Transaction
from fraudstream.stream.features import FeatureEngine
from fraudstream.stream.state import MemoryStore, StateStore

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "fdh_dev.csv.gz"
DELAY = timedelta(days=7)


def transform_after_labels(engine: FeatureEngine, pending: deque[Label], chunk: list[Transaction]) -> None:
    """As a consumer's batch: apply the pending labels (in report-time order) reported by the chunk's
    first event time, then transform the chunk."""
    due = []
    while pending and pending[0].reported_at <= chunk[0].event_time:
        due.append(pending.popleft())
    if due:
        engine.apply_labels(due)
    engine.transform(chunk)


def load(rows: int) -> tuple[list[Transaction], list[bool]]:
    """Transactions and fraud flags: the handbook file when present, else synthetic."""
    if DATA.exists():
        from fraudstream.producer.files import read_recorded

        txs, frauds = [], []
        for rec in read_recorded(DATA):
            txs.append(rec.transaction)
            frauds.append(bool(rec.is_fraud))
            if len(txs) >= rows:
                break
        return txs, frauds
    t0 = datetime(2018, 4, 1, tzinfo=timezone.utc)
    step = 86400.0 / 10_000  # 10k transactions a day, 5k customers, 10k terminals
    txs = [Transaction(transaction_id=str(i), customer_id=str((i * 7919) % 5000), terminal_id=str((i * 104729) % 10_000),
                       amount=1.0 + (i * 37) % 20_000 / 100, event_time=t0 + timedelta(seconds=i * step))
           for i in range(rows)]
    return txs, [i % 125 == 0 for i in range(rows)]


def run(store: StateStore, txs: list[Transaction], frauds: list[bool], batch: int, warmup: int = 0,
        on_start: Callable[[], None] | None = None) -> float:
    """Seconds to transform `txs[warmup:]` in batches of `batch` (after `txs[:warmup]`, untimed),
    applying labels `DELAY` after each (labels are built before the clock starts: their
    construction is the caller's cost, not the engine's). `on_start` is called when the clock starts."""
    engine = FeatureEngine(store)
    labels = [Label(transaction_id=tx.transaction_id, customer_id=tx.customer_id, terminal_id=tx.terminal_id,
                    is_fraud=fraud, event_time=tx.event_time, reported_at=tx.event_time + DELAY)
              for tx, fraud in zip(txs, frauds)]
    pending: deque[Label] = deque()
    start = time.perf_counter()
    for i in range(0, len(txs), batch):
        if i == warmup:
            if on_start is not None:
                on_start()
            start = time.perf_counter()
        chunk = txs[i:i + batch]
        transform_after_labels(engine, pending, chunk)
        pending.extend(labels[i:i + batch])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="transactions for the MemoryStore run")
    parser.add_argument("--redis-rows", type=int, default=100_000, help="transactions for the Redis run (0: skip)")
    parser.add_argument("--batch", type=int, default=1000, help="transactions per transform call on Redis")
    parser.add_argument("--warmup", type=int, default=0,
                        help="transactions run first, untimed (e.g. 300000: ~30 days of state, the steady size)")
    args = parser.parse_args()

    txs, frauds = load(args.warmup + max(args.rows, args.redis_rows))
    w = args.warmup
    source = DATA.name if DATA.exists() else "synthetic"
    print(f"stream: {len(txs)} transactions ({source})")

    n = args.rows
    seconds = run(MemoryStore(), txs[:w + n], frauds[:w + n], batch=1, warmup=w)
    print(f"MemoryStore, transform([tx]) per transaction: {n / seconds:,.0f} tx/s ({seconds:.1f} s for {n}"
          f" after {w} untimed)")

    if args.redis_rows:
        from fraudstream.services import valkey_process
        from fraudstream.stream.state.redis_store import RedisStore

        import redis

        server = valkey_process()
        server.start()
        try:
            client = redis.Redis(port=server.port)
            n = args.redis_rows
            server_cpu: list[float] = []

            def cpu_now() -> None:
                info = client.info("cpu")
                server_cpu.append(info["used_cpu_user"] + info["used_cpu_sys"])

            seconds = run(RedisStore(client, prefix="bench"), txs[:w + n], frauds[:w + n], batch=args.batch,
                          warmup=w - w % args.batch, on_start=cpu_now)
            cpu_now()
            print(f"Redis store (Valkey, one client), batches of {args.batch}: {n / seconds:,.0f} tx/s "
                  f"({seconds:.1f} s for {n} after {w - w % args.batch} untimed); Valkey CPU "
                  f"{(server_cpu[1] - server_cpu[0]) / n * 1e6:.1f} us per transaction")
            client.close()
        finally:
            server.stop()


if __name__ == "__main__":
    main()
