"""Event time as a real feed stresses it: a transaction dated ahead of the consumer's clock (a
terminal whose clock is wrong, local time written with a `Z`) and the lateness rule."""

from __future__ import annotations

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
