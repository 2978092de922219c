"""What the scoring consumer makes of a batch of labels, pure (no Redis, no broker): the label-stream
entries it appends from the scored records found (`label_entries`), and then what became of each
label (`label_fates`): learned, a duplicate, or a dead letter.

>>> from datetime import datetime, timezone
>>> when = datetime(2018, 4, 1, 10, 30, tzinfo=timezone.utc)
>>> label = Label(transaction_id="t1", customer_id="c1", is_fraud=True, event_time=when, reported_at=when)
>>> scored = ScoredRecord("t1", "c1", "m1", when, {"TX_AMOUNT": 5.0}, {"logreg": 0.9}, ttl_ms=1000)
>>> entry, = label_entries([label], [scored], marker_margin_ms=500)
>>> entry.key, entry.ttl_ms, entry.hour == 1522578600000 // 3_600_000, dict(entry.features)
('2:c1t1', 1500, True, {'TX_AMOUNT': 5.0})
>>> fates = label_fates([(None, label)], [scored], [LabelOutcome.APPENDED], champion="logreg", dlq=None)
>>> fates.learned, fates.duplicates, fates.dead, [lb.transaction_id for lb in fates.done]
([(0.9, True)], 0, [], ['t1'])
>>> [(lb.transaction_id, rec.terminal_id) for lb, rec in fates.frauds]  # to mark in terminal m1's risk
[('t1', 'm1')]
>>> conflict = label_fates([(None, label)], [scored], [LabelOutcome.CONFLICT], champion="logreg", dlq=None)
>>> conflict.frauds, conflict.dead[0][2]  # the first label stands: its terminal is not marked either
([], 'label_conflict')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from fraudstream.models.events import Label
from fraudstream.stream.dlq import DeadLetter
from fraudstream.stream.features import ScoredRecord, to_ms
from fraudstream.stream.label_stream import LabelEntry, LabelOutcome, unreadable_dead_letter
from fraudstream.stream.state.base import HOUR_MS
from fraudstream.stream.state.redis_records import record_field


def marker_margin_ms(allowed_lateness: timedelta) -> int:
    """How much longer a label's "applied" marker is kept than its scored record: the record's time
    to live read when the label comes is its hour's, which transactions of that hour arriving later
    (up to the allowed lateness) renew.

    >>> marker_margin_ms(timedelta(hours=1))
    7200000
    """
    return HOUR_MS + int(allowed_lateness.total_seconds() * 1000)


def label_entries(labels: Sequence[Label], records: Sequence[ScoredRecord | None],
                  marker_margin_ms: int) -> list[LabelEntry]:
    """Each label's entry for the label stream: with the features and scores of its scored record,
    and a marker kept `marker_margin_ms` longer than the record; a label without a readable record
    gets an entry without features, for which only its marker is looked up (a label delivered
    again after it was learned is a duplicate, not unknown)."""
    entries = []
    for label, scored in zip(labels, records):
        key, hour = record_field(label.customer_id, label.transaction_id), to_ms(label.event_time) // HOUR_MS
        if scored is None or scored.unreadable is not None:
            entries.append(LabelEntry(None, label.is_fraud, {}, key, hour=hour))
        else:
            ttl = None if scored.ttl_ms is None else scored.ttl_ms + marker_margin_ms
            entries.append(LabelEntry(scored.features, label.is_fraud, scored.scores, key, ttl, hour))
    return entries


@dataclass
class LabelFates:
    """What became of a batch's labels."""

    learned: list[tuple[float | None, bool]] = field(default_factory=list)  # champion's score then, is_fraud
    duplicates: int = 0  # delivered again after they were learned: their effect is already there
    dead: list[DeadLetter] = field(default_factory=list)  # conflicts, unknown transactions, unreadable records
    done: list[Label] = field(default_factory=list)  # whose scored records may now be deleted
    # frauds taken by the label stream now or before (a duplicate whose record is still kept: a process
    # killed before it marked them), with their records: to be marked in terminal risk before `done` goes
    frauds: list[tuple[Label, ScoredRecord]] = field(default_factory=list)


def label_fates(run: Sequence[tuple[Any, Label]], records: Sequence[ScoredRecord | None],
                outcomes: Sequence[LabelOutcome], champion: str, dlq: Any) -> LabelFates:
    """Sort `run` (Kafka record and label) by the label stream's `outcomes` and the scored `records`
    found: dead letters go to the writer `dlq`. An unreadable record is left as it is (to be looked
    at) until it expires, so its label is not in `done`."""
    fates = LabelFates()
    for (record, label), scored, outcome in zip(run, records, outcomes):
        if outcome is LabelOutcome.APPENDED and scored is not None:
            fates.learned.append((scored.scores.get(champion), label.is_fraud))
        elif outcome is LabelOutcome.DUPLICATE:
            fates.duplicates += 1
        elif outcome is LabelOutcome.UNKNOWN and scored is not None and scored.unreadable is not None:
            fates.dead.append((dlq, record, *unreadable_dead_letter(label.transaction_id, scored.unreadable)))
        else:  # a conflict, or unknown
            fates.dead.append((dlq, record, *outcome.dead_letter(label.transaction_id, label.is_fraud)))
        if (label.is_fraud and outcome in (LabelOutcome.APPENDED, LabelOutcome.DUPLICATE) and scored is not None
                and scored.unreadable is None):
            fates.frauds.append((label, scored))
        if scored is not None and scored.unreadable is None:
            fates.done.append(label)
    return fates
