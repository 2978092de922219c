"""How the feature engine on Valkey slows as one terminal's event string grows (a busy merchant),
or one card's (`--card`).

Run by hand (prints figures, asserts nothing)::

    .venv/bin/python benchmarks/busy_terminal.py [--per-day 20000] [--days 8] [--batch 500] [--budget 240]
                                                 [--fraud-every 0] [--card]

Every transaction goes to one terminal (`per_day` a day, evenly spaced, 5,000 customers in turn),
through `FeatureEngine.transform` on a `RedisStore` of an embedded Valkey started here (stopped at
the end), `batch` at a time. Per simulated day: the rate, the terminal's string length, and the
CPU seconds of this process and of Valkey. Stops after `days` days or once `budget` seconds have
passed. `--fraud-every k`: every k-th transaction is a fraud, its label applied (a fraud mark on
the terminal) 7 days of event time later, before the batch it falls in. The handbook's terminals see ~1 transaction a day; this is what a large merchant costs
(README, "What limits these figures"): every batch reads and writes the terminal's whole string
(37 days of events), while each transaction costs O(log n) (`terminal_blobs`). `--card`: every
transaction on one card instead, at 5,000 terminals in turn (a test card, a fleet card, a
card-testing attack): its 30 days of events are read once a batch, and counted by binary search
(`busy_customers`).
"""

from __future__ import annotations

import argparse
import time
from collections import deque
from datetime import datetime, timedelta, timezone

import redis
from features_throughput import transform_after_labels

from fraudstream.models.events import Label, Transaction
from fraudstream.services import valkey_process
from fraudstream.stream.features import FeatureEngine
from fraudstream.stream.state.blobs import CUSTOMER_WIDTH
from fraudstream.stream.state.redis_store import RedisStore
from fraudstream.stream.state.terminal_blobs import MARK_WIDTH, TERMINAL_WIDTH, split_terminal

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-day", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=8)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--budget", type=float, default=240.0, help="stop after this many seconds")
    parser.add_argument("--fraud-every", type=int, default=0, help="every k-th transaction a fraud (0: none)")
    parser.add_argument("--card", action="store_true", help="every transaction on one card, terminals in turn")
    args = parser.parse_args()
    server = valkey_process()
    server.start()
    try:
        client = redis.Redis(port=server.port)
        store = RedisStore(client, prefix="busy")
        engine = FeatureEngine(store)
        step = 86_400 / args.per_day
        n = 0
        pending: deque[Label] = deque()
        start = last = time.perf_counter()
        cpu_last, valkey_last = time.process_time(), 0.0
        for day in range(args.days):
            for _ in range(args.per_day // args.batch):
                batch = [Transaction(transaction_id=f"t{n + i}", amount=10.0,
                                     customer_id="big" if args.card else f"c{(n + i) % 5000}",
                                     terminal_id=f"m{(n + i) % 5000}" if args.card else "big",
                                     event_time=T0 + timedelta(seconds=(n + i) * step))
                         for i in range(args.batch)]
                transform_after_labels(engine, pending, batch)
                if args.fraud_every:
                    pending.extend(Label(transaction_id=t.transaction_id, customer_id=t.customer_id,
                                         terminal_id=t.terminal_id, event_time=t.event_time, is_fraud=True,
                                         reported_at=t.event_time + timedelta(days=7))
                                   for k, t in enumerate(batch, start=n) if k % args.fraud_every == 0)
                n += args.batch
            now, cpu = time.perf_counter(), time.process_time()
            info = client.info("cpu")
            valkey = info["used_cpu_sys"] + info["used_cpu_user"]
            if args.card:
                blob = client.get(store.customer_keys("big")[0]) or b""
                held = f"the card's string {len(blob):,} B ({len(blob) // CUSTOMER_WIDTH:,} events)"
            else:
                blob = client.get(store.terminal_key("big")) or b""
                marks, events = split_terminal(blob)
                held = (f"the terminal's string {len(blob):,} B ({len(events) // TERMINAL_WIDTH:,} events, "
                        f"{len(marks) // MARK_WIDTH:,} fraud marks)")
            print(f"day {day + 1}: {n:,} transactions, {held}, "
                  f"{args.per_day // args.batch * args.batch / (now - last):,.0f} tx/s this day; CPU this process "
                  f"{cpu - cpu_last:.1f} s, Valkey {valkey - valkey_last:.1f} s", flush=True)
            last, cpu_last, valkey_last = now, cpu, valkey
            if now - start > args.budget:
                break
        client.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
