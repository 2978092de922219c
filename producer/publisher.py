"""Publishing transactions and labels: JSON values, key = customer id, delivery errors counted.

Sends are asynchronous and batched by the client; nothing waits per message. A failed delivery is
counted by a callback and `close()` raises `ServiceError` if any failed, after flushing. Values are
serialised by `fraudstream.producer.wire` (the models' JSON, byte for byte, built cheaply).

Long runs (replay, produce) call `confirm_if_due()` after each send: every `DELIVERED_EVERY_S` it
waits for every record sent so far to be acknowledged, so that a broker that goes away stops the run
within `DELIVERY_WAIT_S` (kafka-python alone gives up on a record only after 2 minutes, the run going
on meanwhile). After a failure, `close_after_failure()` ends quickly and logs instead of raising: the
first error is the one to report.

The partition of a key is computed as kafka-python's default partitioner does (murmur2 of the key
modulo the topic's partition count, looked up once per topic) and cached per key, which saves a
good share of the client's per-message cost when customers repeat.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError
from kafka.partitioner.default import murmur2

from fraudstream.config import Settings
from fraudstream.errors import ServiceError
from fraudstream.kafka_io import close_producer, make_producer
from fraudstream.models.events import Label, Transaction
from fraudstream.producer.wire import label_json, transaction_json

log = logging.getLogger(__name__)


_MAX_CACHED_KEYS = 1_000_000
DELIVERED_EVERY_S = 2.0  # how often a long run waits for every record sent so far to be acknowledged
DELIVERY_WAIT_S = 30.0  # how long it waits then, before it stops with a `ServiceError`


class Publisher:
    """A Kafka producer for the transactions and labels topics of `settings`."""

    def __init__(self, settings: Settings, producer: KafkaProducer | None = None, **overrides: Any) -> None:
        self.settings = settings
        self.producer = producer or make_producer(settings, **overrides)
        self.transactions = 0
        self.labels = 0
        self.failures = 0
        self.first_failure: BaseException | None = None
        self.closed = False
        self._confirmed_at = time.monotonic()
        self._partitions: dict[str, dict[bytes, int]] = {}
        self._counts: dict[str, list[int]] = {}

    def partition(self, topic: str, key: bytes) -> int:
        """The default partitioner's choice for `key`, cached."""
        cache = self._partitions.get(topic)
        if cache is None:
            parts = sorted(self.producer.partitions_for(topic))
            self._counts[topic] = parts
            cache = self._partitions[topic] = {}
        partition = cache.get(key)
        if partition is None:
            parts = self._counts[topic]
            if len(cache) >= _MAX_CACHED_KEYS:
                cache.clear()
            partition = cache[key] = parts[(murmur2(key) & 0x7FFFFFFF) % len(parts)]
        return partition

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        if self.first_failure is None:
            self.first_failure = exc
            log.error("delivery failed: %s", exc)

    def send(self, topic: str, key: bytes, value: bytes) -> None:
        """Send one message to `topic` (partition by key, as the default partitioner would);
        `ServiceError` once a delivery has failed, instead of sending more after it."""
        if self.first_failure is not None:
            raise ServiceError(f"delivery failed: {self.first_failure}")
        try:
            self.producer.send(topic, key=key, value=value,
                               partition=self.partition(topic, key)).add_errback(self._failed)
        except KafkaError as exc:  # no metadata in max_block_ms, the buffer full for as long: a broker away
            raise ServiceError(f"could not send to Kafka: {exc}") from exc

    def send_transaction(self, tx: Transaction) -> None:
        self.send(self.settings.topic_transactions, tx.customer_id.encode(), transaction_json(tx))
        self.transactions += 1

    def send_label(self, label: Label) -> None:
        self.send_label_value(label.customer_id.encode(), label_json(label))

    def send_label_value(self, key: bytes, value: bytes) -> None:
        """Send a label serialised beforehand (key = customer id; see `wire.label_json_for`)."""
        self.send(self.settings.topic_labels, key, value)
        self.labels += 1

    def flush(self, timeout: float | None = 60.0) -> None:
        """Wait (at most `timeout` s) until every record sent so far is acknowledged; `ServiceError`
        if that takes longer or any delivery failed."""
        try:
            self.producer.flush(timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - kafka-python raises its own timeout types
            raise ServiceError(f"could not deliver to Kafka within {timeout} s: {exc}") from exc
        if self.failures:
            raise ServiceError(f"{self.failures} message(s) could not be delivered; first error: {self.first_failure}")
        self._confirmed_at = time.monotonic()

    def confirm_if_due(self) -> bool:
        """Flush (waiting at most `DELIVERY_WAIT_S`) if the last confirmed flush is `DELIVERED_EVERY_S`
        old; True when it did, so every record sent so far is delivered. ~0.1 µs when not due."""
        if time.monotonic() - self._confirmed_at < DELIVERED_EVERY_S:
            return False
        self.flush(DELIVERY_WAIT_S)
        return True

    def close(self, timeout: float = 60.0) -> None:
        """Flush (waiting at most `timeout` s), then close the client; raises `ServiceError` if any
        delivery failed."""
        if self.closed:  # (a failure path may close it again)
            return
        self.closed = True
        try:
            self.flush(timeout)
        finally:
            close_producer(self.producer, min(10.0, timeout))  # after a failed flush, its own fails too

    def close_after_failure(self, timeout: float = 1.0, keep_open: bool = False) -> None:
        """After a run failed: flush what is buffered (waiting at most `timeout` s) and close the
        client, unless `keep_open` (a publisher the caller owns); logs an error instead of raising,
        since the run's own error is the one to report."""
        try:
            if keep_open:
                self.flush(timeout)
            else:
                self.close(timeout)
        except Exception as exc:  # noqa: BLE001 - the original error matters more
            log.error("could not flush after a failed run: %s", exc)
