"""Where the consumer's time goes, step by step, run by hand:

    .venv/bin/python benchmarks/consumer_steps.py [--transactions 100000] [--checkpoint FILE]

Runs the bulk part of `consumer_throughput.py` (the handbook's first rows and their labels, or a
synthetic stream; the default model fresh, or the champion from a checkpoint) and prints, per step
of a batch, its wall time, the consumer thread's CPU time and the difference: the time the thread
waited (for Redis, the broker, or the GIL held by kafka-python's network thread); also the CPU
time the servers used meanwhile and Valkey's own command statistics (scripts are EVALSHA). Steps
nest (`process` contains `_score`, which contains the Redis feature calls; `Preparation.step`, the
decoding of the batches taken ahead, runs in the waits on Redis, and what is left of a batch when
it is taken, outside `process`). The timers are
wrappers installed on the classes for this run only.
"""

from __future__ import annotations

import argparse
import functools
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from consumer_throughput import champion_fits, describe_data, import_champion, labels, publish_backlog, transactions
from process_stats import GcTimes, server_cpu, thread_cpu

from fraudstream.config import Settings
from fraudstream.kafka_io import ensure_topics
from fraudstream.services import embedded_services
from fraudstream.stream import consumer, decode, lifecycle, scoring
from fraudstream.stream.app import scoring_consumer
from fraudstream.stream.state import redis_entities, redis_store

STEPS: list[tuple[type, str]] = [
    (consumer.ScoringConsumer, "process"), (consumer.ScoringConsumer, "prepare"), (decode.Preparation, "step"),
    (consumer.ScoringConsumer, "_score"), (consumer.ScoringConsumer, "_learn"),
    (consumer.ScoringConsumer, "_append_labels"), (consumer.ScoringConsumer, "_commit"),
    (consumer.ScoringConsumer, "_flush"),
    (scoring.Scorer, "score_matrix"), (scoring.Scorer, "submit_labels"), (scoring.Scorer, "maintain"), (scoring.Scorer, "maintenance"),
    *[(redis_store.RedisStore, name) for name in ("begin_customers", "begin_terminals", "put_rows",
                                                   "peek_records", "mark_frauds", "drop_records")],
    (redis_entities.CustomerUpdate, "conflicts"), (redis_entities.CustomerUpdate, "results"),
    (redis_entities.TerminalUpdate, "results"), (lifecycle.Lifecycle, "catch_up"),
]


def install_timers(totals: dict[str, list[float]]) -> None:
    """Wrap every step so that it adds [wall s, thread CPU s, calls] to `totals`."""
    for owner, name in STEPS:
        setattr(owner, name, _timed(getattr(owner, name), totals[f"{owner.__name__}.{name}"]))


def _timed(original: Callable[..., Any], entry: list[float]) -> Callable[..., Any]:
    @functools.wraps(original)
    def timed(*args: Any, **kwargs: Any) -> Any:
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return original(*args, **kwargs)
        finally:
            entry[0] += time.perf_counter() - wall
            entry[1] += time.thread_time() - cpu
            entry[2] += 1

    return timed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--transactions", type=int, default=100_000)
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="start from this signed checkpoint (fraudstream backtest --save-model) as the champion")
    args = parser.parse_args()
    print(describe_data(args.transactions), flush=True)
    txs, frauds = transactions(args.transactions)
    bulk_labels = labels(txs, frauds)
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    with embedded_services(Settings()) as settings:
        ensure_topics(settings)
        publish_backlog(settings, txs, bulk_labels)
        model = import_champion(settings, args.checkpoint)
        with scoring_consumer(settings) as app:
            install_timers(totals)
            servers, threads = server_cpu(), thread_cpu()
            fits = champion_fits(app)
            wall, cpu = time.perf_counter(), time.process_time()
            with GcTimes() as gc_pauses:
                app.run(max_transactions=len(txs))
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            fits = champion_fits(app) - fits
            threads = {name: used - threads.get(name, 0.0) for name, used in thread_cpu().items()}
            servers = {name: used - servers.get(name, 0.0) for name, used in server_cpu().items()}
            with redis.Redis.from_url(settings.redis_url) as client:
                commands = client.info("commandstats")
    stats = app.stats
    rate = stats.throughput  # after the first batch (until 2026-12-04 that batch's transactions were counted)
    print(f"champion: {model}")
    print(f"{len(txs):,} transactions, {len(bulk_labels):,} labels: {rate:,.0f} tx/s; run {wall:.2f} s wall, "
          f"{cpu:.2f} s CPU of all the consumer's threads")
    print("the consumer's threads' CPU during the run: " + ", ".join(
        f"{name} {used:.2f} s" for name, used in sorted(threads.items(), key=lambda kv: -kv[1]) if used >= 0.01))
    print(f"garbage collector during the run: {gc_pauses.summary()}; the champion's tree fits: {fits}")
    print("servers' CPU during the run: " + ", ".join(f"{name} {used:.2f} s" for name, used in sorted(servers.items())))
    print("Valkey commands (whole session): " + ", ".join(
        f"{name.removeprefix('cmdstat_')} {c['calls']} calls {c['usec'] / 1e6:.2f} s" for name, c in
        sorted(commands.items(), key=lambda kv: -kv[1]["usec"])[:6]))
    print(f"{'step':40s} {'wall s':>8s} {'CPU s':>8s} {'waited s':>8s} {'calls':>6s} {'wall us/tx':>10s}")
    for key, (w, c, n) in sorted(totals.items(), key=lambda kv: -kv[1][0]):
        print(f"{key:40s} {w:8.2f} {c:8.2f} {w - c:8.2f} {int(n):6d} {w / len(txs) * 1e6:10.1f}")


if __name__ == "__main__":
    main()
