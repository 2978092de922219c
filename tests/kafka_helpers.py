"""Independent kafka-python helpers for tests: raw produce, read a whole topic, committed offsets."""

from __future__ import annotations

import time
from collections.abc import Iterable

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from fraudstream.config import Settings


def produce_raw(settings: Settings, topic: str, items: Iterable[tuple[bytes | None, bytes]]) -> int:
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=5)
    count = 0
    for key, value in items:
        producer.send(topic, key=key, value=value)
        count += 1
    producer.flush()
    producer.close()
    return count


def read_topic(settings: Settings, topic: str, timeout: float = 20.0, expect: int | None = None) -> list[ConsumerRecord]:
    """Every record of `topic`, read without a group, up to the fetch high watermark of each partition."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None, enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        records: list[ConsumerRecord] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=300)
            for recs in batch.values():
                records.extend(recs)
            done = all(
                consumer.highwater(tp) is not None and consumer.position(tp) >= consumer.highwater(tp) for tp in parts
            )
            if done and not batch and (expect is None or len(records) >= expect):
                break
        return records
    finally:
        consumer.close()


def committed_and_end(settings: Settings, topic: str) -> tuple[dict[int, int | None], dict[int, int]]:
    """The group's committed offsets and the end of each partition (fetch high watermark)."""
    reader = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=settings.group_id,
                           enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(reader.partitions_for_topic(topic) or [])]
        committed = {tp.partition: reader.committed(tp) for tp in parts}
    finally:
        reader.close(autocommit=False)
    records = read_topic(settings, topic)
    ends: dict[int, int] = {}
    for record in records:
        ends[record.partition] = max(ends.get(record.partition, 0), record.offset + 1)
    return committed, ends
