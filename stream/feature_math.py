"""Feature math: the feature vector of a transaction from its customer's and terminal's window
aggregates. Pure functions, no I/O.

`derive` computes one transaction's vector (a dict in `FEATURE_NAMES` order); `derive_matrix`
computes a whole batch's as the rows of a numpy matrix, with the same floats: every operation is
IEEE double arithmetic in the same order (integer sums stay integers until they are divided, as
Python's do), and the great-circle distances, whose `math` sin/cos/asin numpy might round
differently, are computed row by row with `haversine_km` itself. The tests hold the two equal.

>>> from fraudstream.models.events import Transaction
>>> from datetime import datetime, timezone
>>> tx = Transaction(transaction_id="t", customer_id="c", terminal_id="m", amount=30.0,
...                  event_time=datetime(2018, 4, 7, 3, 0, tzinfo=timezone.utc))
>>> cust = (2, 5000, 2, 5000, 2, 5000, 13_000_000, 1, 3000, 1, 600_000, 1, 1, 0, 0, 0, 0, 0, 0)
>>> term = (4, 1, 9, 1, 20, 2, 1, 3, 1, 0, 172_800_000)
>>> t_ms = 1_523_070_000_000
>>> x = derive(tx, t_ms, 3000, cust, term, FeatureConfig())
>>> x["customer_amount_over_mean_30d"], x["TERMINAL_ID_RISK_1DAY_WINDOW"], x["terminal_days_since_fraud"]
(1.5, 0.25, 2.0)
>>> m = derive_matrix([tx], [t_ms], [3000], [cust], [term], FeatureConfig())
>>> m.tolist()[0] == list(x.values())
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import numpy as np

from fraudstream.models.events import Transaction
from fraudstream.stream.local_time import local_seconds, local_seconds_array, zone_named
from fraudstream.stream.schema import FEATURE_NAMES

NO_PREVIOUS_SECONDS = 30 * 86400.0  # seconds since previous transaction when there is none in 30 days
EARTH_RADIUS_KM = 6371.0088
NO_FRAUD_DAYS = 60.0  # terminal_days_since_fraud without a known fraud in its window (at most ~37 days)
MAX_RATIO = 1000.0
MAX_ZSCORE = 50.0
MAX_SPEED_KMH = 20000.0
# Sums of squared cents a batch may hold in int64 for `derive_matrix` (they can pass int64 for
# enormous amounts: such a batch is derived row by row, with Python's integers).
_INT64_SAFE = 2 ** 62
# Below this many transactions, one at a time is faster than numpy's per-column passes (~0.1 ms a batch).
MIN_MATRIX_ROWS = 32
_GEO_COLUMNS = slice(FEATURE_NAMES.index("customer_distance_from_home_km"),
                     FEATURE_NAMES.index("customer_speed_from_prev_kmh") + 1)


@dataclass(frozen=True)
class FeatureConfig:
    """Knobs of the derived features (window lengths live in `fraudstream.stream.state.Windows`).

    `local_timezone`: the IANA zone whose wall clock `TX_DURING_WEEKEND` and `TX_DURING_NIGHT` read
    (DST included); UTC (the default, the handbook's) reads the event time as it is.

    >>> FeatureConfig().zone is None, FeatureConfig(local_timezone="Asia/Kolkata").zone
    (True, zoneinfo.ZoneInfo(key='Asia/Kolkata'))
    """

    min_gap_seconds_for_speed: float = 60.0
    local_timezone: str = "UTC"
    zone: ZoneInfo | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "zone", zone_named(self.local_timezone))  # (frozen)

    @classmethod
    def from_settings(cls, settings: object) -> FeatureConfig:
        """The knobs of the settings (`fraudstream.config.Settings`)."""
        return cls(local_timezone=getattr(settings, "local_timezone", "UTC"))


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance.

    >>> round(haversine_km(48.8566, 2.3522, 51.5074, -0.1278))
    344
    """
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def _distances(lat: float, lon: float, cust: Sequence[float], config: FeatureConfig) -> tuple[float, float, float]:
    """(from home, from the previous transaction, speed from it) of a transaction with coordinates;
    the aggregated coordinates are in microdegrees."""
    prev_dt, hlat, hlon, hn, plat, plon, pcoord = cust[10], *cust[13:]
    home_km = prev_km = speed = 0.0
    if hn > 0:
        home_km = haversine_km(lat, lon, hlat / hn / 1e6, hlon / hn / 1e6)
    if pcoord:
        prev_km = haversine_km(lat, lon, plat / 1e6, plon / 1e6)
        hours = max(prev_dt / 1000.0, config.min_gap_seconds_for_speed) / 3600.0
        speed = min(MAX_SPEED_KMH, prev_km / hours)
    return home_km, prev_km, speed


def derive(tx: Transaction, t_ms: int, cents: int, cust: Sequence[float], term: Sequence[float],
           config: FeatureConfig) -> dict[str, float]:
    """The feature vector (in `FEATURE_NAMES` order) from the transaction, its amount in cents and
    its customer and terminal aggregates (`CUSTOMER_AGGREGATES`, `TERMINAL_AGGREGATES`).

    Ratio and z-score compare the amount with the customer's *previous* transactions of 30 days.
    """
    nb1, c1, nb7, c7, nb30, c30, sq30, nbh, ch, nb10, prev_dt, nterms, seen = cust[:13]
    ta, fa, tb, fb, tc, fc, th, n3, f3, last_fraud, fraud_age = term
    amount = tx.amount
    seconds = t_ms // 1000
    if config.zone is not None:  # the wall clock of the zone (UTC: the event time as it is)
        seconds = local_seconds(seconds, config.zone)
    weekday = (seconds // 86400 + 3) % 7  # 1970-01-01 was a Thursday
    hour = (seconds % 86400) // 3600

    prev_n = nb30 - 1
    if prev_n > 0:
        mean_prev = (c30 - cents) / 100.0 / prev_n
        ratio = min(MAX_RATIO, amount / mean_prev) if mean_prev > 0 else MAX_RATIO
        var = max(0.0, (sq30 - cents * cents) / 1e4 / prev_n - mean_prev * mean_prev)
        std = math.sqrt(var)
        z = max(-MAX_ZSCORE, min(MAX_ZSCORE, (amount - mean_prev) / std)) if std >= 0.01 else 0.0
    else:
        ratio, z = 1.0, 0.0

    lat, lon = tx.latitude, tx.longitude
    has_coords = lat is not None and lon is not None
    home_km, prev_km, speed = _distances(lat, lon, cust, config) if has_coords else (0.0, 0.0, 0.0)  # type: ignore[arg-type]

    return dict(zip(FEATURE_NAMES, (
        amount, float(weekday >= 5), float(hour <= 6),
        float(nb1), c1 / 100.0 / nb1, float(nb7), c7 / 100.0 / nb7, float(nb30), c30 / 100.0 / nb30,
        float(ta), fa / ta if ta else 0.0, float(tb), fb / tb if tb else 0.0, float(tc), fc / tc if tc else 0.0,
        # extras, in EXTRA_FEATURES order
        float(nb10), float(nbh), ch / 100.0, ch / 100.0 / nbh, c1 / 100.0, c7 / 100.0,
        prev_dt / 1000.0 if prev_dt >= 0 else NO_PREVIOUS_SECONDS, ratio, z,
        float(nterms), float(not seen), float(th), float(has_coords), home_km, prev_km, speed,
        float(n3), float(f3), float(last_fraud), fraud_age / 86_400_000 if fraud_age >= 0 else NO_FRAUD_DAYS,
    )))


def derive_matrix(txs: Sequence[Transaction], times: Sequence[int], cents: Sequence[int],
                  cust: Sequence[Sequence[float]], term: Sequence[Sequence[float]], config: FeatureConfig) -> np.ndarray:
    """`derive` of every transaction, as the rows of a float64 matrix (columns in `FEATURE_NAMES` order).

    Fewer than `MIN_MATRIX_ROWS` transactions, or enormous amounts, are derived one at a time."""
    n = len(txs)
    if n == 0:
        return np.empty((0, len(FEATURE_NAMES)), dtype=np.float64)
    if n < MIN_MATRIX_ROWS or max(row[6] for row in cust) >= _INT64_SAFE or max(map(abs, cents)) >= 2 ** 31:
        return np.array([list(derive(*args, config).values()) for args in zip(txs, times, cents, cust, term)],
                        dtype=np.float64)
    cents_a = np.array(cents, dtype=np.int64)
    nb1, c1, nb7, c7, nb30, c30, sq30, nbh, ch, nb10, prev_dt, nterms, seen = np.array(cust, dtype=np.int64).T[:13]
    ta, fa, tb, fb, tc, fc, th, n3, f3, last_fraud, fraud_age = np.array(term, dtype=np.int64).T
    amount = np.array([tx.amount for tx in txs], dtype=np.float64)
    seconds = np.array(times, dtype=np.int64) // 1000
    if config.zone is not None:
        seconds = local_seconds_array(seconds, config.zone)
    weekday = (seconds // 86400 + 3) % 7
    hour = (seconds % 86400) // 3600

    prev_n = nb30 - 1
    has_prev = prev_n > 0
    mean_prev = (c30 - cents_a) / 100.0 / np.where(has_prev, prev_n, 1)
    positive = has_prev & (mean_prev > 0)
    ratio = np.where(positive, np.minimum(MAX_RATIO, amount / np.where(positive, mean_prev, 1.0)),
                     np.where(has_prev, MAX_RATIO, 1.0))
    var = np.maximum(0.0, (sq30 - cents_a * cents_a) / 1e4 / np.where(has_prev, prev_n, 1) - mean_prev * mean_prev)
    std = np.sqrt(var)
    spread = has_prev & (std >= 0.01)
    z = np.where(spread, np.maximum(-MAX_ZSCORE, np.minimum(MAX_ZSCORE, (amount - mean_prev) / np.where(spread, std, 1.0))),
                 0.0)

    columns = (
        amount, weekday >= 5, hour <= 6,
        nb1, c1 / 100.0 / nb1, nb7, c7 / 100.0 / nb7, nb30, c30 / 100.0 / nb30,
        ta, _share(fa, ta), tb, _share(fb, tb), tc, _share(fc, tc),
        nb10, nbh, ch / 100.0, ch / 100.0 / nbh, c1 / 100.0, c7 / 100.0,
        np.where(prev_dt >= 0, prev_dt / 1000.0, NO_PREVIOUS_SECONDS), ratio, z,
        nterms, seen == 0, th, 0.0, 0.0, 0.0, 0.0,  # coordinates: below
        n3, f3, last_fraud, np.where(fraud_age >= 0, fraud_age / 86_400_000, NO_FRAUD_DAYS),
    )
    out = np.empty((n, len(FEATURE_NAMES)), dtype=np.float64)
    for j, column in enumerate(columns):
        out[:, j] = column
    has_coords = FEATURE_NAMES.index("has_coordinates")
    for i, tx in enumerate(txs):
        if tx.latitude is not None and tx.longitude is not None:
            out[i, has_coords] = 1.0
            out[i, _GEO_COLUMNS] = _distances(tx.latitude, tx.longitude, cust[i], config)
    return out


def _share(part: np.ndarray, whole: np.ndarray) -> np.ndarray:
    """part / whole, 0.0 where whole is 0."""
    out = np.zeros(len(part), dtype=np.float64)
    np.divide(part, whole, out=out, where=whole != 0)
    return out

