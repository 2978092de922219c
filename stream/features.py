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

from fraudstream.models.events import Label, Transaction
from fraudstream.stream.schema import EXTRA_FEATURES, FEATURE_NAMES, HANDBOOK_FEATURES, StoredRecord
from fraudstream.stream.state.base import CustomerOp, FraudMark, RecordRef, StateStore, TerminalOp

__all__ = ["EXTRA_FEATURES", "FEATURE_NAMES", "HANDBOOK_FEATURES", "FeatureConfig", "FeatureEngine", "ScoredRecord", "derive"]


NO_PREVIOUS_SECONDS = 30 * 86400.0  # seconds since previous transaction when there is none in 30 days
EARTH_RADIUS_KM = 6371.0088
NO_FRAUD_DAYS = 60.0  # terminal_days_since_fraud without a known fraud in its window (at most ~37 days)
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
    ttl_ms: int | None = None  # how long the store keeps it still (None: no wall-clock expiry)


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


def derive(tx: Transaction, t_ms: int, cents: int, cust: Sequence[float], term: Sequence[float],
           config: FeatureConfig) -> dict[str, float]:
    """The feature vector (in `FEATURE_NAMES` order) from the transaction, its amount in cents and
    its customer and terminal aggregates (`CUSTOMER_AGGREGATES`, `TERMINAL_AGGREGATES`).

    Ratio and z-score compare the amount with the customer's *previous* transactions of 30 days.
    """
    (nb1, c1, nb7, c7, nb30, c30, sq30, nbh, ch, nb10, prev_dt, nterms, seen,
     hlat, hlon, hn, plat, plon, pcoord) = cust
    ta, fa, tb, fb, tc, fc, th, n3, f3, last_fraud, fraud_age = term
    amount = tx.amount
    seconds = t_ms // 1000
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
    home_km = prev_km = speed = 0.0
    if has_coords:  # aggregated coordinates are in microdegrees
        if hn > 0:
            home_km = haversine_km(lat, lon, hlat / hn / 1e6, hlon / hn / 1e6)  # type: ignore[arg-type]
        if pcoord:
            prev_km = haversine_km(lat, lon, plat / 1e6, plon / 1e6)  # type: ignore[arg-type]
            hours = max(prev_dt / 1000.0, config.min_gap_seconds_for_speed) / 3600.0
            speed = min(MAX_SPEED_KMH, prev_km / hours)

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


def record_refs(labels: Sequence[Label]) -> list[RecordRef]:
    """Where each label's scored record is: its customer, transaction and the transaction's event time."""
    return [RecordRef(lb.customer_id, lb.transaction_id, to_ms(lb.event_time)) for lb in labels]


def cents_of(amount: float) -> int:
    """An amount in whole cents (window sums are exact integer sums).

    >>> cents_of(57.16), cents_of(0.1 + 0.2)
    (5716, 30)
    """
    return round(amount * 100)


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
        return self.transform_scored(txs)[0]

    def transform_scored(self, txs: Sequence[Transaction]) -> tuple[list[dict[str, float] | None],
                                                                    list[StoredRecord | None]]:
        """`transform`, and per transaction its scored record when it was scored before (a
        transaction delivered again whose record is still kept), else None."""
        if not txs:
            return [], []
        times = [to_ms(tx.event_time) for tx in txs]
        cents = [round(tx.amount * 100) for tx in txs]  # cents_of, inlined: this is the hot path
        cust = self.store.update_customers([
            CustomerOp(tx.customer_id, t, c, terminal_hash(tx.terminal_id), tx.transaction_id, tx.latitude, tx.longitude)
            for tx, t, c in zip(txs, times, cents)])
        term = iter(self.store.update_terminals([TerminalOp(tx.terminal_id, t, tx.transaction_id)
                                                 for tx, t, c in zip(txs, times, cust) if not c.conflict]))
        out: list[dict[str, float] | None] = []
        config = self.config
        for tx, t, c, cr in zip(txs, times, cents, cust):
            if cr.conflict:
                out.append(None)
            elif cr.stored is not None:
                next(term)
                out.append(dict(cr.stored.features))
            else:
                out.append(derive(tx, t, c, cr.aggregates, next(term), config))
        return out, [None if cr.conflict else cr.stored for cr in cust]

    def record_scored(self, txs: Sequence[Transaction], features: Sequence[dict[str, float]],
                      scores: Sequence[Mapping[str, float]], alerts: Sequence[bytes | None] | None = None) -> None:
        """Keep what was scored per transaction id (and the alert published for it) until its label
        arrives."""
        self.store.put_records([(tx.customer_id, tx.transaction_id,
                                 StoredRecord(to_ms(tx.event_time), tx.terminal_id, x, dict(s), a))
                                for tx, x, s, a in zip(txs, features, scores, alerts or [None] * len(txs))])

    def apply_labels(self, labels: Sequence[Label], keep_records: bool = False) -> list[ScoredRecord | None]:
        """Return each label's scored record and mark frauds into terminal risk, known from the
        label's report time on (so terminal features do not depend on processing order).

        Records are deleted as they are returned, unless `keep_records`: then they stay until
        `release_records`, so that a process killed before its labels were learned durably finds
        them again when the labels are delivered again.
        """
        items = record_refs(labels)
        if keep_records:
            peeked = self.store.peek_records(items)
            stored = [None if p is None else p[0] for p in peeked]
            ttls = [None if p is None else p[1] for p in peeked]
        else:
            stored, ttls = self.store.take_records(items), [None] * len(items)
        records: list[ScoredRecord | None] = []
        frauds: list[FraudMark] = []
        for label, rec, ttl_ms in zip(labels, stored, ttls):
            record = None
            if rec is not None:
                record = ScoredRecord(label.transaction_id, label.customer_id, rec.terminal_id,
                                      datetime.fromtimestamp(rec.t_ms / 1000.0, timezone.utc), rec.features, rec.scores,
                                      ttl_ms)
            records.append(record)
            terminal_id = label.terminal_id or (record.terminal_id if record else None)
            if label.is_fraud and terminal_id:
                frauds.append(FraudMark(terminal_id, label.transaction_id, to_ms(label.event_time), to_ms(label.reported_at)))
        self.store.mark_frauds(frauds)
        return records

    def release_records(self, labels: Sequence[Label]) -> None:
        """Delete the scored records of labels that were learned (see `apply_labels`)."""
        self.store.drop_records(record_refs(labels))
