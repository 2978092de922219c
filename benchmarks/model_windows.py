"""Model quality on the handbook dev file, both windows, several seeds, run by hand:

    .venv/bin/python benchmarks/model_windows.py --models gbt_window,gam_under --seeds 42,43,44

Features never depend on the model, so the file is featurised once (`feature_chunks`, labels
applied as they fall due) into a cache (``--cache``, ~400 MB of float64; built when missing, ~80 s),
and each model then replays the cached features with the backtest's own `score_chunks` and
`evaluate`. Scores are prequential, so one replay up to 2018-07-31 gives the figures of both the
check weeks (2018-06-06..07-03) and the dev weeks (07-04..07-31), equal to two
`fraudstream backtest --eval-start ... --eval-end ...` runs. About 25-60 s per model and seed
(the model only) instead of ~70 s per window. Prints one JSON line per model and seed.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from fraudstream.config import Settings
from fraudstream.models import zoo
from fraudstream.producer.files import read_recorded
from fraudstream.stream.backtest import BacktestOptions, Replay, evaluate
from fraudstream.stream.backtest_pipeline import FeatureChunk, feature_chunks, score_chunks
from fraudstream.stream.features import FeatureConfig, FeatureEngine
from fraudstream.stream.gc_tuning import fewer_collections
from fraudstream.stream.state import MemoryStore, windows_for

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "fdh_dev.csv.gz"
WINDOWS = {"check": (date(2018, 6, 6), date(2018, 7, 3)), "dev": (date(2018, 7, 4), date(2018, 7, 31))}
DELAY = timedelta(days=7)


def build_cache(data: Path, cache: Path) -> None:
    """Features of every transaction up to the end of the last window, in file order."""
    settings = Settings()
    engine = FeatureEngine(MemoryStore(windows_for(settings)), FeatureConfig.from_settings(settings))
    end = datetime.combine(max(e for _, e in WINDOWS.values()) + timedelta(days=1), datetime.min.time(), timezone.utc)
    ids: list[str] = []
    customers: list[str] = []
    times: list[int] = []
    reports: list[int] = []
    frauds: list[int] = []
    rows: list[list[float]] = []
    names: tuple[str, ...] | None = None
    for c in feature_chunks(read_recorded(data, end=end), engine, DELAY):
        for x in c.features:
            if x is None or (names is not None and tuple(x) != names):
                raise SystemExit("a reused transaction id or a changing feature set: not cacheable")
            names = tuple(x)
            rows.append(list(x.values()))
        ids += c.transaction_ids
        customers += c.customer_ids
        times += c.times_us
        reports += c.report_us
        frauds += c.frauds
    np.savez(cache, names=np.array(names), X=np.array(rows, dtype=np.float64), ids=np.array(ids),
             customers=np.array(customers), times=np.array(times, dtype=np.int64),
             reports=np.array(reports, dtype=np.int64), frauds=np.array(frauds, dtype=np.int8))


def cached_chunks(d: dict, size: int = 20_000) -> Iterator[FeatureChunk]:
    names = [str(n) for n in d["names"]]
    for s in range(0, len(d["X"]), size):
        e = s + size
        yield FeatureChunk(d["ids"][s:e].tolist(), d["customers"][s:e].tolist(), d["times"][s:e].tolist(),
                           d["reports"][s:e].tolist(), d["frauds"][s:e].tolist(),
                           [dict(zip(names, r)) for r in d["X"][s:e].tolist()], [False] * len(d["X"][s:e]))


def run(d: dict, name: str, seed: int) -> dict:
    model = zoo.make_model(name, seed)
    out = Replay()
    started = time.perf_counter()
    with fewer_collections():
        score_chunks(cached_chunks(d), model, out)
    result: dict = {"model": name, "seed": seed, "replay_s": round(time.perf_counter() - started, 1)}
    for window, (start, end) in WINDOWS.items():
        m = evaluate(out, BacktestOptions(model=name, seed=seed, eval_start=start, eval_end=end), model).metrics
        result[window] = {"auc_roc": round(m.auc_roc, 4), "average_precision": round(m.average_precision, 4),
                          "card_precision_at_100": round(m.card_precision_at_k, 4)}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/fdh_dev_features.npz"))
    parser.add_argument("--models", default="gam_under")
    parser.add_argument("--seeds", default="42,43,44")
    args = parser.parse_args()
    if not args.cache.exists():
        build_cache(args.data, args.cache)
    d = dict(np.load(args.cache))
    for name in args.models.split(","):
        for seed in map(int, args.seeds.split(",")):
            print(json.dumps(run(d, name, seed)), flush=True)


if __name__ == "__main__":
    main()
