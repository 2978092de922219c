"""The handbook's batch models on the same weeks as our backtest, run by hand (prints figures):

    .venv/bin/pip install -e '.[compare]'   # scikit-learn, xgboost, imbalanced-learn
    .venv/bin/python benchmarks/handbook_batch_models.py [--eval-start 2018-07-04] [--eval-end 2018-07-31]
        [--features handbook|all] [--cache features.npz]

The quality goal of issue 5 quotes the handbook's best test figures, which were measured on weeks
(2018-08-08 to 09-04) that the dev file does not hold. This script answers the question those
figures stand for on weeks we do have: what do the handbook's own batch models reach there?

Its protocol, per test week starting S: train on the week of transactions [S − delay − 7 d,
S − delay) with every label (a batch model retrained each week, as in the handbook's
prequential model selection), score the week [S, S + 7 d). The figures are computed by
`fraudstream.models.metrics` over the whole window, exactly as `fraudstream backtest` computes
ours (known-compromised rule, weekly means). Features are our feature code's, computed once for
the whole file (the handbook's 15 by default, or all of ours) with the in-memory store and fraud
marks applied when each label is due, as in the backtest.

Every grid point is scored on the test weeks themselves, so the best row of each family is an
optimistic figure for the batch models (tuned on their test data); ours are not tuned that way.
"""

from __future__ import annotations

import argparse
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from fraudstream.models import metrics
from fraudstream.producer.files import read_recorded
from fraudstream.stream.backtest_pipeline import feature_chunks
from fraudstream.stream.features import FeatureEngine
from fraudstream.stream.schema import FEATURE_NAMES, HANDBOOK_FEATURES
from fraudstream.stream.state import MemoryStore

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "fdh_dev.csv.gz"
US_PER_DAY = 86_400_000_000


def features(path: Path, delay_days: int, cache: Path | None) -> dict[str, np.ndarray]:
    """Per transaction: day number, customer, fraud flag and the feature matrix (`FEATURE_NAMES` order)."""
    if cache is not None and cache.exists():
        with np.load(cache) as stored:
            return dict(stored)
    days, customers, frauds, rows = [], [], [], []
    started = time.perf_counter()
    engine = FeatureEngine(MemoryStore())
    for chunk in feature_chunks(read_recorded(path), engine, timedelta(days=delay_days)):
        for t, c, y, x in zip(chunk.times_us, chunk.customer_ids, chunk.frauds, chunk.features):
            if x is None:  # an id reused with other content: not scored by the backtest either
                continue
            days.append(t // US_PER_DAY)
            customers.append(c)
            frauds.append(y)
            rows.append([x[name] for name in FEATURE_NAMES])
    out = {"days": np.array(days, dtype=np.int64), "customers": np.array(customers),
           "frauds": np.array(frauds, dtype=np.int8), "x": np.array(rows, dtype=np.float64)}
    print(f"features of {len(days):,} transactions in {time.perf_counter() - started:.0f} s")
    if cache is not None:
        np.savez(cache, **out)
    return out


def grids() -> list[tuple[str, Any]]:
    """(name, factory) per grid point: the handbook's model families and the ranges it searched."""
    import imblearn.ensemble
    import imblearn.under_sampling
    import sklearn.ensemble
    import sklearn.linear_model
    import sklearn.pipeline
    import sklearn.preprocessing
    import sklearn.tree
    import xgboost

    out: list[tuple[str, Any]] = []
    for c in (0.1, 1.0, 10.0):
        out.append((f"logistic regression C={c}", lambda c=c: sklearn.pipeline.make_pipeline(
            sklearn.preprocessing.StandardScaler(), sklearn.linear_model.LogisticRegression(C=c, max_iter=1000))))
    for depth in (5, 10, 20):
        out.append((f"random forest depth={depth}", lambda depth=depth: sklearn.ensemble.RandomForestClassifier(
            n_estimators=100, max_depth=depth, n_jobs=2, random_state=0)))
    for depth in (3, 6):
        for n in (50, 100):
            for rate in (0.1, 0.3):
                out.append((f"XGBoost depth={depth} trees={n} rate={rate}",
                            lambda depth=depth, n=n, rate=rate: xgboost.XGBClassifier(
                                max_depth=depth, n_estimators=n, learning_rate=rate, n_jobs=2, random_state=0)))
    for ratio in (0.02, 0.05, 0.1, 0.5, 1.0):
        out.append((f"balanced bagging depth=20 trees=100 ratio={ratio}",
                    lambda ratio=ratio: imblearn.ensemble.BalancedBaggingClassifier(
                        estimator=sklearn.tree.DecisionTreeClassifier(max_depth=20, random_state=0), n_estimators=100,
                        sampling_strategy=ratio, bootstrap=True, sampler=imblearn.under_sampling.RandomUnderSampler(),
                        n_jobs=2, random_state=0)))
    return out


def weekly_scores(data: dict[str, np.ndarray], columns: list[int], factory: Any, start: int, end: int,
                  delay_days: int) -> np.ndarray:
    """Scores of every transaction of days [start, end] by a model retrained each week (0 elsewhere)."""
    days, y, x = data["days"], data["frauds"], data["x"][:, columns]
    scores = np.zeros(days.size)
    for week in range(start, end + 1, 7):
        train = (days >= week - delay_days - 7) & (days < week - delay_days)
        test = (days >= week) & (days <= min(week + 6, end))
        model = factory()
        model.fit(x[train], y[train])
        scores[test] = model.predict_proba(x[test])[:, 1]
    return scores


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--file", type=Path, default=DATA)
    parser.add_argument("--eval-start", type=date.fromisoformat, default=date(2018, 7, 4))
    parser.add_argument("--eval-end", type=date.fromisoformat, default=date(2018, 7, 31))
    parser.add_argument("--label-delay-days", type=int, default=7)
    parser.add_argument("--features", choices=("handbook", "all"), default="handbook")
    parser.add_argument("--cache", type=Path, help="keep the computed features in this .npz file")
    parser.add_argument("--only", help="run only grid points whose name contains this")
    args = parser.parse_args()
    data = features(args.file, args.label_delay_days, args.cache)
    names = HANDBOOK_FEATURES if args.features == "handbook" else FEATURE_NAMES
    columns = [FEATURE_NAMES.index(n) for n in names]
    start, end = metrics.day_number(args.eval_start), metrics.day_number(args.eval_end)
    print(f"weeks from {args.eval_start} to {args.eval_end}, label delay {args.label_delay_days} d, "
          f"{len(columns)} features ({args.features}); each week's model trained on the week ending "
          f"{args.label_delay_days} d before it")
    kept = metrics.prequential_metrics(data["days"], data["customers"], data["frauds"], np.zeros(data["days"].size),
                                       start, end, args.label_delay_days)
    print("evaluated per week (transactions / frauds): " + ", ".join(
        f"{w.n_transactions:,} / {w.n_frauds}" for w in kept.weeks))
    print(f"{'model':52s} {'AUC ROC':>8s} {'AP':>7s} {'CP@100':>7s} {'fit s':>6s}")
    for name, factory in grids():
        if args.only and args.only not in name:
            continue
        started = time.perf_counter()
        scores = weekly_scores(data, columns, factory, start, end, args.label_delay_days)
        m = metrics.prequential_metrics(data["days"], data["customers"], data["frauds"], scores, start, end,
                                        args.label_delay_days)
        print(f"{name:52s} {m.auc_roc:8.4f} {m.average_precision:7.4f} {m.card_precision_at_k:7.4f} "
              f"{time.perf_counter() - started:6.1f}", flush=True)


if __name__ == "__main__":
    main()
