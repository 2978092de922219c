"""`kafka_io.fetch_position` and `unfetched` on the real broker: the position kafka-python's
`position()` gives, without its refreshes, before, during and after a partition is read; and
`PastEndRewinder`, for a position past the end of its log (a log recreated under a consumer)."""

from __future__ import annotations

import logging
import time

import pytest
from kafka import KafkaConsumer, TopicPartition

from fraudstream.config import Settings
from fraudstream.kafka_io import ensure_topics, fetch_position, unfetched
from fraudstream.kafka_rewind import PastEndRewinder
from fraudstream.stream.app import scoring_consumer
from fraudstream.stream.stats import LAG_FROM_BROKER_EVERY_S, RunStats
from tests.consumer_procs import scored_ids, scripted_stream
from tests.kafka_helpers import produce_raw
from tests.servers import Endpoints
from tests.test_reliability import publish


def test_fetch_position_is_kafka_pythons_position_as_a_partition_is_read(settings: Settings) -> None:
    ensure_topics(settings)
    topic = settings.topic_transactions
    produce_raw(settings, topic, [(f"c{i % 7}".encode(), b"x" * 40) for i in range(300)])
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None, enable_auto_commit=False,
                             max_poll_records=25)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        # no position yet: the fallback resolves it (the beginning) as `position` does
        assert [fetch_position(consumer, tp) for tp in parts] == [0] * len(parts)
        seen: list[tuple[int, ...]] = []
        read = 0
        position, asked = consumer.position, []
        consumer.position = lambda tp, **kw: asked.append(tp) or position(tp, **kw)  # type: ignore[method-assign]
        for _ in range(200):
            read += sum(len(r) for r in consumer.poll(timeout_ms=200).values())
            mine = tuple(fetch_position(consumer, tp) for tp in parts)
            assert mine == tuple(position(tp) for tp in parts)
            seen.append(mine)
            if read == 300 and all(unfetched(consumer, tp) == 0 for tp in parts):
                break
        assert read == 300
        assert asked == []  # every partition had a position after the first poll: read without `position`
        assert len(set(seen)) > 3  # positions moved in steps of the poll's 25 records, and were followed
        assert sum(fetch_position(consumer, tp) for tp in parts) == 300
        consumer.seek(parts[0], 1)  # a seek moves it at once
        assert fetch_position(consumer, parts[0]) == 1 == consumer.position(parts[0])
        assert unfetched(consumer, parts[0]) == consumer.highwater(parts[0]) - 1
    finally:
        consumer.close()


def poll_until_fetched(consumer: KafkaConsumer, parts: list[TopicPartition]) -> int:
    """Poll until every partition has a high watermark from a fetch; the records polled."""
    read = 0
    for _ in range(50):
        read += sum(len(r) for r in consumer.poll(timeout_ms=200).values())
        if all(consumer.highwater(tp) is not None for tp in parts):
            break
    return read


@pytest.mark.parametrize("reset", ["earliest", "latest"])
def test_a_position_that_stays_past_the_end_of_its_log_is_reset_as_auto_offset_reset_says(
        settings: Settings, reset: str, caplog: pytest.LogCaptureFixture) -> None:
    """On Tansu such a partition gets no records and no error; `PastEndRewinder` resets it once it has
    stayed there for its wait, not at once. (Apache Kafka answers OFFSET_OUT_OF_RANGE and kafka-python
    resets it itself: the end is the same.)"""
    ensure_topics(settings)
    topic = settings.topic_transactions
    produce_raw(settings, topic, [(b"c1", b"x" * 40) for _ in range(30)])  # one key: one partition
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None, enable_auto_commit=False,
                             auto_offset_reset=reset)
    rewinder = PastEndRewinder(wait_s=1.5)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        assert poll_until_fetched(consumer, parts) == 30
        assert rewinder.check(consumer) == []  # every position at (or before) its end: nothing to do
        full = next(tp for tp in parts if consumer.highwater(tp) == 30)
        consumer.seek(full, 500)  # where a consumer is left when the log under it starts again
        read, rewound, checks = 0, [], []
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="fraudstream.kafka_rewind"):
            while time.monotonic() - started < 10 and consumer.position(full) == 500:
                read += sum(len(r) for r in consumer.poll(timeout_ms=200).values())
                rewound = rewinder.check(consumer)
                checks.append((time.monotonic() - started, rewound))
        client_reset = not rewound  # Apache Kafka: kafka-python reset it on OFFSET_OUT_OF_RANGE
        if not client_reset:  # Tansu: left alone for the wait, then rewound
            assert rewound == [full] and all(not r for t, r in checks[:-1]) and checks[-1][0] >= 1.5
        assert consumer.position(full) == (0 if reset == "earliest" else 30)
        assert rewinder.check(consumer) == []
        read += poll_until_fetched(consumer, parts)
        for _ in range(10):
            read += sum(len(r) for r in consumer.poll(timeout_ms=100).values())
        assert read == (30 if reset == "earliest" else 0)
        warned = [r.getMessage() for r in caplog.records  # (another test's logging may let INFO through)
                  if r.name == "fraudstream.kafka_rewind" and r.levelno == logging.WARNING]
        assert len(warned) == (0 if client_reset else 1)
        assert client_reset or (f"{topic}[{full.partition}]: position 500 has been past the end of its log (30) for "
                                in warned[0])
    finally:
        consumer.close()


def test_the_scoring_consumer_reads_again_a_partition_whose_log_starts_again(settings: Settings, servers: Endpoints,
                                                                              caplog: pytest.LogCaptureFixture) -> None:
    """A partition the consumer kept while the broker lost its log (Tansu, memory storage,
    restarted) is read from its new start instead of stalling with a lag of 0 (Apache Kafka's
    OFFSET_OUT_OF_RANGE has kafka-python do it: the same end, without fraudstream's warning)."""
    ensure_topics(settings)
    txs = scripted_stream(400)
    publish(settings, txs[:300])
    with scoring_consumer(settings) as app:
        app.past_end.wait_s = 1.0
        assert app.run(max_transactions=300, idle_timeout=30).processed == 300
        stalled = max((tp for tp in app.consumer.assignment() if tp.topic == settings.topic_transactions),
                      key=lambda tp: app.consumer.position(tp))
        read_before = app.consumer.position(stalled)
        app.consumer.seek(stalled, read_before + 1000)
        publish(settings, txs[300:])
        with caplog.at_level(logging.WARNING, logger="fraudstream.kafka_rewind"):
            stats = app.run(idle_timeout=3)
    # its first records were scored already: delivered again, not scored again
    assert (stats.processed - stats.delivered_again, stats.delivered_again) == (400, read_before)
    assert {tx.transaction_id for tx in txs} <= scored_ids(settings)
    assert servers.kind != "embedded" or any(
        f"{stalled.topic}[{stalled.partition}]: position" in r.getMessage() for r in caplog.records
        if r.name == "fraudstream.kafka_rewind" and r.levelno == logging.WARNING)


def test_a_topic_deleted_and_created_again_under_the_consumer_is_read_from_its_new_start(
        settings: Settings, servers: Endpoints, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its new log grows past the old positions before a fetch finds it past the end: without the
    topic id's watch, the records before those positions were never scored (seen on Tansu: 998)."""
    import threading

    from kafka import KafkaAdminClient, KafkaProducer

    from fraudstream import kafka_io

    monkeypatch.setattr(kafka_io, "METADATA_MAX_AGE_MS", 1000)  # the id's change seen within 1 s
    ensure_topics(settings)
    topic = settings.topic_transactions
    old, new = scripted_stream(300), scripted_stream(700)[300:]  # other ids, later times
    publish(settings, old)
    with scoring_consumer(settings) as app:
        assert app.run(max_transactions=300, idle_timeout=30).processed == 300
        assigned = sorted(tp for tp in app.consumer.assignment() if tp.topic == topic)
        positions = [app.consumer.position(tp) for tp in assigned]
        runs: list[object] = []
        running = threading.Thread(target=lambda: runs.append(app.run(max_transactions=700, idle_timeout=20)))
        with caplog.at_level(logging.WARNING, logger="fraudstream.kafka_rewind"):
            running.start()  # polling, as a live consumer does, while its topic goes and comes back
            admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
            try:
                admin.delete_topics([topic])
                deadline = time.monotonic() + 20
                while topic in admin.list_topics() and time.monotonic() < deadline:
                    time.sleep(0.2)
            finally:
                admin.close()
            ensure_topics(settings, [topic])  # (Tansu may have created it already, from a metadata request)
            producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=5)
            try:  # into the partitions the consumer holds (a topic created anew may have more: not this test's)
                for i, t in enumerate(new):
                    producer.send(topic, key=t.customer_id.encode(), value=t.to_json_bytes(),
                                  partition=assigned[i % len(assigned)].partition)
                producer.flush()
            finally:
                producer.close()
            running.join(timeout=90)
    assert runs and not running.is_alive()
    assert len(new) > sum(positions) and {t.transaction_id for t in new} <= scored_ids(settings)
    warned = [r.getMessage() for r in caplog.records if r.name == "fraudstream.kafka_rewind" and r.levelno == logging.WARNING]
    # on Tansu the watch did it (Apache Kafka's answers may have had kafka-python reset the positions first)
    assert servers.kind != "embedded" or any("the topic was deleted and created again (its id changed)" in m
                                             for m in warned), warned


def test_the_lag_counts_what_was_published_since_the_last_fetch_once_the_broker_is_asked(settings: Settings) -> None:
    """Fetches that stop (a broker in trouble; here the partitions paused) leave the fetches' high
    watermarks behind: `keep_lag` asks the broker every `LAG_FROM_BROKER_EVERY_S` and then counts
    what was published since, also between asks."""
    ensure_topics(settings)
    topic = settings.topic_transactions
    produce_raw(settings, topic, [(b"c1", b"x" * 40) for _ in range(30)])  # one key: one partition
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None, enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        read = poll_until_fetched(consumer, parts)
        for _ in range(50):
            if read == 30 and all(unfetched(consumer, tp) == 0 for tp in parts):
                break
            read += sum(len(r) for r in consumer.poll(timeout_ms=200).values())
        stats = RunStats()
        stats.keep_lag(consumer, now=100.0)  # the first round asks the broker
        assert read == 30 and sum(stats.lag.values()) == 0, (read, stats.lag)
        consumer.pause(*parts)  # no fetch from here on
        produce_raw(settings, topic, [(b"c1", b"y" * 40) for _ in range(200)])
        produce_raw(settings, topic, [(b"c1", b"z" * 40)])  # a last batch of one: Tansu's end is its base offset
        stats.keep_lag(consumer, now=101.0)
        assert sum(stats.lag.values()) == 0  # not asked yet: the fetches' watermarks, of before
        stats.keep_lag(consumer, now=100.0 + LAG_FROM_BROKER_EVERY_S)
        asked = sum(stats.lag.values())
        stats.keep_lag(consumer, now=101.0 + LAG_FROM_BROKER_EVERY_S)
        assert 200 <= asked <= 201 and sum(stats.lag.values()) == asked, (asked, stats.lag)
    finally:
        consumer.close()


def test_the_lag_is_kept_when_the_metadata_lacks_a_partitions_leader(settings: Settings) -> None:
    """kafka-python's end_offsets raises KeyError (not a KafkaError) for a partition whose leader the
    metadata lacks (a topic deleted, a leader being elected): `keep_lag`, once a round of the
    consumer's loop, must not let it end the loop."""
    ensure_topics(settings)
    topic = settings.topic_transactions
    produce_raw(settings, topic, [(b"c1", b"x" * 40) for _ in range(30)])
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None, enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        poll_until_fetched(consumer, parts)
        stats = RunStats()
        stats.keep_lag(consumer, now=100.0)
        before = dict(stats.broker_ends)
        cluster = consumer._fetcher._manager.cluster  # kafka-python 3's metadata
        leader = cluster.leader_for_partition
        cluster.leader_for_partition = lambda tp: None if tp == parts[0] else leader(tp)  # type: ignore[method-assign]
        stats.keep_lag(consumer, now=100.0 + LAG_FROM_BROKER_EVERY_S)  # asks the broker: KeyError inside
        assert stats.broker_ends == before and set(stats.lag) == {(tp.topic, tp.partition) for tp in parts}
    finally:
        consumer.close()
