"""How the feature engine on Valkey slows as one terminal's event string grows (a busy merchant).

Run by hand (prints figures, asserts nothing)::

    .venv/bin/python benchmarks/busy_terminal.py [--per-day 20000] [--days 8] [--batch 500] [--budget 240]

Every transaction goes to one terminal (`per_day` a day, evenly spaced, 5,000 customers in turn),
through `FeatureEngine.transform` on a `RedisStore` of an embedded Valkey started here (stopped at
the end), `batch` at a time. Per simulated day: the rate, the terminal's string length, and the
CPU seconds of this process and of Valkey. Stops after `days` days or once `budget` seconds have
passed. The handbook's terminals see ~1 transaction a day; this is what a large merchant costs
(README, "What limits these figures"): every batch reads and writes the terminal's whole string
(37 days of events), while each transaction costs O(log n) (`terminal_blobs`).
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime, timedelta, timezone

import redis

from fraudstream.models.events import Transaction
from fraudstream.services import valkey_process
from fraudstream.stream.features import FeatureEngine
from fraudstream.stream.state.redis_store import RedisStore
from fraudstream.stream.state.terminal_blobs import TERMINAL_WIDTH

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-day", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=8)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--budget", type=float, default=240.0, help="stop after this many seconds")
    args = parser.parse_args()
    server = valkey_process()
    server.start()
    try:
        client = redis.Redis(port=server.port)
        store = RedisStore(client, prefix="busy")
        engine = FeatureEngine(store)
        step = 86_400 / args.per_day
        n = 0
        start = last = time.perf_counter()
        cpu_last, valkey_last = time.process_time(), 0.0
        for day in range(args.days):
            for _ in range(args.per_day // args.batch):
                engine.transform([Transaction(transaction_id=f"t{n + i}", customer_id=f"c{(n + i) % 5000}",
                                              terminal_id="big", amount=10.0,
                                              event_time=T0 + timedelta(seconds=(n + i) * step))
                                  for i in range(args.batch)])
                n += args.batch
            now, cpu = time.perf_counter(), time.process_time()
            info = client.info("cpu")
            valkey = info["used_cpu_sys"] + info["used_cpu_user"]
            size = client.strlen(store.terminal_key("big"))
            print(f"day {day + 1}: {n:,} transactions, the terminal's string {size:,} B "
                  f"({(size - 4) // TERMINAL_WIDTH:,} events), "
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
