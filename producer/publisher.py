"""Publishing transactions and labels: JSON values, key = customer id, delivery errors counted.

Sends are asynchronous and batched by the client; nothing waits per message. A failed delivery is
counted by a callback and `close()` raises `ServiceError` if any failed, after flushing.
"""

from __future__ import annotations

import logging
from typing import Any

from kafka import KafkaProducer

from fraudstream.config import Settings
from fraudstream.errors import ServiceError
from fraudstream.kafka_io import make_producer
from fraudstream.models.events import Label, Transaction

log = logging.getLogger(__name__)


class Publisher:
    """A Kafka producer for the transactions and labels topics of `settings`."""

    def __init__(self, settings: Settings, producer: KafkaProducer | None = None, **overrides: Any) -> None:
        self.settings = settings
        self.producer = producer or make_producer(settings, **overrides)
        self.transactions = 0
        self.labels = 0
        self.failures = 0
        self.first_failure: BaseException | None = None

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        if self.first_failure is None:
            self.first_failure = exc
            log.error("delivery failed: %s", exc)

    def send_transaction(self, tx: Transaction) -> None:
        self.send_raw(self.settings.topic_transactions, tx.customer_id.encode(), tx.to_json_bytes())
        self.transactions += 1

    def send_label(self, label: Label) -> None:
        self.send_raw(self.settings.topic_labels, label.customer_id.encode(), label.to_json_bytes())
        self.labels += 1

    def send_raw(self, topic: str, key: bytes, value: bytes) -> None:
        self.producer.send(topic, key=key, value=value).add_errback(self._failed)

    def flush(self, timeout: float | None = 60.0) -> None:
        try:
            self.producer.flush(timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - kafka-python raises its own timeout types
            raise ServiceError(f"could not deliver to Kafka within {timeout} s: {exc}") from exc
        if self.failures:
            raise ServiceError(f"{self.failures} message(s) could not be delivered; first error: {self.first_failure}")

    def close(self) -> None:
        """Flush, then close the client; raises `ServiceError` if any delivery failed."""
        try:
            self.flush()
        finally:
            self.producer.close(timeout=10)
