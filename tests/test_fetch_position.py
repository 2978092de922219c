"""`kafka_io.fetch_position` and `unfetched` on the real broker: the position kafka-python's
`position()` gives, without its refreshes, before, during and after a partition is read."""

from __future__ import annotations

from kafka import KafkaConsumer, TopicPartition

from fraudstream.config import Settings
from fraudstream.kafka_io import ensure_topics, fetch_position, unfetched
from tests.kafka_helpers import produce_raw


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
