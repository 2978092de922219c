"""The feature engine on Valkey with a larger population: rate, Valkey's CPU and bytes per customer, day by day.

Run by hand (prints figures, asserts nothing)::

    .venv/bin/python benchmarks/population_scale.py [--customers 100000] [--days 4] [--delay-days 1]

Simulates `customers` customers and twice as many terminals (`fraudstream record`'s simulator, the
same habits as its default 5,000: ~2.15 transactions a customer a day), with the radius a customer
shops in shrunk so that each still has the ~78 terminals nearby it has at the default density: the
same activity per customer and per terminal, a larger world. Streams the days through the Redis
store of an embedded Valkey server started here (stopped at the end) as `feature_state_memory.py`
does (per batch, the labels due, then `transform` and `record_scored`), and prints for each day the
engine's rate (the file is simulated in memory, not read: only the engine's calls are timed),
Valkey's CPU per transaction, and the bytes per customer at the end by `MEMORY USAGE`. Run it with
`--customers 5000` for the same figures at the default size. Labels come `--delay-days` after
their transactions (1 by default, so that a short run has them; 7 live), kept as plain tuples here
so that this process holds little that grows with the population.
"""

from __future__ import annotations

import argparse
import math
import time
from collections import deque
from datetime import timedelta

import redis
from feature_state_memory import CHAMPION, PREFIX, key_bytes

from fraudstream.models.events import Label
from fraudstream.producer.simulator import Simulator, SimulatorConfig
from fraudstream.services import valkey_process
from fraudstream.stream.features import FeatureEngine
from fraudstream.stream.state.redis_store import RedisStore

DEFAULT = SimulatorConfig()  # 5,000 customers, 10,000 terminals, a radius of 5 grid units


def config_for(customers: int) -> SimulatorConfig:
    """`customers` and twice as many terminals, each customer with as many nearby as by default."""
    terminals = 2 * customers
    radius = DEFAULT.radius * math.sqrt(DEFAULT.terminals / terminals)  # the same terminals in its circle
    return SimulatorConfig(customers=customers, terminals=terminals, radius=radius)


def server_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"] + info["used_cpu_sys"])


def stream(client: redis.Redis, config: SimulatorConfig, days: int, delay: timedelta, batch: int) -> int:
    """Stream `days` days, printing each day's figures; returns the transactions streamed."""
    engine = FeatureEngine(RedisStore(client, prefix=PREFIX))
    pending: deque[tuple] = deque()  # (reported at, transaction id, customer, terminal, fraud, event time)
    total = 0
    for day, records in enumerate(Simulator(config).days(days), start=1):
        rows = list(records.records())
        engine_s, cpu0 = 0.0, server_cpu(client)
        for i in range(0, len(rows), batch):
            chunk = rows[i:i + batch]
            txs = [r.transaction for r in chunk]
            due = []
            while pending and pending[0][0] <= txs[0].event_time:
                at, tid, cid, term, fraud, t = pending.popleft()
                due.append(Label(transaction_id=tid, customer_id=cid, terminal_id=term, is_fraud=fraud,
                                 event_time=t, reported_at=at))
            start = time.perf_counter()
            if due:
                engine.apply_labels(due)
            xs = engine.transform(txs)
            kept = [(tx, x) for tx, x in zip(txs, xs) if x is not None]
            engine.record_scored([tx for tx, _ in kept], [x for _, x in kept], [{CHAMPION: 0.01}] * len(kept))
            engine_s += time.perf_counter() - start
            pending.extend((tx.event_time + delay, tx.transaction_id, tx.customer_id, tx.terminal_id,
                            bool(r.is_fraud), tx.event_time) for tx, r in zip(txs, chunk))
        total += len(rows)
        print(f"day {day}: {len(rows):,} transactions, engine {len(rows) / engine_s:,.0f} tx/s, Valkey CPU "
              f"{(server_cpu(client) - cpu0) / len(rows) * 1e6:.1f} us a transaction", flush=True)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=4)
    parser.add_argument("--delay-days", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    config = config_for(args.customers)
    print(f"{config.customers:,} customers, {config.terminals:,} terminals, radius {config.radius:.3f}")
    server = valkey_process()
    server.start()
    try:
        client = redis.Redis(port=server.port)
        try:
            stream(client, config, args.days, timedelta(days=args.delay_days), args.batch)
            kinds = key_bytes(client)
            start = time.perf_counter()
            RedisStore(client, prefix=PREFIX)  # what a consumer's start does with the feature state
            opened = time.perf_counter() - start
            used = client.info("memory")["used_memory"]
        finally:
            client.close()
    finally:
        server.stop()
    customers = len(kinds.get("customer ev", []))
    for kind, sizes in sorted(kinds.items()):
        print(f"  {kind:14s} {len(sizes):8,} keys, {sum(sizes) / customers:7,.0f} B a customer")
    print(f"per customer: {sum(sum(s) for s in kinds.values()) / customers:,.0f} B by MEMORY USAGE, "
          f"{used / customers:,.0f} B of used_memory; the store opened in {opened * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
