"""The steps of a scoring consumer's batch, each idempotent (so each may be retried): features,
scores and alerts of its transactions (`_score`), learning from its labels (`_learn`), sending its
dead letters. `stream.consumer.ScoringConsumer` has them, and runs them in its loop: when, in
which order, retried how, and the commit after them, are its.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from kafka import KafkaProducer
from kafka.consumer.fetcher import ConsumerRecord

from fraudstream.config import Settings
from fraudstream.models.events import Alert, Label, Transaction
from fraudstream.stream.dlq import DeadLetter, DeadLetterWriter, flush_acknowledged
from fraudstream.stream.features import FEATURE_NAMES, FeatureEngine, ScoredRecord
from fraudstream.stream.label_fates import label_entries, label_fates
from fraudstream.stream.label_stream import LabelOutcome
from fraudstream.stream.scoring import Scorer
from fraudstream.stream.state.base import Ready
from fraudstream.stream.stats import RunStats

T = TypeVar("T")


class BatchSteps:
    """A batch's steps; the attributes below, `_retry` and `_prepare_ahead` are the consumer's."""

    settings: Settings
    engine: FeatureEngine
    scorer: Scorer
    producer: KafkaProducer
    stats: RunStats
    tx_dlq: DeadLetterWriter
    label_dlq: DeadLetterWriter
    marker_margin_ms: int
    maintained: bool

    if TYPE_CHECKING:
        def _retry(self, what: str, step: Callable[[], T]) -> T: ...

        def _prepare_ahead(self, ready: Ready | None = None) -> None: ...

    def _score(self, run: list[tuple[ConsumerRecord, Transaction]]) -> list[Alert]:
        """Features, scores and alerts of new transactions; a transaction delivered again whose scored
        record is kept, or twice in this batch, is not scored again: its alert, if it had one, is
        sent again byte for byte."""
        learn: Callable[[], None] | None = self._retry("model maintenance", self.scorer.maintenance)  # its reads first
        self.maintained = True

        def meanwhile(ready: Ready) -> None:  # while Redis works on the customers, then on the terminals
            nonlocal learn
            if learn is not None:  # the model's learning, before it scores: whatever `ready` says
                self._retry("model maintenance", learn)
                learn = None
            self._prepare_ahead(ready)

        batch = self.engine.transform_batch([tx for _, tx in run], meanwhile=meanwhile)
        new = batch.to_score()  # positions in `run`
        again = [(tx, stored) for (_, tx), stored in zip(run, batch.stored) if stored is not None]
        repeats = len(batch.repeats)  # later copies in this batch: the first copy's alert is sent again
        conflicts = [delivered for delivered, conflict in zip(run, batch.conflict) if conflict]
        features = batch.features if len(new) == len(run) else batch.features[new]
        scores, per_model = self.scorer.score_matrix(FEATURE_NAMES, features)  # champion's, every model's
        new_txs = [run[i][1] for i in new]
        found, latencies = self.scorer.alerts(new_txs, [run[i][0].timestamp for i in new], scores,
                                              lambda k: batch.row(new[k]))
        payloads = [None if alert is None else alert.to_json_bytes() for alert in found]
        self.engine.record_rows(new_txs, [batch.times[i] for i in new], features, per_model, payloads,
                                meanwhile=self._prepare_ahead)
        sends = [(tx.transaction_id, p) for tx, p in zip(new_txs, payloads) if p is not None]
        resent = [(tx.transaction_id, stored.alert) for tx, stored in again if stored.alert is not None]
        if repeats:
            at = {p: k for k, p in enumerate(new)}
            resent += [(run[i][1].transaction_id, payloads[at[j]]) for i, j in batch.repeats.items()
                       if payloads[at[j]] is not None]
        topic = self.settings.topic_alerts
        futures = [self.producer.send(topic, key=txid.encode(), value=p) for txid, p in sends + resent]
        futures += [self.tx_dlq.send(record, "transaction_id_reused", _reused_id(tx)) for record, tx in conflicts]
        self._flush(futures)
        # counted only once the batch's work is acknowledged
        self.stats.count_scored(len(new), len(again) + repeats, len(conflicts), len(sends) + len(resent), latencies,
                                scores)
        if conflicts:
            self.stats.count_dead_letters("transactions", ["transaction_id_reused"] * len(conflicts))
        return [a for a in found if a is not None] + [Alert.model_validate_json(p) for _, p in resent]

    def _learn(self, run: list[tuple[ConsumerRecord, Label]]) -> None:
        """Scored records are read, the labels appended to the label stream (each transaction's once,
        atomically), and only then the records deleted: a kill at any point loses no label, and a
        label delivered again is recognised as applied."""
        labels = [label for _, label in run]
        records, outcomes = self._retry("labels", lambda: self._append_labels(labels))
        fates = label_fates(run, records, outcomes, self.scorer.champion.name, self.label_dlq)
        if fates.frauds:  # the labels the stream took (not a conflicting or an unknown one), while records are kept
            self._retry("labels", lambda: self.engine.mark_frauds(*zip(*fates.frauds)))
        self._retry("labels", lambda: self.engine.release_records(fates.done, meanwhile=self._prepare_ahead))
        if fates.dead:
            self._send_dead_letters(fates.dead)
        self.stats.labels_learned += len(fates.learned)
        self.stats.labels_duplicate += fates.duplicates
        self.stats.labels_dead_lettered += len(fates.dead)
        self.stats.count_dead_letters("labels", [reason for _, _, reason, _ in fates.dead])
        for score, is_fraud in fates.learned:
            self.stats.observe_label(score, is_fraud)

    def _append_labels(self, labels: list[Label]) -> tuple[list[ScoredRecord | None], list[LabelOutcome]]:
        records = self.engine.apply_labels(labels, keep_records=True, meanwhile=self._prepare_ahead, mark=False)
        entries = label_entries(labels, records, self.marker_margin_ms)
        return records, self.scorer.submit_labels(entries, meanwhile=self._prepare_ahead)

    def _send_dead_letters(self, dead: list[DeadLetter]) -> None:
        """Send and flush, retried: a retry sends again only what was not acknowledged."""
        futures = [writer.send(record, reason, error) for writer, record, reason, error in dead]
        self._retry("dead letters", lambda: self._flush(futures, resend=dead))

    def _flush(self, futures: list[Any], resend: list[DeadLetter] | None = None) -> None:
        flush_acknowledged(self.producer, futures, resend)


def _reused_id(tx: Transaction) -> str:
    return (f"transaction id {tx.transaction_id} was already used by customer {tx.customer_id} for a transaction "
            "with another time, amount or terminal")
