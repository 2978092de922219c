"""`stream.label_fates`: what the consumer makes of each kind of label outcome (pure, no services)."""

from __future__ import annotations

from datetime import datetime, timezone

from fraudstream.models.events import Label
from fraudstream.stream.features import ScoredRecord
from fraudstream.stream.label_fates import label_entries, label_fates
from fraudstream.stream.label_stream import LabelOutcome

WHEN = datetime(2018, 4, 1, 10, 30, tzinfo=timezone.utc)


def label(txid: str, is_fraud: bool = False) -> Label:
    return Label(transaction_id=txid, customer_id="c1", is_fraud=is_fraud, event_time=WHEN, reported_at=WHEN)


def scored(txid: str, score: float, unreadable: str | None = None) -> ScoredRecord:
    if unreadable is not None:
        return ScoredRecord(txid, "c1", "", WHEN, {}, {}, None, unreadable=unreadable)
    return ScoredRecord(txid, "c1", "m1", WHEN, {"TX_AMOUNT": 1.0}, {"champ": score, "other": 0.5}, ttl_ms=60_000)


def test_each_outcome_is_learned_counted_or_dead_lettered_once() -> None:
    labels = [label("learned", True), label("again"), label("conflict"), label("unknown"), label("unreadable")]
    records = [scored("learned", 0.8), scored("again", 0.1), scored("conflict", 0.2), None,
               scored("unreadable", 0.0, unreadable="FormatError")]
    outcomes = [LabelOutcome.APPENDED, LabelOutcome.DUPLICATE, LabelOutcome.CONFLICT, LabelOutcome.UNKNOWN,
                LabelOutcome.UNKNOWN]
    run = [(f"record-{lb.transaction_id}", lb) for lb in labels]
    fates = label_fates(run, records, outcomes, champion="champ", dlq="labels.dlq")
    assert fates.learned == [(0.8, True)]
    assert fates.duplicates == 1
    assert [(writer, record, reason) for writer, record, reason, _ in fates.dead] == [
        ("labels.dlq", "record-conflict", "label_conflict"), ("labels.dlq", "record-unknown", "unknown_transaction"),
        ("labels.dlq", "record-unreadable", "unreadable_record")]
    assert "FormatError" in fates.dead[2][3]
    # records found and readable are released, whatever their label's outcome; an unreadable one stays
    assert [lb.transaction_id for lb in fates.done] == ["learned", "again", "conflict"]


def test_entries_carry_the_record_or_only_the_marker() -> None:
    labels = [label("found", True), label("missing"), label("unreadable")]
    records = [scored("found", 0.7), None, scored("unreadable", 0.0, unreadable="ValueError")]
    found, missing, unreadable = label_entries(labels, records, marker_margin_ms=1_000)
    assert (dict(found.features or {}), dict(found.scores), found.is_fraud, found.ttl_ms) == (
        {"TX_AMOUNT": 1.0}, {"champ": 0.7, "other": 0.5}, True, 61_000)
    for entry in (missing, unreadable):
        assert (entry.features, dict(entry.scores), entry.ttl_ms) == (None, {}, None)
    assert [e.key for e in (found, missing, unreadable)] == ["2:c1found", "2:c1missing", "2:c1unreadable"]
    assert {e.hour for e in (found, missing, unreadable)} == {int(WHEN.timestamp()) // 3600}
