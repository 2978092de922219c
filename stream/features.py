"""Feature vectors: the handbook's baseline features and ours, from window aggregates of a state store.

Pure math here, I/O in `fraudstream.stream.state`. The live consumer and the backtest both call
`FeatureEngine`, so features are the same code in both.

>>> from datetime import datetime, timezone
>>> from fraudstream.models.events import Transaction
>>> from fraudstream.stream.state import MemoryStore
>>> engine = FeatureEngine(MemoryStore())
>>> t = datetime(2018, 4, 7, 3, 0, tzinfo=timezone.utc)  # a Saturday night
>>> x = engine.transform([Transaction(transaction_id="1", customer_id="c", terminal_id="m",
...                                   amount=20.0, event_time=t)])[0]
>>> x["TX_DURING_WEEKEND"], x["TX_DURING_NIGHT"], x["CUSTOMER_ID_NB_TX_1DAY_WINDOW"]
(1.0, 1.0, 1.0)
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import msgpack

from fraudstream.models.events import Label, Transaction
from fraudstream.stream.state.base import CustomerOp, StateStore, TerminalOp

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
)
FEATURE_NAMES: tuple[str, ...] = HANDBOOK_FEATURES + EXTRA_FEATURES

NO_PREVIOUS_SECONDS = 30 * 86400.0  # seconds since previous transaction when there is none in 30 days
EARTH_RADIUS_KM = 6371.0088
MAX_RATIO = 1000.0
MAX_ZSCORE = 50.0
MAX_SPEED_KMH = 20000.0


@dataclass(frozen=True)
class FeatureConfig:
    """Knobs of the derived features (window lengths live in `fraudstream.stream.state.Windows`)."""

    min_gap_seconds_for_speed: float = 60.0

    @classmethod
    def from_settings(cls, settings: object) -> FeatureConfig:
        return cls()


@dataclass(frozen=True, slots=True)
class ScoredRecord:
    """What was scored, kept until the transaction's label arrives."""

    transaction_id: str
    customer_id: str
    terminal_id: str
    event_time: datetime
    features: dict[str, float]
    scores: dict[str, float]


def to_ms(moment: datetime) -> int:
    """Epoch milliseconds of an aware datetime, exactly (no float rounding of the seconds)."""
    delta = moment - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1000 + delta.microseconds // 1000


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def terminal_hash(terminal_id: str) -> int:
    """A 32-bit hash of a terminal id (distinct-terminal counts)."""
    return zlib.crc32(terminal_id.encode())


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance.

    >>> round(haversine_km(48.8566, 2.3522, 51.5074, -0.1278))
    344
    """
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def derive(tx: Transaction, t_ms: int, cust: Sequence[float], term: Sequence[float],
           config: FeatureConfig) -> dict[str, float]:
    """The feature vector from the transaction and its customer and terminal aggregates."""
    (nb1, c1, nb7, c7, nb30, c30, sq30, nbh, ch, nb10, prev_dt, nterms, seen,
     hlat, hlon, hn, plat, plon, pcoord) = cust
    ta, fa, tb, fb, tc, fc, th = term
    amount = tx.amount
    seconds = t_ms // 1000
    weekday = (seconds // 86400 + 3) % 7  # 1970-01-01 was a Thursday
    hour = (seconds % 86400) // 3600

    prev_n = nb30 - 1
    cents = c30 - _cents_of(tx)
    if prev_n > 0:
        mean_prev = cents / 100.0 / prev_n
        ratio = min(MAX_RATIO, amount / mean_prev) if mean_prev > 0 else MAX_RATIO
        var = max(0.0, (sq30 - _cents_of(tx) ** 2) / 1e4 / prev_n - mean_prev * mean_prev)
        std = math.sqrt(var)
        z = max(-MAX_ZSCORE, min(MAX_ZSCORE, (amount - mean_prev) / std)) if std >= 0.01 else 0.0
    else:
        ratio, z = 1.0, 0.0

    has_coords = tx.latitude is not None and tx.longitude is not None
    home_km = prev_km = speed = 0.0
    if has_coords:
        if hn > 0:
            home_km = haversine_km(tx.latitude, tx.longitude, hlat / hn, hlon / hn)  # type: ignore[arg-type]
        if pcoord:
            prev_km = haversine_km(tx.latitude, tx.longitude, plat, plon)  # type: ignore[arg-type]
            hours = max(prev_dt / 1000.0, config.min_gap_seconds_for_speed) / 3600.0
            speed = min(MAX_SPEED_KMH, prev_km / hours)

    return {
        "TX_AMOUNT": amount,
        "TX_DURING_WEEKEND": float(weekday >= 5),
        "TX_DURING_NIGHT": float(hour <= 6),
        "CUSTOMER_ID_NB_TX_1DAY_WINDOW": float(nb1),
        "CUSTOMER_ID_AVG_AMOUNT_1DAY_WINDOW": c1 / 100.0 / nb1,
        "CUSTOMER_ID_NB_TX_7DAY_WINDOW": float(nb7),
        "CUSTOMER_ID_AVG_AMOUNT_7DAY_WINDOW": c7 / 100.0 / nb7,
        "CUSTOMER_ID_NB_TX_30DAY_WINDOW": float(nb30),
        "CUSTOMER_ID_AVG_AMOUNT_30DAY_WINDOW": c30 / 100.0 / nb30,
        "TERMINAL_ID_NB_TX_1DAY_WINDOW": float(ta),
        "TERMINAL_ID_RISK_1DAY_WINDOW": fa / ta if ta else 0.0,
        "TERMINAL_ID_NB_TX_7DAY_WINDOW": float(tb),
        "TERMINAL_ID_RISK_7DAY_WINDOW": fb / tb if tb else 0.0,
        "TERMINAL_ID_NB_TX_30DAY_WINDOW": float(tc),
        "TERMINAL_ID_RISK_30DAY_WINDOW": fc / tc if tc else 0.0,
        "customer_nb_tx_10min": float(nb10),
        "customer_nb_tx_1h": float(nbh),
        "customer_sum_amount_1h": ch / 100.0,
        "customer_mean_amount_1h": ch / 100.0 / nbh,
        "customer_sum_amount_1d": c1 / 100.0,
        "customer_sum_amount_7d": c7 / 100.0,
        "customer_seconds_since_prev_tx": prev_dt / 1000.0 if prev_dt >= 0 else NO_PREVIOUS_SECONDS,
        "customer_amount_over_mean_30d": ratio,
        "customer_amount_zscore_30d": z,
        "customer_nb_terminals_24h": float(nterms),
        "customer_first_use_of_terminal_30d": float(not seen),
        "terminal_nb_tx_1h": float(th),
        "has_coordinates": float(has_coords),
        "customer_distance_from_home_km": home_km,
        "customer_distance_from_prev_km": prev_km,
        "customer_speed_from_prev_kmh": speed,
    }


def _cents_of(tx: Transaction) -> int:
    return round(tx.amount * 100)


class FeatureEngine:
    """Features for batches of transactions; scored records and labels (see docs/internal-apis.md)."""

    feature_names: tuple[str, ...] = FEATURE_NAMES

    def __init__(self, store: StateStore, config: FeatureConfig | None = None) -> None:
        self.store = store
        self.config = config or FeatureConfig()

    def transform(self, txs: Sequence[Transaction]) -> list[dict[str, float] | None]:
        """Per transaction, features as of its event time; duplicates get their first features.

        ``None`` marks a transaction whose id the customer already used for a transaction with
        another time, amount or terminal: it changes no state and should be dead-lettered.
        """
        if not txs:
            return []
        times = [to_ms(tx.event_time) for tx in txs]
        cust_ops = [CustomerOp(tx.customer_id, t, _cents_of(tx), terminal_hash(tx.terminal_id), tx.transaction_id,
                               tx.latitude, tx.longitude) for tx, t in zip(txs, times)]
        cust = self.store.update_customers(cust_ops)
        term_ops = [TerminalOp(tx.terminal_id, t, tx.transaction_id)
                    for tx, t, c in zip(txs, times, cust) if not c.conflict]
        term = iter(self.store.update_terminals(term_ops))
        out: list[dict[str, float] | None] = []
        for tx, t, c in zip(txs, times, cust):
            if c.conflict:
                out.append(None)
                continue
            m = next(term)
            out.append(decode_record(c.stored)[2] if c.stored is not None else derive(tx, t, c.aggregates, m, self.config))
        return out

    def record_scored(self, txs: Sequence[Transaction], features: Sequence[dict[str, float]],
                      scores: Sequence[Mapping[str, float]]) -> None:
        """Keep what was scored per transaction id until its label arrives."""
        items = [(tx.customer_id, tx.transaction_id, to_ms(tx.event_time), encode_record(tx, x, s))
                 for tx, x, s in zip(txs, features, scores)]
        self.store.put_records(items)

    def apply_labels(self, labels: Sequence[Label]) -> list[ScoredRecord | None]:
        """Return each label's scored record (once) and count frauds into terminal risk."""
        raw = self.store.take_records([(lb.customer_id, lb.transaction_id) for lb in labels])
        records: list[ScoredRecord | None] = []
        frauds: list[tuple[str, str]] = []
        for label, payload in zip(labels, raw):
            record = None
            if payload is not None:
                t_ms, terminal_id, features, scores = decode_record(payload)
                record = ScoredRecord(label.transaction_id, label.customer_id, terminal_id,
                                      datetime.fromtimestamp(t_ms / 1000.0, timezone.utc), features, scores)
            records.append(record)
            terminal_id = label.terminal_id or (record.terminal_id if record else None)
            if label.is_fraud and terminal_id:
                frauds.append((terminal_id, label.transaction_id))
        self.store.mark_frauds(frauds)
        return records


def encode_record(tx: Transaction, features: Mapping[str, float], scores: Mapping[str, float]) -> bytes:
    return msgpack.packb([to_ms(tx.event_time), tx.terminal_id, [features[n] for n in FEATURE_NAMES], dict(scores)])


def decode_record(payload: bytes) -> tuple[int, str, dict[str, float], dict[str, float]]:
    t_ms, terminal_id, values, scores = msgpack.unpackb(payload, raw=False)
    return t_ms, terminal_id, dict(zip(FEATURE_NAMES, values)), scores
