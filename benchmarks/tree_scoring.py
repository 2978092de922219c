"""Scoring a batch with `gbt_window`'s trees: scikit-learn's ``predict_proba`` against the same
trees as arrays (`fraudstream.models.stacked_trees`), by batch size, run by hand:

    .venv/bin/python benchmarks/tree_scoring.py [--checkpoint FILE]

`--checkpoint`: a signed checkpoint of `gbt_window` (`fraudstream backtest --save-model`), its
trees and, as the rows scored, the labels it keeps; without one, trees of the same shape (depth 4,
100 rounds) fitted on 30,000 synthetic rows of 35 features. Prints, per batch size, the wall time
per batch of each (one OpenMP thread, as the consumer scores), their ratio, and whether the scores
are equal float for float; the consumer scores from the arrays up to `SMALL_BATCH` rows.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from fraudstream.config import Settings
from fraudstream.models import checkpoint
from fraudstream.models.boosted import _one_openmp_thread
from fraudstream.models.stacked_trees import SMALL_BATCH, StackedTrees


def synthetic_trees() -> tuple[Any, np.ndarray]:
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(30_000, 35)).astype(np.float32).astype(np.float64)
    y = (X[:, 0] * X[:, 1] + X[:, 2] > 1.5) | (rng.random(len(X)) < 0.01)
    with _one_openmp_thread():
        trees = HistGradientBoostingClassifier(max_depth=4, max_iter=100, early_stopping=False, random_state=0)
        return trees.fit(X, y), X


def checkpoint_trees(path: Path) -> tuple[Any, np.ndarray]:
    model = checkpoint.load_file(path, Settings().model_signing_key.get_secret_value()).model
    if getattr(model, "_trees", None) is None:
        raise SystemExit(f"{path}: not a gbt_window checkpoint with fitted trees")
    return model._trees, model._kept.matrix()[0].astype(np.float64)


def per_batch_ms(score: Callable[[], Any], batch: int) -> float:
    score()
    repeats = max(5, 4000 // batch)
    started = time.perf_counter()
    for _ in range(repeats):
        score()
    return (time.perf_counter() - started) / repeats * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", type=Path, default=None)
    args = parser.parse_args()
    trees, rows = checkpoint_trees(args.checkpoint) if args.checkpoint else synthetic_trees()
    started = time.perf_counter()
    with _one_openmp_thread():
        stacked = StackedTrees.of(trees, rows)
    if stacked is None:
        raise SystemExit("StackedTrees declined these trees (see the warning above)")
    print(f"{len(trees._predictors)} trees, depth {stacked.depth}, from "
          f"{args.checkpoint or '30,000 synthetic rows'}; arrays made and checked in "
          f"{(time.perf_counter() - started) * 1000:.1f} ms; the arrays score batches of up to {SMALL_BATCH} rows")
    print(f"{'rows':>6s} {'scikit-learn ms':>16s} {'arrays ms':>10s} {'ratio':>6s}  same scores")
    with _one_openmp_thread():
        for batch in (1, 10, 30, 100, 200, 400, 1000, 2000, 5000, 10000):
            if batch > len(rows):
                break
            X = rows[:batch]
            sk = per_batch_ms(lambda: trees.predict_proba(X), batch)
            arrays = per_batch_ms(lambda: stacked.proba(X), batch)
            same = bool(np.array_equal(stacked.proba(X), trees.predict_proba(X)[:, 1]))
            print(f"{batch:6d} {sk:16.3f} {arrays:10.3f} {sk / arrays:6.1f}  {same}")


if __name__ == "__main__":
    main()
