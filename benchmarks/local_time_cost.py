"""Cost of FRAUDSTREAM_LOCAL_TIMEZONE: the feature math with UTC (no conversion) and with a zone.

Run by hand (prints figures, asserts nothing)::

    .venv/bin/python benchmarks/local_time_cost.py [--zone America/New_York] [--batch 2000] [--repeat 200]

Prints, per `--batch`-row batch, the µs per row of `local_seconds_array` alone for batches spanning
a few minutes, 5 hours (the handbook's ~10,000 transactions a day), a day and a year (every row in an
hour of its own: the worst case), and of `derive_matrix` (every feature) and `derive` (one row at a
time) with UTC and with the zone. The transactions and aggregates are those of tests/test_feature_math.py.

Measured 2026-12-07 (2 shared cores, best of 300, batches of 2,000 over 5 hours): with UTC,
`derive_matrix` 1.81-1.91 µs per row against 1.83-1.90 before the setting (the same: UTC is not
converted); with America/New_York 1.89-1.95 µs (the conversion alone 0.013-0.017 µs per row for a
batch of minutes or hours, 0.03 for a day, 1.6 for a batch whose every row is in an hour of its own);
`derive` one row at a time 5.3-5.7 µs with UTC, 6.7 with the zone (zoneinfo for each row, ~1.1 µs:
only batches of fewer than 32 rows take it).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.test_feature_math's cases

from fraudstream.stream.feature_math import FeatureConfig, derive, derive_matrix  # noqa: E402
from fraudstream.stream.local_time import local_seconds_array  # noqa: E402
from tests.test_feature_math import case  # noqa: E402

T0 = int(datetime(2024, 3, 10, tzinfo=timezone.utc).timestamp())  # a day with New York's DST change


def best_us(run: Callable[[], object], repeat: int) -> float:
    """The fastest of `repeat` runs, in µs."""
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - began)
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zone", default="America/New_York")
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    n, zone = args.batch, ZoneInfo(args.zone)
    rng = np.random.default_rng(1)
    print(f"local_seconds_array, {args.zone}, µs per row of a {n}-row batch:")
    for label, span in (("10 minutes", 600), ("5 hours", 5 * 3600), ("1 day", 86400), ("1 year", 366 * 86400)):
        seconds = np.sort(T0 + rng.integers(0, span, n)).astype(np.int64)
        print(f"  spanning {label:>10}: {best_us(lambda: local_seconds_array(seconds, zone), args.repeat) / n:.3f}")

    cases = [case(random.Random(i), i) for i in range(n)]
    times = sorted(T0 * 1000 + int(x) * 1000 for x in rng.integers(0, 5 * 3600, n))
    cases = [(tx, t, cents, cust, term) for (tx, _, cents, cust, term), t in zip(cases, times)]
    columns = list(zip(*cases))
    for name in ("UTC", args.zone):
        config = FeatureConfig(local_timezone=name)
        matrix = best_us(lambda: derive_matrix(*columns, config), args.repeat) / n
        rows = best_us(lambda: [derive(*c, config) for c in cases], max(1, args.repeat // 10)) / n
        print(f"{name:>20}: derive_matrix {matrix:.3f} µs per row, derive {rows:.3f} µs per row")


if __name__ == "__main__":
    main()
