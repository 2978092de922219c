"""Kafka clients built from settings, topic creation, and end-of-log lookup.

Tansu workaround (kept here and nowhere else): Tansu answers ListOffsets(latest) with the base
offset of the last record batch instead of the high watermark, so `end_offsets()` and
`seek_to_end()` fall short by the last batch there. `end_of_log()` therefore prefers the high
watermark that every fetch response carries (`consumer.highwater(tp)`), which is right on both
Tansu and Apache Kafka, and falls back to `end_offsets()` only before the first fetch.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from fraudstream.config import Settings
from fraudstream.errors import ConfigError

log = logging.getLogger(__name__)


def client_config(settings: Settings) -> dict[str, Any]:
    """Connection settings shared by producers, consumers and admin clients (incl. SASL/SSL)."""
    if not settings.kafka_bootstrap:
        raise ConfigError("no Kafka bootstrap servers: set FRAUDSTREAM_KAFKA_BOOTSTRAP or run `fraudstream up`")
    config: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap.split(","),
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_sasl_mechanism:
        config["sasl_mechanism"] = settings.kafka_sasl_mechanism
        config["sasl_plain_username"] = settings.kafka_sasl_username
        if settings.kafka_sasl_password is not None:
            config["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    if settings.kafka_ssl_cafile:
        config["ssl_cafile"] = settings.kafka_ssl_cafile
    return config


def make_producer(settings: Settings, **overrides: Any) -> KafkaProducer:
    """A producer that waits for the leader's acknowledgement and batches briefly."""
    # acks=1 with idempotence off: the embedded Tansu broker is memory-only anyway; duplicates from
    # retries are harmless because every effect downstream is keyed by transaction id.
    config = {"acks": 1, "enable_idempotence": False, "linger_ms": 5, "batch_size": 256 * 1024,
              "max_request_size": 4 * 1024 * 1024}
    config.update(overrides)
    return KafkaProducer(**client_config(settings), **config)


def make_consumer(settings: Settings, topics: Iterable[str] | None = None, **overrides: Any) -> KafkaConsumer:
    """A consumer with manual commits and group settings that make joins take seconds."""
    config: dict[str, Any] = {
        "group_id": settings.group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": settings.session_timeout_ms,
        "heartbeat_interval_ms": settings.heartbeat_interval_ms,
        "max_poll_records": settings.max_poll_records,
        "fetch_max_wait_ms": settings.fetch_max_wait_ms,
        "fetch_max_bytes": 16 * 1024 * 1024,
        "max_partition_fetch_bytes": 4 * 1024 * 1024,
    }
    config.update(overrides)
    consumer = KafkaConsumer(**client_config(settings), **config)
    if topics:
        consumer.subscribe(list(topics))
    return consumer


def all_topics(settings: Settings) -> list[str]:
    return [settings.topic_transactions, settings.topic_labels, settings.topic_alerts,
            settings.topic_dlq, settings.topic_labels_dlq]


def ensure_topics(settings: Settings, topics: Iterable[str] | None = None, partitions: int | None = None) -> list[str]:
    """Create the topics that do not exist yet; return the names created."""
    wanted = list(topics) if topics is not None else all_topics(settings)
    admin = KafkaAdminClient(**client_config(settings))
    try:
        existing = set(admin.list_topics())
        missing = [t for t in wanted if t not in existing]
        if missing:
            count = partitions or settings.topic_partitions
            try:
                admin.create_topics([NewTopic(t, count, 1) for t in missing])
            except TopicAlreadyExistsError:
                pass
            log.info("created topics %s with %d partitions", missing, count)
        return missing
    finally:
        admin.close()


def partitions_of(consumer: KafkaConsumer, topic: str) -> list[TopicPartition]:
    parts = consumer.partitions_for_topic(topic) or set()
    return [TopicPartition(topic, p) for p in sorted(parts)]


def end_of_log(consumer: KafkaConsumer, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
    """The offset after the last record of each partition (see the module docstring for Tansu)."""
    partitions = list(partitions)
    result: dict[TopicPartition, int] = {}
    unknown: list[TopicPartition] = []
    for tp in partitions:
        high = consumer.highwater(tp) if tp in consumer.assignment() else None
        if high is None:
            unknown.append(tp)
        else:
            result[tp] = high
    if unknown:
        result.update(consumer.end_offsets(unknown))
    return result
