"""The scoring consumer loop: poll a batch, validate, features, score, alert, learn, flush, commit.

Offsets of a batch are committed only after its Redis writes (features, scored records) are
acknowledged and its alerts and dead letters are acknowledged by the broker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.structs import OffsetAndMetadata

from fraudstream.config import Settings
from fraudstream.errors import FraudstreamError, ValidationFailed
from fraudstream.models.events import Alert, Label, Transaction
from fraudstream.stream.decode import RecordValidator
from fraudstream.stream.dlq import DeadLetterWriter
from fraudstream.stream.features import FeatureEngine
from fraudstream.stream.scoring import Scorer
from fraudstream.stream.stats import RunStats
from fraudstream.timeutil import utcnow

log = logging.getLogger(__name__)

AlertCallback = Callable[[Alert], None]


class PublishFailed(FraudstreamError):
    """The broker did not acknowledge an alert or dead letter; the batch is not committed."""


@dataclass
class ScoringConsumer:
    """Consumes transactions and labels; see the module docstring for the guarantees."""

    settings: Settings
    engine: FeatureEngine
    scorer: Scorer
    consumer: KafkaConsumer
    producer: KafkaProducer
    on_alert: AlertCallback | None = None
    stats: RunStats = field(default_factory=RunStats)
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        s = self.settings
        self.validator = RecordValidator(s.max_record_bytes, s.max_future_skew, s.allowed_lateness)
        self.tx_dlq = DeadLetterWriter(self.producer, s.topic_dlq)
        self.label_dlq = DeadLetterWriter(self.producer, s.topic_labels_dlq)
        self.watermarks: dict[TopicPartition, datetime] = {}

    # -- loop ------------------------------------------------------------------------------------
    def run(self, max_transactions: int | None = None, idle_timeout: float | None = None) -> RunStats:
        """Process batches until `stop` is set, `max_transactions` were scored, or nothing arrived
        for `idle_timeout` seconds (counted once partitions are assigned)."""
        last_activity = time.monotonic()
        while not self.stop.is_set():
            batch = self.consumer.poll(timeout_ms=200, max_records=self.settings.max_poll_records)
            if batch:
                self.process(batch)
                last_activity = time.monotonic()
            elif not self.consumer.assignment():
                last_activity = time.monotonic()
            if max_transactions is not None and self.stats.processed + self.stats.dead_lettered >= max_transactions:
                break
            if idle_timeout is not None and time.monotonic() - last_activity >= idle_timeout:
                log.info("idle for %.0f s, stopping", idle_timeout)
                break
        return self.stats

    def process(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        """Handle one poll batch completely, then commit its offsets."""
        tx_records: list[tuple[ConsumerRecord, Transaction]] = []
        label_records: list[tuple[ConsumerRecord, Label]] = []
        pending: list[Any] = []
        for tp, records in batch.items():
            if tp.topic == self.settings.topic_labels:
                for record in records:
                    try:
                        label_records.append((record, self.validator.label(record.value)))
                    except ValidationFailed as exc:
                        pending.append(self.label_dlq.send(record, exc.reason, str(exc)))
                        self.stats.labels_dead_lettered += 1
                continue
            watermark = self.watermarks.get(tp)
            for record in records:
                try:
                    tx = self.validator.transaction(record.value, watermark)
                except ValidationFailed as exc:
                    pending.append(self.tx_dlq.send(record, exc.reason, str(exc)))
                    self.stats.dead_lettered += 1
                    continue
                if watermark is None or tx.event_time > watermark:
                    watermark = tx.event_time
                tx_records.append((record, tx))
            if watermark is not None:
                self.watermarks[tp] = watermark

        if tx_records:
            pending.extend(self._score(tx_records))
        if label_records:
            pending.extend(self._learn(label_records))
        self._flush(pending)
        self._commit(batch)
        self.stats.batches += 1

    # -- steps -----------------------------------------------------------------------------------
    def _score(self, tx_records: list[tuple[ConsumerRecord, Transaction]]) -> list[Any]:
        txs = [tx for _, tx in tx_records]
        features = self.engine.transform(txs)
        scores = self.scorer.score(features)
        name = self.scorer.champion.name
        self.engine.record_scored(txs, features, [{name: s} for s in scores])
        now = utcnow()
        now_ms = now.timestamp() * 1000.0
        futures: list[Any] = []
        threshold = self.scorer.threshold
        for (record, tx), x, score in zip(tx_records, features, scores):
            latency_ms = max(0.0, now_ms - record.timestamp) if record.timestamp and record.timestamp > 0 else 0.0
            self.stats.observe_latency(latency_ms)
            if score >= threshold:
                alert = self.scorer.alert(tx, x, score, now, latency_ms)
                futures.append(self.producer.send(
                    self.settings.topic_alerts, key=tx.transaction_id.encode(), value=alert.to_json_bytes()))
                self.stats.alerts += 1
                if self.on_alert is not None:
                    self.on_alert(alert)
        self.stats.processed += len(txs)
        clock = time.monotonic()
        if self.stats.first_record is None:
            self.stats.first_record = clock
        self.stats.last_record = clock
        return futures

    def _learn(self, label_records: list[tuple[ConsumerRecord, Label]]) -> list[Any]:
        labels = [label for _, label in label_records]
        records = self.engine.apply_labels(labels)
        futures: list[Any] = []
        for (record, label), scored in zip(label_records, records):
            if scored is None:
                futures.append(self.label_dlq.send(
                    record, "unknown_transaction",
                    f"no scored record for transaction {label.transaction_id} (not scored yet, expired, "
                    "or its label was already applied)"))
                self.stats.labels_dead_lettered += 1
                continue
            self.scorer.learn(scored.features, label.is_fraud)
            self.stats.labels_learned += 1
        return futures

    def _flush(self, futures: list[Any]) -> None:
        if not futures:
            return
        self.producer.flush(timeout=30)
        failed = [f for f in futures if f.failed() or not f.is_done]
        if failed:
            first = failed[0].exception if failed[0].is_done else "timed out"
            raise PublishFailed(f"{len(failed)} alert/dead-letter sends not acknowledged: {first}")

    def _commit(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        offsets = {tp: OffsetAndMetadata(records[-1].offset + 1, "", -1) for tp, records in batch.items() if records}
        if offsets:
            self.consumer.commit(offsets)
