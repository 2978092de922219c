"""Backtest speed on the handbook dev file, run by hand:

    .venv/bin/python benchmarks/backtest_speed.py [--model NAME] [--rows N]

Replays the file (default: all 1.17M rows) with the in-memory store and the default model (or
--model) as `fraudstream backtest` does (features in a forked worker, the model in this process)
and prints the wall time and transactions/s. `--one-process` uses the single-process `replay`
instead, and with `--profile` the time split between features (transform + record + labels) and
learning. Goal: the whole dev file in <= 180 s with the default model.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from datetime import date, timedelta
from pathlib import Path

from fraudstream.config import Settings
from fraudstream.models import zoo
from fraudstream.producer.files import read_recorded
from fraudstream.stream.backtest import BacktestOptions, Replay, evaluate, replay
from fraudstream.stream.backtest_pipeline import forked_chunks, score_chunks
from fraudstream.stream.gc_tuning import fewer_collections
from fraudstream.stream.features import FeatureEngine
from fraudstream.stream.state import MemoryStore

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "fdh_dev.csv.gz"


class Timed:
    """Wraps a callable and adds up the seconds spent in it."""

    def __init__(self, func):  # type: ignore[no-untyped-def]
        self.func, self.seconds = func, 0.0

    def __call__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        try:
            return self.func(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=Settings().model)
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--one-process", action="store_true", help="the single-process replay")
    parser.add_argument("--profile", action="store_true", help="with --one-process: time each stage")
    args = parser.parse_args()
    if not DATA.exists():
        sys.exit(f"data not found: {DATA}")
    model = zoo.make_model(args.model, 42)
    engine = FeatureEngine(MemoryStore())
    parts = {}
    if args.profile and args.one_process:
        for name in ("transform", "record_scored", "apply_labels"):
            parts[name] = Timed(getattr(engine, name))
            setattr(engine, name, parts[name])
        parts["learn"] = Timed(model.learn_one)
        model.learn_one = parts["learn"]  # type: ignore[method-assign]
    records = read_recorded(DATA)
    if args.rows:
        records = itertools.islice(records, args.rows)
    start = time.perf_counter()
    if args.one_process:
        run = replay(records, engine, model, args.model, timedelta(days=7))
    else:
        run = Replay()
        with fewer_collections():
            score_chunks(forked_chunks(records, engine, timedelta(days=7)), model, run)
    wall = time.perf_counter() - start
    n = len(run.scores)
    print(f"model {args.model}: {n} transactions in {wall:.1f} s = {n / wall:,.0f} tx/s "
          f"({run.n_labels_learned} labels learned)")
    for name, timer in parts.items():
        print(f"  {name:14s} {timer.seconds:7.1f} s  {1e6 * timer.seconds / n:6.1f} us/tx")
    if not args.rows:
        result = evaluate(run, BacktestOptions(model=args.model, eval_start=date(2018, 7, 4),
                                               eval_end=date(2018, 7, 31)), model)
        m = result.metrics
        print(f"  eval 2018-07-04..31: AUC {m.auc_roc:.4f}  AP {m.average_precision:.4f}  "
              f"CP@100 {m.card_precision_at_k:.4f}")
    if args.rows:
        print("partial run: the goal (<= 180 s) is for the whole file")
    else:
        print(f"goal <= 180 s for the whole file: {'met' if wall <= 180 else 'NOT met'} ({wall:.0f} s)")


if __name__ == "__main__":
    main()
