"""The lateness rule decides the same whichever consumer process reads a record: a partition's newest
event time is kept in Redis at each commit and read back by the next owner of the partition."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata

from fraudstream import constants
from fraudstream.config import Settings
from fraudstream.kafka_io import ensure_topics, make_consumer
from fraudstream.models.events import Transaction
from fraudstream.stream.app import scoring_consumer
from fraudstream.stream.newest_times import KEPT, NewestTimes, note_cold_start
from fraudstream.stream.state import open_redis_store
from tests.kafka_helpers import produce_raw, read_topic

T0 = datetime(2024, 6, 1, tzinfo=timezone.utc)


def publish(settings: Settings, minutes: list[int], first: int) -> None:
    """Transactions of one customer (so one partition), `minutes` after T0, ids from `first` on."""
    txs = [Transaction(transaction_id=f"t{first + i}", customer_id="c1", terminal_id="m1", amount=10.0,
                       event_time=T0 + timedelta(minutes=m)) for i, m in enumerate(minutes)]
    produce_raw(settings, settings.topic_transactions, ((b"c1", tx.to_json_bytes()) for tx in txs))


@pytest.mark.services
def test_a_new_consumer_process_dead_letters_what_the_last_one_would_have(settings: Settings) -> None:
    ensure_topics(settings)
    publish(settings, [0, 60, 120], first=0)  # the partition's newest: T0 + 2 h
    with scoring_consumer(settings) as app:
        stats = app.run(max_transactions=3, idle_timeout=20)
    assert (stats.processed, stats.dead_lettered) == (3, 0)
    # another process of the group (a restart): T0 + 30 min is 90 min older than the newest, more than
    # the allowed lateness (1 h), as the first process would have found; T0 + 90 min is not
    publish(settings, [30, 90], first=3)
    with scoring_consumer(settings) as app:
        stats = app.run(max_transactions=2, idle_timeout=20)
    assert (stats.processed, stats.dead_lettered) == (1, 1)
    dead = read_topic(settings, settings.topic_dlq, expect=1)
    assert [(r.key, dict(r.headers)[constants.DLQ_HEADER_REASON]) for r in dead] == [(b"c1", b"too_late")]
    assert "2024-06-01T02:00:00+00:00" in dict(dead[0].headers)[constants.DLQ_HEADER_ERROR].decode()


@pytest.mark.services
def test_only_the_newest_time_of_the_committed_offset_is_taken(settings: Settings) -> None:
    """A batch's newest time is written before its commit: one written for a commit that never
    happened (a crash in between) must not be read for an earlier commit."""
    store = open_redis_store(settings)
    times = NewestTimes(store.client, settings.redis_key_prefix, settings.group_id)
    tp = TopicPartition(settings.topic_transactions, 0)
    times.save({tp: OffsetAndMetadata(10, "", -1)}, {tp: T0})
    times.save({tp: OffsetAndMetadata(25, "", -1)}, {tp: T0 + timedelta(hours=3)})  # its commit lost
    assert times.at(tp, 10) == T0
    assert times.at(tp, 25) == T0 + timedelta(hours=3)
    assert times.at(tp, 17) is None and times.at(tp, None) is None
    for offset in range(26, 26 + KEPT):
        times.save({tp: OffsetAndMetadata(offset, "", -1)}, {tp: T0 + timedelta(hours=4)})
    assert times.at(tp, 10) is None and store.client.zcard(times.key(tp)) == KEPT  # the oldest go
    assert 0 < store.client.pttl(times.key(tp)) <= 30 * 86_400_000


@pytest.mark.services
def test_a_trained_champion_starting_a_group_that_committed_nothing_is_warned_of(settings: Settings,
                                                                                 caplog: pytest.LogCaptureFixture) -> None:
    """A new deployment: its feature windows fill only as event time passes. Not said for a fresh
    champion (the demo's), nor once the group has committed."""
    ensure_topics(settings)
    consumer = make_consumer(settings)
    try:
        tp = TopicPartition(settings.topic_transactions, 0)
        consumer.assign([tp])
        with caplog.at_level("WARNING", logger="fraudstream.stream.newest_times"):
            assert note_cold_start({tp: consumer.committed(tp)}, labels_learned=0) is False
            assert note_cold_start({tp: consumer.committed(tp)}, labels_learned=1_200) is True
        assert "has learned 1200 labels and this consumer group has committed nothing yet" in caplog.text
        consumer.commit({tp: OffsetAndMetadata(0, "", -1)})
        assert note_cold_start({tp: consumer.committed(tp)}, labels_learned=1_200) is False
    finally:
        consumer.close()
