"""Feature vectors: the handbook's baseline features and ours, from window aggregates of a state store.

The math is in `fraudstream.stream.feature_math`, the I/O in `fraudstream.stream.state`; this
module joins them. The live consumer and the backtest both call `FeatureEngine`, so features are
the same code in both. A batch of `MIN_MATRIX_ROWS` or more is derived as one matrix
(`transform_batch`, which the consumer scores and stores as it is), a smaller one transaction by
transaction, with the same floats.

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
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from fraudstream.models.events import Label, Transaction
from fraudstream.stream.feature_math import MIN_MATRIX_ROWS, FeatureConfig, derive, derive_matrix
from fraudstream.stream.schema import (EXTRA_FEATURES, FEATURE_NAMES, HANDBOOK_FEATURES, ScoredRows, StoredRecord,
                                       UnreadableRecord)
from fraudstream.stream.state.base import (CustomerOp, CustomerResult, FraudMark, Meanwhile, RecordRef, StateStore,
                                          TerminalOp, always_ready)

__all__ = ["EXTRA_FEATURES", "FEATURE_NAMES", "HANDBOOK_FEATURES", "FeatureBatch", "FeatureConfig", "FeatureEngine",
           "ScoredRecord", "derive"]


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
    unreadable: str | None = None  # why its stored bytes could not be read (then no features nor scores)


def to_ms(moment: datetime) -> int:
    """Epoch milliseconds of an aware datetime, exactly (no float rounding of the seconds)."""
    delta = moment - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1000 + delta.microseconds // 1000


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def terminal_hash(terminal_id: str) -> int:
    """A 32-bit hash of a terminal id (distinct-terminal counts), of which the stores keep 24 bits
    (`blobs.TERMINAL_HASH_MASK`: two of a customer's ~60 terminals of 30 days collide with
    probability ~1e-4)."""
    return zlib.crc32(terminal_id.encode())


def record_refs(labels: Sequence[Label]) -> list[RecordRef]:
    """Where each label's scored record is: its customer, transaction and the transaction's event time."""
    return [RecordRef(lb.customer_id, lb.transaction_id, to_ms(lb.event_time)) for lb in labels]


def cents_of(amount: float) -> int:
    """An amount in whole cents (window sums are exact integer sums).

    >>> cents_of(57.16), cents_of(0.1 + 0.2)
    (5716, 30)
    """
    return round(amount * 100)


def _to_score(conflict: list[bool], stored: list[StoredRecord | None], repeats: dict[int, int]) -> list[int]:
    return [i for i, (c, s) in enumerate(zip(conflict, stored)) if not c and s is None and i not in repeats]


def _repeats(txs: Sequence[Transaction], cust: Sequence[CustomerResult]) -> dict[int, int]:
    """Transactions delivered twice in one batch (a producer's retry): the position of each later
    copy -> its first copy's. The customer state took the first copy; a later one reads as a
    duplicate without a scored record, which is written only after the batch is scored."""
    if not any(cr.duplicate and cr.stored is None and not cr.conflict for cr in cust):
        return {}
    first: dict[tuple[str, str], int] = {}  # ids are the customer's: another customer's same id is another one
    repeats = {}
    for i, (tx, cr) in enumerate(zip(txs, cust)):
        if cr.conflict or cr.stored is not None:  # not scored in this batch: no copy repeats it
            continue
        j = first.setdefault((tx.customer_id, tx.transaction_id), i)
        if j != i:
            repeats[i] = j
    return repeats


@dataclass(frozen=True)
class FeatureBatch:
    """A batch's features as a matrix: row i is transaction i's, columns in `FEATURE_NAMES` order.

    A conflict (the id was used for another transaction, see `FeatureEngine.transform`) has a row of
    zeros and no `stored` record; a transaction scored before has its `stored` record and the
    features it was scored with (NaN for any it lacks); a later copy of a transaction in the same
    batch (`repeats`: its position -> the first copy's) has the first copy's row.
    """

    features: np.ndarray
    conflict: list[bool]
    stored: list[StoredRecord | None]
    times: list[int]  # event times, epoch ms
    repeats: dict[int, int] = field(default_factory=dict)
    seen: list[bool] = field(default_factory=list)  # the customer's state held it already (not a conflict)

    def row(self, i: int) -> dict[str, float]:
        return dict(zip(FEATURE_NAMES, self.features[i].tolist()))

    def to_score(self) -> list[int]:
        """The positions of the transactions to score: neither a conflict, nor scored before, nor a
        later copy of one in the batch."""
        return _to_score(self.conflict, self.stored, self.repeats)

    def rows(self) -> list[dict[str, float] | None]:
        """`transform`'s answer: a dict per transaction, None for a conflict, the stored features for
        a transaction scored before."""
        return [None if c else dict(s.features) if s is not None else dict(zip(FEATURE_NAMES, x))
                for c, s, x in zip(self.conflict, self.stored, self.features.tolist())]


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
        return self.transform_seen(txs)[0]

    def transform_seen(self, txs: Sequence[Transaction]) -> tuple[list[dict[str, float] | None], list[bool]]:
        """`transform`, and per transaction whether the customer's state held it already (a row
        repeated in a file, a transaction delivered again; not a conflict): the backtest and
        `fraudstream features` skip those, as the consumer does not score them twice."""
        if len(txs) >= MIN_MATRIX_ROWS:
            batch = self.transform_batch(txs)
            return batch.rows(), batch.seen
        times, cents, cust, term = self._update(txs)
        out: list[dict[str, float] | None] = []
        for tx, t, c, cr, tr in zip(txs, times, cents, cust, term):
            if cr.conflict:
                out.append(None)
            elif cr.stored is not None:
                out.append(dict(cr.stored.features))
            else:
                out.append(derive(tx, t, c, cr.aggregates, tr, self.config))  # type: ignore[arg-type]
        return out, [cr.duplicate and not cr.conflict for cr in cust]

    def transform_batch(self, txs: Sequence[Transaction], meanwhile: Meanwhile | None = None) -> FeatureBatch:
        """`transform_seen` as a `FeatureBatch`: the features of a batch as one matrix. `meanwhile`
        runs while the state store updates the customers, and again while it updates the
        terminals (a server's time is not wasted; see `state.base.Meanwhile`)."""
        times, cents, cust, term = self._update(txs, meanwhile)
        conflict = [cr.conflict for cr in cust]
        stored = [None if cr.conflict else cr.stored for cr in cust]
        repeats = _repeats(txs, cust)
        fresh = _to_score(conflict, stored, repeats)
        derived = derive_matrix([txs[i] for i in fresh], [times[i] for i in fresh], [cents[i] for i in fresh],
                                [cust[i].aggregates for i in fresh], [term[i] for i in fresh],  # type: ignore[misc]
                                self.config)
        seen = [cr.duplicate and not cr.conflict for cr in cust]
        if len(fresh) == len(txs):
            return FeatureBatch(derived, conflict, stored, times, repeats, seen)
        matrix = np.zeros((len(txs), len(FEATURE_NAMES)), dtype=np.float64)
        if fresh:
            matrix[fresh] = derived
        for i, rec in enumerate(stored):
            if rec is not None:  # NaN for a feature the record lacks (one stored before that feature existed)
                matrix[i] = [rec.features.get(name, math.nan) for name in FEATURE_NAMES]
        for i, j in repeats.items():
            matrix[i] = matrix[j]
        return FeatureBatch(matrix, conflict, stored, times, repeats, seen)

    def _update(self, txs: Sequence[Transaction], meanwhile: Meanwhile | None = None,
                ) -> tuple[list[int], list[int], list[CustomerResult], list[tuple[float, ...] | None]]:
        """Insert the transactions into their customers' and terminals' state: per transaction its
        event time (ms), amount in cents, customer result and terminal aggregates (None for a
        conflict, which changes no terminal). `meanwhile` runs while the store works on the
        customers, and on the terminals once the customer aggregates are computed (the terminals
        are sent before)."""
        if not txs:
            if meanwhile is not None:
                meanwhile(always_ready)
            return [], [], [], []
        times = [to_ms(tx.event_time) for tx in txs]
        cents = [round(tx.amount * 100) for tx in txs]  # cents_of, inlined: this is the hot path
        customers = self.store.begin_customers([
            CustomerOp(tx.customer_id, t, c, terminal_hash(tx.terminal_id), tx.transaction_id, tx.latitude, tx.longitude)
            for tx, t, c in zip(txs, times, cents)])
        try:
            if meanwhile is not None:
                meanwhile(customers.ready)
            conflict = customers.conflicts()
        except BaseException:
            customers.discard()
            raise
        terminals = self.store.begin_terminals([TerminalOp(tx.terminal_id, t, tx.transaction_id)
                                                for tx, t, c in zip(txs, times, conflict) if not c])
        try:
            cust = customers.results()
            if meanwhile is not None:
                meanwhile(terminals.ready)
            term = iter(terminals.results())
        except BaseException:
            terminals.discard()
            raise
        return times, cents, cust, [None if c else next(term) for c in conflict]

    def record_scored(self, txs: Sequence[Transaction], features: Sequence[dict[str, float]],
                      scores: Sequence[Mapping[str, float]], alerts: Sequence[bytes | None] | None = None) -> None:
        """Keep what was scored per transaction id (and the alert published for it) until its label
        arrives."""
        self.store.put_records([(tx.customer_id, tx.transaction_id,
                                 StoredRecord(to_ms(tx.event_time), tx.terminal_id, x, dict(s), a))
                                for tx, x, s, a in zip(txs, features, scores, alerts or [None] * len(txs))])

    def record_rows(self, txs: Sequence[Transaction], times: list[int], features: np.ndarray,
                    scores: list[dict[str, float]], alerts: list[bytes | None], meanwhile: Meanwhile | None = None,
                    ) -> None:
        """`record_scored` with the features as a matrix (row i: `txs[i]`'s, whose event time in epoch
        ms is `times[i]`, as in `FeatureBatch.times`); `meanwhile` runs while the store writes them."""
        self.store.put_rows(ScoredRows([tx.customer_id for tx in txs], [tx.transaction_id for tx in txs], times,
                                       [tx.terminal_id for tx in txs], features, scores, alerts), meanwhile)

    def apply_labels(self, labels: Sequence[Label], keep_records: bool = False, meanwhile: Meanwhile | None = None,
                     mark: bool = True) -> list[ScoredRecord | None]:
        """Return each label's scored record and (`mark`) mark frauds into terminal risk
        (`mark_frauds`).

        Records are deleted as they are returned, unless `keep_records`: then they stay until
        `release_records`, so that a process killed before its labels were learned durably finds
        them again when the labels are delivered again. `meanwhile` runs while the store reads them
        (only when they are kept). The consumer marks only after the label stream has taken a
        label (not a conflicting or an unknown one): ``mark=False``, then `mark_frauds`.
        """
        items = record_refs(labels)
        if keep_records:
            peeked = self.store.peek_records(items, meanwhile)
            stored = [None if p is None else p[0] for p in peeked]
            ttls = [None if p is None else p[1] for p in peeked]
        else:
            stored, ttls = self.store.take_records(items), [None] * len(items)
        records: list[ScoredRecord | None] = []
        for label, rec, ttl_ms in zip(labels, stored, ttls):
            record = None
            if isinstance(rec, UnreadableRecord):
                record = ScoredRecord(label.transaction_id, label.customer_id, "", label.event_time, {}, {}, ttl_ms,
                                      unreadable=rec.error)
            elif rec is not None:
                record = ScoredRecord(label.transaction_id, label.customer_id, rec.terminal_id,
                                      datetime.fromtimestamp(rec.t_ms / 1000.0, timezone.utc), rec.features, rec.scores,
                                      ttl_ms)
            records.append(record)
        if mark:
            self.mark_frauds(labels, records)
        return records

    def mark_frauds(self, labels: Sequence[Label], records: Sequence[ScoredRecord | None]) -> None:
        """Mark the fraud labels' transactions in their terminals' risk, known from each label's
        report time on (so terminal features do not depend on processing order). The transaction is
        the scored record's (its terminal and event time, which the terminal's events hold) when
        there is one; else the label's (a label with a terminal, of a run that keeps no records)."""
        frauds: list[FraudMark] = []
        for label, record in zip(labels, records):
            if not label.is_fraud:
                continue
            if record is not None and record.unreadable is None:
                frauds.append(FraudMark(record.terminal_id, label.transaction_id, to_ms(record.event_time),
                                        to_ms(label.reported_at)))
            elif label.terminal_id:
                frauds.append(FraudMark(label.terminal_id, label.transaction_id, to_ms(label.event_time),
                                        to_ms(label.reported_at)))
        self.store.mark_frauds(frauds)

    def release_records(self, labels: Sequence[Label], meanwhile: Meanwhile | None = None) -> None:
        """Delete the scored records of labels that were learned (see `apply_labels`); `meanwhile`
        runs while the store deletes them."""
        self.store.drop_records(record_refs(labels), meanwhile)
