"""Dead letters: the original bytes, unchanged, with headers naming the error and the source."""

from __future__ import annotations

import logging
from typing import Any

from kafka import KafkaProducer
from kafka.consumer.fetcher import ConsumerRecord

from fraudstream import constants

log = logging.getLogger(__name__)


def dead_letter_headers(record: ConsumerRecord, reason: str, error: str) -> list[tuple[str, bytes]]:
    """Headers of a dead letter: reason, error text and source topic/partition/offset."""
    return [
        (constants.DLQ_HEADER_REASON, reason.encode()),
        (constants.DLQ_HEADER_ERROR, error.encode("utf-8", "replace")[:2000]),
        (constants.DLQ_HEADER_TOPIC, record.topic.encode()),
        (constants.DLQ_HEADER_PARTITION, str(record.partition).encode()),
        (constants.DLQ_HEADER_OFFSET, str(record.offset).encode()),
    ]


class DeadLetterWriter:
    """Sends bad records to a dead-letter topic; the caller flushes the producer before committing."""

    def __init__(self, producer: KafkaProducer, topic: str) -> None:
        self.producer = producer
        self.topic = topic
        self.count = 0

    def send(self, record: ConsumerRecord, reason: str, error: str) -> Any:
        self.count += 1
        log.warning(
            "dead-lettered: %s", error[:300],
            extra={"reason": reason, "topic": record.topic, "partition": record.partition, "offset": record.offset,
                   "dlq_topic": self.topic},
        )
        return self.producer.send(
            self.topic, key=record.key, value=record.value if record.value is not None else b"",
            headers=dead_letter_headers(record, reason, error),
        )
