"""Feature names (the vector order) and the scored-record codec shared by the feature engine and the
Redis store.

A scored record is what a transaction was scored with, kept until its label arrives:
``StoredRecord(t_ms, terminal_id, features, scores)``.

>>> x = dict.fromkeys(FEATURE_NAMES, 1.0) | {"TX_AMOUNT": 12.5, "customer_amount_zscore_30d": -0.1}
>>> rec = StoredRecord(1_522_540_800_000, "m", x, {"logreg": 0.25})
>>> decode_record(encode_record(rec)) == rec
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import NamedTuple

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


# counts and flags: whole numbers, packed as integers (1 byte for most instead of 9), losslessly
_WHOLE = [i for i, name in enumerate(FEATURE_NAMES)
          if "_NB_" in name or "_nb_" in name or name.startswith(("TX_DURING", "has_")) or "first_use" in name
          or name.startswith(("terminal_frauds_", "terminal_last_is_"))]
IN_ORDER = itemgetter(*FEATURE_NAMES)  # a features dict's values in `FEATURE_NAMES` order


def encode_record(rec: StoredRecord) -> bytes:
    """msgpack of (t_ms, terminal, the features in `FEATURE_NAMES` order, scores[, alert]);
    `decode_record` gives back the same floats."""
    values = np.array([IN_ORDER(rec.features)], dtype=np.float64)
    return encode_records([rec.t_ms], [rec.terminal_id], values, [rec.scores], [rec.alert])[0]


def encode_records(t_ms: Sequence[int], terminal_ids: Sequence[str], features: np.ndarray,
                   scores: Sequence[Mapping[str, float]], alerts: Sequence[bytes | None]) -> list[bytes]:
    """`encode_record` of every row of a batch (`features`: one row per record), by column: the
    whole-number features become integers in one numpy pass, not one test per value."""
    values = features.astype(object)  # Python floats
    whole = features[:, _WHOLE]
    exact = (np.trunc(whole) == whole) & (np.abs(whole) < _EXACT)
    if exact.all():
        values[:, _WHOLE] = whole.astype(np.int64).astype(object)
    elif exact.any():
        ints = whole.astype(object)
        ints[exact] = whole[exact].astype(np.int64).astype(object)
        values[:, _WHOLE] = ints
    pack = msgpack.Packer(use_bin_type=True).pack
    return [pack([ms, term, row, s] if a is None else [ms, term, row, s, a])
            for ms, term, row, s, a in zip(t_ms, terminal_ids, values.tolist(), scores, alerts)]


def decode_record(payload: bytes) -> StoredRecord:
    t_ms, terminal_id, values, scores, *alert = msgpack.unpackb(payload, raw=False)
    return StoredRecord(t_ms, terminal_id, dict(zip(FEATURE_NAMES, map(float, values))), scores, *alert)
