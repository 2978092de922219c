"""Feature names (the vector order) and the scored-record codec shared by the feature engine and the
Redis store.

A scored record is what a transaction was scored with, kept until its label arrives:
``StoredRecord(t_ms, terminal_id, features, scores)``. Redis keeps it in a hash per hour of its
event time, so the record holds its time within that hour, and a reader gives `decode_record` a
time of the same hour (the label's or the transaction's).

>>> x = dict.fromkeys(FEATURE_NAMES, 1.0) | {"TX_AMOUNT": 12.5, "customer_amount_zscore_30d": -0.1}
>>> rec = StoredRecord(1_522_540_800_000, "m", x, {"logreg": 0.25})
>>> decode_record(encode_record(rec), rec.t_ms) == rec
True
>>> msgpack.unpackb(encode_record(rec))[2][:5]  # amount in cents, whole numbers as integers, a mean left out
[1250, 1, 1, 1, None]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any, NamedTuple

import msgpack
import numpy as np

HANDBOOK_FEATURES: tuple[str, ...] = (
    "TX_AMOUNT", "TX_DURING_WEEKEND", "TX_DURING_NIGHT",
    "CUSTOMER_ID_NB_TX_1DAY_WINDOW", "CUSTOMER_ID_AVG_AMOUNT_1DAY_WINDOW",
    "CUSTOMER_ID_NB_TX_7DAY_WINDOW", "CUSTOMER_ID_AVG_AMOUNT_7DAY_WINDOW",
    "CUSTOMER_ID_NB_TX_30DAY_WINDOW", "CUSTOMER_ID_AVG_AMOUNT_30DAY_WINDOW",
    "TERMINAL_ID_NB_TX_1DAY_WINDOW", "TERMINAL_ID_RISK_1DAY_WINDOW",
    "TERMINAL_ID_NB_TX_7DAY_WINDOW", "TERMINAL_ID_RISK_7DAY_WINDOW",
    "TERMINAL_ID_NB_TX_30DAY_WINDOW", "TERMINAL_ID_RISK_30DAY_WINDOW",
)
EXTRA_FEATURES: tuple[str, ...] = (
    "customer_nb_tx_10min", "customer_nb_tx_1h", "customer_sum_amount_1h", "customer_mean_amount_1h",
    "customer_sum_amount_1d", "customer_sum_amount_7d", "customer_seconds_since_prev_tx",
    "customer_amount_over_mean_30d", "customer_amount_zscore_30d", "customer_nb_terminals_24h",
    "customer_first_use_of_terminal_30d", "terminal_nb_tx_1h", "has_coordinates",
    "customer_distance_from_home_km", "customer_distance_from_prev_km", "customer_speed_from_prev_kmh",
    # the terminal's newest transactions whose labels are due (the window of TERMINAL_ID_RISK_30DAY_WINDOW)
    "terminal_nb_last_3", "terminal_frauds_of_last_3", "terminal_last_is_fraud", "terminal_days_since_fraud",
)
FEATURE_NAMES: tuple[str, ...] = HANDBOOK_FEATURES + EXTRA_FEATURES

_EXACT = 2.0 ** 53


class StoredRecord(NamedTuple):
    t_ms: int
    terminal_id: str
    features: dict[str, float]
    scores: dict[str, float]
    alert: bytes | None = None  # the alert published for it, sent again as is if it is delivered again


class ScoredRows(NamedTuple):
    """The scored records of a batch, by column (row i is transaction i's): what the consumer keeps
    without building a features dict per transaction."""

    customer_ids: list[str]
    transaction_ids: list[str]
    t_ms: list[int]
    terminal_ids: list[str]
    features: np.ndarray  # one row per transaction, columns in `FEATURE_NAMES` order
    scores: list[dict[str, float]]
    alerts: list[bytes | None]

    def records(self) -> list[tuple[str, str, StoredRecord]]:
        """(customer_id, transaction_id, record) per row."""
        return [(c, t, StoredRecord(ms, term, dict(zip(FEATURE_NAMES, row)), dict(s), a))
                for c, t, ms, term, row, s, a in zip(self.customer_ids, self.transaction_ids, self.t_ms,
                                                     self.terminal_ids, self.features.tolist(), self.scores, self.alerts)]


# sums and means of amounts: whole cents (an amount of 57.16 as 5716: 3 bytes instead of 9)
MONEY_FEATURES: tuple[str, ...] = (
    "TX_AMOUNT", "CUSTOMER_ID_AVG_AMOUNT_1DAY_WINDOW", "CUSTOMER_ID_AVG_AMOUNT_7DAY_WINDOW",
    "CUSTOMER_ID_AVG_AMOUNT_30DAY_WINDOW", "customer_sum_amount_1h", "customer_mean_amount_1h",
    "customer_sum_amount_1d", "customer_sum_amount_7d",
)
_MONEY = [FEATURE_NAMES.index(name) for name in MONEY_FEATURES]
_UNIT = np.array([100.0 if i in _MONEY else 1.0 for i in range(len(FEATURE_NAMES))])
IN_ORDER = itemgetter(*FEATURE_NAMES)  # a features dict's values in `FEATURE_NAMES` order
HOUR_MS = 3_600_000

# Features that follow from others, computed as the feature engine computes them
# (`feature_math.derive`): a record packs nil for one where that gives back exactly its float.
# The means of the 1-hour, 1-day and 7-day windows are their sums over their counts; the ratio of
# the amount to the customer's previous 30-day mean needs that window's sum of cents, which comes
# back from its mean and count.
_I = FEATURE_NAMES.index
_MEANS = tuple((_I(mean), _I(total), _I(count)) for mean, total, count in (
    ("customer_mean_amount_1h", "customer_sum_amount_1h", "customer_nb_tx_1h"),
    ("CUSTOMER_ID_AVG_AMOUNT_1DAY_WINDOW", "customer_sum_amount_1d", "CUSTOMER_ID_NB_TX_1DAY_WINDOW"),
    ("CUSTOMER_ID_AVG_AMOUNT_7DAY_WINDOW", "customer_sum_amount_7d", "CUSTOMER_ID_NB_TX_7DAY_WINDOW")))
_RATIO, _AMOUNT, _MEAN_30D, _NB_30D = (_I("customer_amount_over_mean_30d"), _I("TX_AMOUNT"),
                                       _I("CUSTOMER_ID_AVG_AMOUNT_30DAY_WINDOW"), _I("CUSTOMER_ID_NB_TX_30DAY_WINDOW"))
DERIVED_FEATURES: tuple[str, ...] = tuple(FEATURE_NAMES[m] for m, _, _ in _MEANS) + (FEATURE_NAMES[_RATIO],)


def encode_record(rec: StoredRecord) -> bytes:
    """msgpack of (t_ms within its hour, terminal, the features in `FEATURE_NAMES` order, scores[,
    alert]); `decode_record` gives back the same floats."""
    values = np.array([IN_ORDER(rec.features)], dtype=np.float64)
    return encode_records([rec.t_ms], [rec.terminal_id], values, [rec.scores], [rec.alert])[0]


def encode_records(t_ms: Sequence[int], terminal_ids: Sequence[str], features: np.ndarray,
                   scores: Sequence[Mapping[str, float]], alerts: Sequence[bytes | None]) -> list[bytes]:
    """`encode_record` of every row of a batch (`features`: one row per record), losslessly and by
    column: a whole number is packed as an integer (counts, flags, zero risks and distances: 1 byte
    for most instead of 9), a money feature that is a whole number of cents as its cents
    (`MONEY_FEATURES`), a derivable one (`DERIVED_FEATURES`) as nil, any other value (and -0.0,
    NaN, infinities) as a float."""
    pack = msgpack.Packer(use_bin_type=True).pack
    features = np.asarray(features, dtype=np.float64)  # the decoder derives in float64: so must the check
    return [pack([ms % HOUR_MS, term, row, s] if a is None else [ms % HOUR_MS, term, row, s, a])
            for ms, term, row, s, a in zip(t_ms, terminal_ids, _packed_values(features), scores, alerts)]


def _packed_values(features: np.ndarray) -> list[tuple[float | int, ...]]:
    """Each row's values as `encode_records` packs them: an int where dividing it by the column's
    unit (1, or 100 for money), as `decode_record` does, gives back exactly the float; the float
    otherwise. Built column by column: most columns of a batch are all ints or all floats."""
    with np.errstate(over="ignore", invalid="ignore"):  # huge values, inf and NaN: kept as floats below
        whole = np.round(features * _UNIT)
        exact = ((whole / _UNIT) == features) & (np.abs(whole) < _EXACT) & ~((features == 0.0) & np.signbit(features))
    every, some = exact.all(axis=0).tolist(), exact.any(axis=0).tolist()
    nil = {j: rows for j, rows in _derivable(features).items() if rows.any()}  # derivable: packed as nil
    columns = []
    for j in range(features.shape[1]):
        if j not in nil and every[j]:
            columns.append(whole[:, j].astype(np.int64).tolist())
        elif j not in nil and not some[j]:
            columns.append(features[:, j].tolist())
        else:
            mixed, ints = features[:, j].astype(object), exact[:, j]
            mixed[ints] = whole[ints, j].astype(np.int64).astype(object)
            if j in nil:
                mixed[nil[j]] = None
            columns.append(mixed.tolist())
    return list(zip(*columns))


def _derivable(features: np.ndarray) -> dict[int, np.ndarray]:
    """Per derived column, the rows whose value `decode_record` gives back bit for bit (from finite
    inputs, so that it never divides by zero or rounds an infinity)."""
    f = features
    with np.errstate(all="ignore"):
        derived = [(m, f[:, total] / f[:, count]) for m, total, count in _MEANS]
        amount, nb = f[:, _AMOUNT], f[:, _NB_30D]
        sum_cents, cents = np.rint(f[:, _MEAN_30D] * nb * 100.0), np.rint(amount * 100.0)
        previous_mean = (sum_cents - cents) / 100.0 / (nb - 1.0)
        ratio = amount / previous_mean
        ratio[~(np.isfinite(sum_cents) & np.isfinite(cents) & np.isfinite(previous_mean))] = np.nan
        derived.append((_RATIO, ratio))
    return {j: np.isfinite(d) & (d == f[:, j]) & (np.signbit(d) == np.signbit(f[:, j])) for j, d in derived}


def _ratio(values: list[Any]) -> float:
    """The ratio feature from the other values: `_derivable`'s arithmetic for one row, the same bits
    (its integers, the cents and counts, are exact as floats)."""
    amount, nb = values[_AMOUNT], values[_NB_30D]
    return amount / ((round(values[_MEAN_30D] * nb * 100.0) - round(amount * 100.0)) / 100.0 / (nb - 1.0))


class UnreadableRecord(NamedTuple):
    """A stored payload that `decode_record` cannot read (damaged, or written by a version whose
    layout this one does not know): why."""

    error: str


def read_record(payload: bytes, hour_of_ms: int) -> StoredRecord | UnreadableRecord:
    """`decode_record`, or why it failed, for the readers of stored records: an unreadable record
    costs its label (dead-lettered) or its redelivered transaction's stored alert (scored again),
    never the consumer (raising here would stop it on the same batch after every restart).

    >>> read_record(b"\\x93\\x01\\x02\\x03", 0)  # a list of three values, not a record
    UnreadableRecord(error='ValueError: not enough values to unpack (expected at least 4, got 3)')
    """
    try:
        return decode_record(payload, hour_of_ms)
    except Exception as exc:  # noqa: BLE001 - whatever the bytes are, decoding them must not raise
        return UnreadableRecord(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


def decode_record(payload: bytes, hour_of_ms: int) -> StoredRecord:
    """The record of `payload`, which Redis kept in the hash of the hour of `hour_of_ms` (epoch ms):
    a record holds its time within the hour (before 2026-12-05, the epoch ms itself)."""
    t_ms, terminal_id, values, scores, *alert = msgpack.unpackb(payload, raw=False)
    if len(values) != len(FEATURE_NAMES):  # another version's features: not to be learned as these
        raise ValueError(f"{len(values)} feature values, not the {len(FEATURE_NAMES)} of `FEATURE_NAMES`")
    if t_ms < HOUR_MS:  # an epoch ms is never this small: event times are from 1990 on (`events.MIN_EVENT_TIME`)
        t_ms += hour_of_ms - hour_of_ms % HOUR_MS
    for i in _MONEY:
        if type(values[i]) is int:  # cents (a record written before cents has a float here)
            values[i] /= 100
    for mean, total, count in _MEANS:  # derived features left out (their inputs never are)
        if values[mean] is None:
            values[mean] = values[total] / values[count]
    if values[_RATIO] is None:
        values[_RATIO] = _ratio(values)
    return StoredRecord(t_ms, terminal_id, dict(zip(FEATURE_NAMES, map(float, values))), scores, *alert)
