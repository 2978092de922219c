"""Event time as a real feed stresses it: a transaction dated ahead of the consumer's clock (a
terminal whose clock is wrong, local time written with a `Z`) and the lateness rule."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from fraudstream import constants
from fraudstream.config import Settings
from fraudstream.kafka_io import ensure_topics
from fraudstream.models.events import Transaction
from fraudstream.stream.app import scoring_consumer
from tests.kafka_helpers import produce_raw, read_topic


def publish(settings: Settings, times: list[datetime], first: int) -> None:
    """Transactions of one customer (so one partition) at `times`, ids from `first` on."""
    txs = [Transaction(transaction_id=f"t{first + i}", customer_id="c1", terminal_id="m1", amount=10.0, event_time=t)
           for i, t in enumerate(times)]
    produce_raw(settings, settings.topic_transactions, ((b"c1", tx.to_json_bytes()) for tx in txs))


@pytest.mark.services
def test_a_transaction_dated_ahead_of_the_clock_does_not_make_the_present_too_late(settings: Settings) -> None:
    """A transaction 10 h ahead of now is within the allowed future skew (1 d) and is scored; it must
    not become the partition's newest event time, else every transaction of the present on that
    partition would be dead-lettered as `too_late` for the next 9 hours (and after a restart too)."""
    ensure_topics(settings)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    publish(settings, [now - timedelta(minutes=5), now + timedelta(hours=10), now, now + timedelta(seconds=30)], first=0)
    with scoring_consumer(settings) as app:
        stats = app.run(max_transactions=4, idle_timeout=20)
    assert (stats.processed, stats.dead_lettered) == (4, 0)
    # the rule still holds against the present, also for the next process of the group
    publish(settings, [now - timedelta(hours=2), now + timedelta(minutes=1)], first=4)
    with scoring_consumer(settings) as app:
        stats = app.run(max_transactions=2, idle_timeout=20)
    assert (stats.processed, stats.dead_lettered) == (1, 1)
    dead = read_topic(settings, settings.topic_dlq, expect=1)
    assert [dict(r.headers)[constants.DLQ_HEADER_REASON] for r in dead] == [b"too_late"]


@pytest.mark.services
def test_times_that_are_numbers_are_dead_lettered_as_recorded_files_refuse_them(settings: Settings) -> None:
    """Times are ISO 8601 on the topics as in files: pydantic alone would read 1717236000 (or
    "1717236000", or 1717236000000) as Unix seconds or milliseconds, guessing which by size."""
    ensure_topics(settings)
    good = {"transaction_id": "t0", "customer_id": "c1", "terminal_id": "m1", "amount": 10.0,
            "event_time": "2024-06-01T10:00:00Z"}
    numbers = [1717236060, "1717236120", 1717236180000, 1717236240.5]
    txs = [good] + [{**good, "transaction_id": f"t{i + 1}", "event_time": t} for i, t in enumerate(numbers)]
    produce_raw(settings, settings.topic_transactions, ((b"c1", json.dumps(tx).encode()) for tx in txs))
    label = {"transaction_id": "t0", "customer_id": "c1", "is_fraud": False, "event_time": "2024-06-01T10:00:00Z",
             "reported_at": 1717840800}
    produce_raw(settings, settings.topic_labels, [(b"c1", json.dumps(label).encode())])
    with scoring_consumer(settings) as app:
        stats = app.run(max_transactions=5, idle_timeout=20)
    assert (stats.processed, stats.dead_lettered, stats.labels_dead_lettered) == (1, 4, 1)
    dead = read_topic(settings, settings.topic_dlq, expect=4) + read_topic(settings, settings.topic_labels_dlq, expect=1)
    assert {dict(r.headers)[constants.DLQ_HEADER_REASON] for r in dead} == {b"invalid_fields"}
    assert all(b"must be ISO-8601 text" in dict(r.headers)[constants.DLQ_HEADER_ERROR] for r in dead)
