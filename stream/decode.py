"""Decoding and validation of raw Kafka records: errors as data, never exceptions in the hot loop.

>>> from datetime import timedelta
>>> v = RecordValidator(max_record_bytes=1024, max_future_skew=timedelta(days=1), allowed_lateness=timedelta(hours=1))
>>> v.transaction(b'{"transaction_id": "t1", "customer_id": "c1", "terminal_id": "m1",'
...               b' "amount": 3.5, "event_time": "2018-04-01T00:00:00Z"}', watermark=None).amount
3.5
>>> v.transaction(b"\\xff\\xfe binary", watermark=None)
Traceback (most recent call last):
...
fraudstream.errors.ValidationFailed: invalid_json: not UTF-8: byte 0xff at position 0
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.structs import OffsetAndMetadata
from pydantic import ValidationError

from fraudstream.errors import ValidationFailed
from fraudstream.models.events import Event, Label, RepeatedField, Transaction, check_fields_once
from fraudstream.stream.dlq import DeadLetter, DeadLetterWriter
from fraudstream.timeutil import from_epoch_us, utcnow


def publication(timestamp_ms: int | None) -> datetime | None:
    """A record's message timestamp as a time; None for one without (message format v0: -1)."""
    return None if timestamp_ms is None or timestamp_ms <= 0 else from_epoch_us(timestamp_ms * 1000)


def published_at(timestamp_ms: int | None, event_time: datetime) -> datetime:
    """What a transaction counts as in its partition's newest event time (the lateness rule): its
    event time, but no later than its message timestamp (when it was published), if it has one.

    >>> from datetime import timezone
    >>> sent = 1_765_144_800_000  # 2025-12-07T22:00:00Z, in epoch ms
    >>> published_at(sent, datetime(2025, 12, 8, 8, tzinfo=timezone.utc)).isoformat()  # a clock 10 h ahead
    '2025-12-07T22:00:00+00:00'
    >>> t = datetime(2018, 4, 1, tzinfo=timezone.utc)  # a replay of history
    >>> published_at(sent, t) == t, published_at(-1, t + timedelta(days=3000)) == t + timedelta(days=3000)
    (True, True)
    """
    published = publication(timestamp_ms)
    return event_time if published is None or event_time <= published else published


def _pydantic_detail(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "record"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


class RecordValidator:
    """Turns bytes into a valid event or raises `ValidationFailed` with a short reason.

    Reasons: ``oversized``, ``empty``, ``invalid_json``, ``invalid_fields`` (also a field given twice:
    `check_fields_once`), ``future_event_time`` (a transaction's), ``future_report_time`` (a label's),
    ``too_late`` (a transaction older than the partition's newest event time minus the allowed
    lateness; a time after the record's publication counts as that there, see `published_at`).
    """

    def __init__(self, max_record_bytes: int, max_future_skew: timedelta | None, allowed_lateness: timedelta) -> None:
        self.max_record_bytes = max_record_bytes
        self.max_future_skew = max_future_skew
        self.allowed_lateness = allowed_lateness

    def _check_size(self, value: bytes | None) -> bytes:
        if not value:
            raise ValidationFailed("empty", "record has no value")
        if len(value) > self.max_record_bytes:
            raise ValidationFailed("oversized", f"{len(value)} bytes > {self.max_record_bytes}")
        return value

    @staticmethod
    def _refused(exc: ValidationError, value: bytes) -> ValidationFailed:
        """Why pydantic refused `value`: ``invalid_json`` (with the json module's words, which say
        where: the same for a transaction and a label), else ``invalid_fields``."""
        if any(err["type"] == "json_invalid" for err in exc.errors()):
            try:  # as text: json.loads of bytes guesses UTF-16 from a BOM, and says so of a UTF-8 error
                json.loads(value.decode("utf-8"))
            except UnicodeDecodeError as bad:
                return ValidationFailed("invalid_json", f"not UTF-8: byte 0x{value[bad.start]:02x} at position {bad.start}")
            except ValueError as bad:
                return ValidationFailed("invalid_json", str(bad)[:200])
            return ValidationFailed("invalid_json", _pydantic_detail(exc))
        return ValidationFailed("invalid_fields", _pydantic_detail(exc))

    @staticmethod
    def _check_fields_once(value: bytes, event: Event) -> None:
        """Refuse a record that gives a field twice: pydantic kept the last value, another parser may
        take the first (``invalid_fields``). The callers ask first what `check_fields_once` asks first,
        inline: whether the record's commas plus one are its fields set (``model_fields_set``, without
        the property's call); then no field is given twice, and nearly every record is spared the call.
        """
        try:
            check_fields_once(value, event)
        except RepeatedField as exc:
            raise ValidationFailed("invalid_fields", str(exc)) from None
        except ValueError as exc:  # not expected: json reads what pydantic's stricter parser accepted
            raise ValidationFailed("invalid_json", str(exc)[:200]) from None

    def transaction(self, value: bytes | None, watermark: datetime | None, now: datetime | None = None) -> Transaction:
        """`now`: the time to check future event times against (default: the clock)."""
        value = self._check_size(value)
        try:
            tx = Transaction.model_validate_json(value)
        except ValidationError as exc:
            raise self._refused(exc, value) from None
        if value.count(b",") + 1 != len(tx.__pydantic_fields_set__):  # else none is given twice
            self._check_fields_once(value, tx)
        if self.max_future_skew is not None and tx.event_time > (now or utcnow()) + self.max_future_skew:
            raise ValidationFailed("future_event_time", f"event_time {tx.event_time.isoformat()} is in the future")
        if watermark is not None and tx.event_time < watermark - self.allowed_lateness:
            raise ValidationFailed(
                "too_late",
                f"event_time {tx.event_time.isoformat()} is more than {self.allowed_lateness} before "
                f"the partition's newest event time {watermark.isoformat()} (one after its record's publication "
                "counts as published)",
            )
        return tx

    def label(self, value: bytes | None, now: datetime | None = None) -> Label:
        """`now`: the time to check future report times against (default: the clock)."""
        value = self._check_size(value)
        try:
            label = Label.model_validate_json(value)
        except ValidationError as exc:
            raise self._refused(exc, value) from None
        if value.count(b",") + 1 != len(label.__pydantic_fields_set__):  # else none is given twice
            self._check_fields_once(value, label)
        if self.max_future_skew is not None and label.reported_at > (now or utcnow()) + self.max_future_skew:
            raise ValidationFailed("future_report_time", f"reported_at {label.reported_at.isoformat()} is in the future")
        return label


@dataclass
class Prepared:
    """A validated batch: its transactions and labels (each in timestamp order), dead letters to
    send, offsets to commit, and the newest event time of each transactions partition at them."""

    transactions: list[tuple[ConsumerRecord, Transaction]] = field(default_factory=list)
    labels: list[tuple[ConsumerRecord, Label]] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    offsets: dict[TopicPartition, OffsetAndMetadata] = field(default_factory=dict)
    newest: dict[TopicPartition, datetime] = field(default_factory=dict)
    # valid events whose Kafka key is not their customer id (handled all the same; see `MisKeyed`)
    mis_keyed: list[tuple[ConsumerRecord, Transaction | Label]] = field(default_factory=list)

    def without(self, partitions: Collection[tuple[str, int]]) -> Prepared:
        """The batch without the records of `partitions` (revoked while it waited to be processed).

        >>> from types import SimpleNamespace as R
        >>> tx, label = R(topic="tx", partition=0, offset=7), R(topic="labels", partition=2, offset=3)
        >>> p = Prepared([(tx, "a transaction")], [(label, "a label")], [(None, tx, "too_late", "...")],
        ...              {TopicPartition("tx", 0): OffsetAndMetadata(8, "", -1),
        ...               TopicPartition("labels", 2): OffsetAndMetadata(4, "", -1)})
        >>> kept = p.without({("tx", 0)})
        >>> kept.transactions, kept.labels == p.labels, kept.dead, list(kept.offsets)
        ([], True, [], [TopicPartition(topic='labels', partition=2)])
        """
        def kept(record: ConsumerRecord | TopicPartition) -> bool:
            return (record.topic, record.partition) not in partitions

        return Prepared([e for e in self.transactions if kept(e[0])], [e for e in self.labels if kept(e[0])],
                        [d for d in self.dead if kept(d[1])], {tp: o for tp, o in self.offsets.items() if kept(tp)},
                        {tp: t for tp, t in self.newest.items() if kept(tp)}, [e for e in self.mis_keyed if kept(e[0])])


def prepare_batch(records: list[ConsumerRecord], labels_topic: str, validator: RecordValidator,
                  watermarks: dict[tuple[str, int], datetime], dlqs: tuple[DeadLetterWriter, DeadLetterWriter],
                  ) -> Prepared:
    """Decode and validate a batch (records of the labels topic are labels, the others transactions);
    bad records become dead letters for `dlqs` (transactions', labels'; counted once they are sent).
    `watermarks` (newest event time per topic and partition) are advanced."""
    return Preparation(records, labels_topic, validator, watermarks, dlqs).finish()


class Preparation:
    """`prepare_batch` in steps, so that it can fill waits on Redis: `step(n)` decodes and validates
    the next `n` records, `finish()` the rest and returns the `Prepared` batch.

    >>> from datetime import timedelta
    >>> from types import SimpleNamespace as R
    >>> v = RecordValidator(1024, None, timedelta(hours=1))
    >>> tx = b'{"transaction_id": "t%d", "customer_id": "c1", "terminal_id": "m1", "amount": 1, "event_time": "2018-04-01T00:00:0%dZ"}'
    >>> records = [R(topic="tx", partition=0, offset=i, key=b"c1", value=tx % (i, i), timestamp=0) for i in range(3)]
    >>> watermarks = {}
    >>> p = Preparation(records, "labels", v, watermarks, (None, None))
    >>> p.step(2); p.done, watermarks[("tx", 0)].second
    (False, 1)
    >>> prepared = p.finish()
    >>> len(prepared.transactions), prepared.offsets, watermarks[("tx", 0)].second, prepared.mis_keyed
    (3, {TopicPartition(topic='tx', partition=0): OffsetAndMetadata(offset=3, metadata='', leader_epoch=-1)}, 2, [])
    """

    def __init__(self, records: list[ConsumerRecord], labels_topic: str, validator: RecordValidator,
                 watermarks: dict[tuple[str, int], datetime],
                 dlqs: tuple[DeadLetterWriter, DeadLetterWriter]) -> None:
        self.records, self.labels_topic, self.validator, self.watermarks = records, labels_topic, validator, watermarks
        self.tx_dlq, self.label_dlq = dlqs
        self.prepared = Prepared()
        self.now = utcnow()
        # the earliest message timestamp of the batch: an event time at or before it is at or before
        # its own record's (`published_at` need not be asked: most records of a replay of history)
        earliest = min((r.timestamp for r in records if r.timestamp is not None and r.timestamp > 0), default=None)
        self.earliest = publication(earliest)
        self.next = 0  # the first record not decoded yet
        self.last: dict[tuple[str, int], int] = {}  # the offset of each partition's last record decoded
        # each transactions partition's newest event time at its last record decoded (a later batch
        # may be in preparation before this one is finished)
        self.newest: dict[tuple[str, int], datetime] = {}

    @property
    def done(self) -> bool:
        return self.next >= len(self.records)

    def step(self, count: int) -> None:
        """Decode and validate the next `count` records (fewer at the end)."""
        prepared, labels_topic, validator, watermarks, last, newest = (
            self.prepared, self.labels_topic, self.validator, self.watermarks, self.last, self.newest)
        now, end = self.now, min(self.next + count, len(self.records))
        # A transaction counts in its partition's newest event time up to when it was published (its
        # message timestamp; not with future times allowed without limit, for a simulated clock): one
        # dated ahead of then but within the future skew (a terminal's clock off by hours, local time
        # written with a Z) is scored, and would otherwise make every transaction of the present on
        # its partition `too_late` for hours. The timestamp, not this process's clock, so that a
        # process reading the record again decides the same.
        earliest = self.earliest if validator.max_future_skew is not None else None
        for record in self.records[self.next:end]:
            tp = (record.topic, record.partition)  # equal to its TopicPartition (a namedtuple)
            last[tp] = record.offset
            if record.topic == labels_topic:
                try:
                    label = validator.label(record.value, now)
                except ValidationFailed as exc:
                    prepared.dead.append((self.label_dlq, record, exc.reason, str(exc)))
                    continue
                prepared.labels.append((record, label))
                if record.key != label.customer_id.encode():
                    prepared.mis_keyed.append((record, label))
                continue
            watermark = watermarks.get(tp)
            try:
                tx = validator.transaction(record.value, watermark, now)
            except ValidationFailed as exc:
                prepared.dead.append((self.tx_dlq, record, exc.reason, str(exc)))
                if watermark is not None:
                    newest[tp] = watermark
                continue
            moment = tx.event_time
            if earliest is not None and moment > earliest and (watermark is None or moment > watermark):
                moment = published_at(record.timestamp, moment)
            if watermark is None or moment > watermark:
                watermarks[tp] = watermark = moment
            newest[tp] = watermark
            prepared.transactions.append((record, tx))
            if record.key != tx.customer_id.encode():
                prepared.mis_keyed.append((record, tx))
        self.next = end

    def without(self, partitions: Collection[tuple[str, int]]) -> Preparation:
        """Forget the records of `partitions` (revoked), decoded or not: the rest is decoded as if they
        had never been in the batch."""
        self.records = self.records[:self.next] + [r for r in self.records[self.next:]
                                                   if (r.topic, r.partition) not in partitions]
        self.prepared = self.prepared.without(partitions)
        self.last = {tp: offset for tp, offset in self.last.items() if tp not in partitions}
        self.newest = {tp: when for tp, when in self.newest.items() if tp not in partitions}
        return self

    def finish(self) -> Prepared:
        """Decode the records left and return the batch, with its offsets to commit and the newest
        event time of each of its transactions partitions (`watermarks` at its last record)."""
        self.step(len(self.records))
        prepared = self.prepared
        prepared.offsets = {TopicPartition(*tp): OffsetAndMetadata(offset + 1, "", -1) for tp, offset in self.last.items()}
        prepared.newest = {TopicPartition(*tp): when for tp, when in self.newest.items()}
        return prepared
