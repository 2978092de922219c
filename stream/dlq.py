"""Dead letters: the original bytes, unchanged, with headers naming the error and the source; and
the flush that a batch's sends (alerts, dead letters) must pass before its offsets are committed."""

from __future__ import annotations

import logging
from typing import Any

from kafka import KafkaProducer
from kafka.consumer.fetcher import ConsumerRecord

from fraudstream import constants
from fraudstream.errors import FraudstreamError

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


DeadLetter = tuple[DeadLetterWriter, ConsumerRecord, str, str]  # writer, record, reason, error


class PublishFailed(FraudstreamError):
    """The broker did not acknowledge an alert or dead letter; the batch is not committed."""


def flush_acknowledged(producer: KafkaProducer, futures: list[Any], resend: list[DeadLetter] | None = None) -> None:
    """Flush the producer; raise `PublishFailed` unless every send of `futures` was acknowledged.
    `resend`: the dead letters the futures are of; the unacknowledged ones are sent again and their
    futures replaced in `futures`, for the caller's next try.

    >>> from types import SimpleNamespace as Sent
    >>> acked, lost = Sent(is_done=True, failed=lambda: False), Sent(is_done=False)
    >>> producer = Sent(flush=lambda timeout: None)
    >>> writer = Sent(send=lambda record, reason, error: acked)  # sends again, acknowledged this time
    >>> futures = [acked, lost]
    >>> try:
    ...     flush_acknowledged(producer, futures, resend=[(writer, "record 1", "too_late", "..."),
    ...                                                   (writer, "record 2", "too_late", "...")])
    ... except PublishFailed as exc:
    ...     print(exc)
    1 sends not acknowledged: timed out
    >>> futures == [acked, acked]  # only the lost one was sent again
    True
    """
    if not futures:
        return
    producer.flush(timeout=30)
    failed = [i for i, f in enumerate(futures) if not f.is_done or f.failed()]
    if failed:
        first = futures[failed[0]]
        if resend is not None:
            again = set(failed)
            futures[:] = [resend[i][0].send(*resend[i][1:]) if i in again else f for i, f in enumerate(futures)]
        raise PublishFailed(f"{len(failed)} sends not acknowledged: {first.exception if first.is_done else 'timed out'}")
