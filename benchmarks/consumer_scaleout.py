"""Scale-out by partitions: one scoring consumer process versus several in one group, run by hand:

    .venv/bin/python benchmarks/consumer_scaleout.py [--transactions 200000] [--consumers 1 2] [--rounds 2]

Per run: fresh embedded servers, the handbook's first N rows and their labels published as a
backlog (as `consumer_throughput.py` does), then K scoring processes started together in one
consumer group. Each process notes (time, transactions done) after every batch. The rate printed is
the steady state with all K working: transactions done by all of them between the moment the last
one finished its first batch and the moment the first one finished its last, over that time (so the
group join and the rebalance when the others join are left out, and so is the tail). Also the CPU
each process and Valkey used. Runs alternate between the values of K, so a busy machine affects them alike.
"""

from __future__ import annotations

import argparse
import multiprocessing
import queue
import time
from bisect import bisect_right
from typing import Any

from pydantic import SecretStr

from consumer_throughput import describe_data, labels, publish_backlog, transactions

from fraudstream.config import Settings
from fraudstream.kafka_io import ensure_topics
from fraudstream.services import embedded_services


def worker(settings: Settings, results: Any, idle_seconds: float) -> None:
    """One scoring process: run until idle, then report its (time, transactions done) marks."""
    import logging
    import os

    from fraudstream.stream.app import scoring_consumer

    if os.environ.get("SCALEOUT_LOG_DIR"):  # each process's log, for a run that looks wrong
        logging.basicConfig(filename=f"{os.environ['SCALEOUT_LOG_DIR']}/consumer-{os.getpid()}.log", level=logging.INFO,
                            format="%(asctime)s %(name)s %(levelname)s %(message)s")
    marks: list[tuple[float, int]] = []
    with scoring_consumer(settings) as app:
        process = app.process

        def noted(records: list[Any], prepared: Any = None) -> None:
            process(records, prepared)
            marks.append((time.monotonic(), app.stats.processed))

        app.process = noted  # type: ignore[method-assign]
        cpu = time.process_time()
        app.run(idle_timeout=idle_seconds)
        results.put((marks, time.process_time() - cpu, app.stats.labels_learned))


def done_at(marks: list[tuple[float, int]], moment: float) -> int:
    """Transactions a process had done at `moment` (its last mark at or before it)."""
    i = bisect_right([t for t, _ in marks], moment)
    return marks[i - 1][1] if i else 0


def run(k: int, n: int, idle_seconds: float) -> dict[str, float]:
    print(describe_data(n), flush=True)
    txs, frauds = transactions(n)
    due = labels(txs, frauds)
    # a key of its own: no warning about the built-in demo key from every process
    with embedded_services(Settings(model_signing_key=SecretStr("scaleout-benchmark"))) as settings:
        ensure_topics(settings)
        publish_backlog(settings, txs, due)
        valkey = _valkey_cpu(settings)
        ctx = multiprocessing.get_context("spawn")
        results = ctx.Queue()
        procs = [ctx.Process(target=worker, args=(settings, results, idle_seconds)) for _ in range(k)]
        for p in procs:
            p.start()
        reports = _reports(results, procs)
        valkey = _valkey_cpu(settings) - valkey
    marks = [m for m, _, _ in reports if m]
    start = max(m[0][0] for m in marks)
    end = min(m[-1][0] for m in marks)
    steady = sum(done_at(m, end) - done_at(m, start) for m in marks) / (end - start) if end > start else 0.0
    total = sum(m[-1][1] for m in marks)
    return {"steady": steady, "window": end - start, "total": total, "cpu": sum(c for _, c, _ in reports),
            "valkey": valkey, "learned": sum(x for _, _, x in reports), "labels": len(due), "workers": len(marks)}


def _reports(results: Any, procs: list[Any], timeout: float = 1800.0) -> list[Any]:
    """Each process's report; a process that ends without one (it failed: its traceback is above)
    ends the benchmark instead of leaving it waiting for the timeout."""
    reports: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(reports) < len(procs):
        try:
            reports.append(results.get(timeout=1.0))
            continue
        except queue.Empty:
            pass
        failed = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
        if failed or time.monotonic() > deadline:
            for p in procs:
                p.kill()
            raise SystemExit(f"a scoring process failed (exit codes {failed})" if failed
                             else f"no report from every scoring process in {timeout:.0f} s")
    for p in procs:
        p.join(timeout=60)
    return reports


def _valkey_cpu(settings: Settings) -> float:
    import redis

    client = redis.Redis.from_url(settings.redis_url or "")
    info = client.info("cpu")
    client.close()
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=200_000)
    parser.add_argument("--consumers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    args = parser.parse_args()
    print(f"{args.transactions:,} handbook transactions and their labels as a backlog; 3 partitions per topic")
    for r in range(args.rounds):
        for k in args.consumers:
            f = run(k, args.transactions, args.idle_seconds)
            print(f"round {r + 1}, {k} consumer(s): steady {f['steady']:,.0f} tx/s over {f['window']:.1f} s "
                  f"({int(f['workers'])} did work); {int(f['total']):,} scored (redeliveries after a rebalance count "
                  f"again), {int(f['learned']):,} of {int(f['labels']):,} labels learned; CPU: consumers "
                  f"{f['cpu']:.1f} s, Valkey {f['valkey']:.1f} s", flush=True)


if __name__ == "__main__":
    main()
