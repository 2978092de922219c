"""Redis bytes per customer and per terminal in steady state: after 40 days of traffic (the handbook's, or a recorded file's).

Run by hand (prints figures, asserts nothing)::

    .venv/bin/python benchmarks/feature_state_memory.py [--days 40] [--batch 1000] [--file FILE]

40 days by default, so that every string holds all it keeps: a customer's 30-day windows (its
events of 30 days and 1 hour, and up to 6 hours more before a cut) and a terminal's windows 7
days in the past (37 days and 1 hour, and up to 6 more hours). After 30 days, as measured until
2026-12-06, the terminals' strings held only 30 days of their 37.

Streams the first `days` days of ../shared/data/fdh_dev.csv.gz (~1.9 transactions per customer per
day) or FILE (`fraudstream record`'s: ~2.2, with coordinates) through the Redis store of an
embedded Valkey server started here (stopped at the end), like the consumer: per batch, the labels arrived so far (7 days after their transactions), then
`transform` and `record_scored` with one score per transaction. Then measures every key with
MEMORY USAGE (SAMPLES 0: exact) and prints the mean bytes per customer (its event string = feature
state; its share of the terminals' event strings; scored records waiting for their label,
separately) and per terminal, and the server's used_memory (`measure`, which
`consumer_throughput.py` calls too). Not included: what only a running
consumer keeps, such as each label's "applied" marker (a field of an hourly hash for ~2 days after
its label, ~33 B by MEMORY USAGE: ~4 per customer at 2 labels a day; docs/performance.md).
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import redis

from fraudstream.config import Settings
from fraudstream.constants import CUSTOMER_COORDINATES, CUSTOMER_EVENTS, TERMINAL_EVENTS
from fraudstream.models.events import Label
from fraudstream.producer.files import read_recorded
from fraudstream.producer.recorded import labels_for
from fraudstream.services import valkey_process
from fraudstream.stream.features import FeatureEngine
from fraudstream.stream.state.redis_store import RedisStore

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "fdh_dev.csv.gz"
DELAY = timedelta(days=7)
CHAMPION = Settings.model_fields["model"].default  # the default model's name, as a consumer keeps it with each score
PREFIX = "mem"
SUFFIXES = {CUSTOMER_EVENTS: "ev", CUSTOMER_COORDINATES: "geo", TERMINAL_EVENTS: "ev"}


def stream_days(store: RedisStore, days: int, batch: int, data: Path = DATA) -> tuple[int, float]:
    """Transactions streamed and seconds taken."""
    engine = FeatureEngine(store)
    pending: deque[Label] = deque()
    chunk: list = []
    first = None
    count = 0
    start = time.perf_counter()

    def flush() -> None:
        xs = engine.transform(chunk)
        kept = [(tx, x) for tx, x in zip(chunk, xs) if x is not None]
        engine.record_scored([tx for tx, _ in kept], [x for _, x in kept], [{CHAMPION: 0.01}] * len(kept))
        chunk.clear()

    for rec in read_recorded(data):
        tx = rec.transaction
        first = first or tx.event_time
        if tx.event_time >= first + timedelta(days=days):
            break
        if not chunk:  # like a consumer poll batch: the labels that have arrived, then the transactions
            due = []
            while pending and pending[0].reported_at <= tx.event_time:
                due.append(pending.popleft())
            if due:
                engine.apply_labels(due)
        chunk.append(tx)
        label = labels_for(rec, DELAY)
        if label is not None:
            pending.append(label)
        count += 1
        if len(chunk) >= batch:
            flush()
    if chunk:
        flush()
    return count, time.perf_counter() - start


def kind_of(key: str) -> str:
    """The kind of a fraudstream Redis key: its customer's or terminal's key suffix (``ev``, ``geo``),
    the hours of scored records, or the registry's key name."""
    if ":{c:" in key:
        return f"customer {SUFFIXES.get(key.rsplit(':', 1)[1], 'other')}"
    if ":{t:" in key:
        return f"terminal {SUFFIXES.get(key.rsplit(':', 1)[1], 'other')}"
    if ":{r:" in key:
        return "record hours"
    if ":models}:" in key:
        return "registry " + key.split(":models}:", 1)[1].split(":", 1)[0]
    return "other"


def key_bytes(client: redis.Redis, match: str = f"{PREFIX}:*") -> dict[str, list[int]]:
    """MEMORY USAGE of every key matching `match`, grouped by `kind_of`; SAMPLES 0 measures every
    field of a hash."""
    keys = list(client.scan_iter(match=match, count=5000))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.execute_command("MEMORY", "USAGE", key, "SAMPLES", "0")
    sizes = pipe.execute()
    kinds: dict[str, list[int]] = defaultdict(list)
    for key, size in zip(keys, sizes):
        kinds[kind_of(key.decode())].append(int(size or 0))
    return kinds


@dataclass(frozen=True)
class MemoryFigures:
    """Mean bytes per customer (and per terminal) by `MEMORY USAGE` after `days` days of traffic."""

    days: int
    transactions: int
    seconds: float
    customers: int
    terminals: int
    customer_state: float  # its events and coordinates strings
    terminal_share: float  # the terminals' strings over the customers
    records: float  # scored records waiting for their labels
    per_terminal: float
    used_memory_mb: float
    kinds: dict[str, list[int]]

    @property
    def feature_state(self) -> float:
        return self.customer_state + self.terminal_share

    @property
    def total(self) -> float:
        return self.feature_state + self.records


STEADY_DAYS = 40  # every retention filled (see the module docstring)


def measure(days: int = STEADY_DAYS, batch: int = 1000, data: Path = DATA) -> MemoryFigures:
    """Stream the first `days` days of `data` (the handbook by default) through a Valkey server of its
    own and measure its keys."""
    if not data.exists():
        raise SystemExit(f"needs {data}")
    server = valkey_process()
    server.start()
    try:
        client = redis.Redis(port=server.port)
        try:
            count, seconds = stream_days(RedisStore(client, prefix=PREFIX), days, batch, data)
            kinds = key_bytes(client)
            used_mb = client.info("memory")["used_memory"] / 1e6
        finally:
            client.close()
    finally:
        server.stop()
    customers, terminals = len(kinds.get("customer ev", [])), len(kinds.get("terminal ev", []))
    terminal_state = sum(kinds.get("terminal ev", []))
    return MemoryFigures(days, count, seconds, customers, terminals,
                         (sum(kinds.get("customer ev", [])) + sum(kinds.get("customer geo", []))) / customers,
                         terminal_state / customers, sum(kinds.get("record hours", [])) / customers,
                         terminal_state / terminals, used_mb, kinds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=STEADY_DAYS)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--file", type=Path, default=DATA,
                        help="a recorded file (e.g. of `fraudstream record`, whose transactions have coordinates)")
    args = parser.parse_args()
    m = measure(args.days, args.batch, args.file)
    print(f"streamed {m.transactions:,} transactions ({m.days} days) in {m.seconds:.1f} s: "
          f"{m.transactions / m.seconds:,.0f} tx/s (transform + record_scored + apply_labels, batches of {args.batch})")
    for kind, sizes in sorted(m.kinds.items()):
        print(f"  {kind:14s} {len(sizes):6,} keys, mean {sum(sizes) / len(sizes):7,.0f} B, max {max(sizes):7,} B")
    print(f"{m.transactions / m.customers / m.days:.2f} transactions a customer a day")
    print(f"per customer: feature state {m.customer_state:,.0f} B, its share of the terminals' state "
          f"{m.terminal_share:,.0f} B; scored records waiting for labels {m.records:,.0f} B; total {m.total:,.0f} B")
    print(f"per terminal: {m.per_terminal:,.0f} B")
    print(f"server used_memory: {m.used_memory_mb:,.1f} MB for {m.customers:,} customers and {m.terminals:,} terminals")


if __name__ == "__main__":
    main()
