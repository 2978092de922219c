"""The scoring consumer loop: poll a batch, validate, features, score, alert, learn, flush, commit.

Offsets of a batch are committed only after its Redis writes (features, scored records) are
acknowledged and its alerts and dead letters are acknowledged by the broker; the loop does not wait
for the commit's own answer (`fraudstream.stream.commits`). When Redis or the
broker is unreachable the batch is retried with backoff (all steps are idempotent) and nothing is
committed meanwhile; a stop request during an outage abandons the uncommitted batch (and waits at
most `commits.SYNC_COMMIT_TIMEOUT_MS` more for the commit of the batches before it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

import redis
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.structs import OffsetAndMetadata

from fraudstream.config import Settings
from fraudstream.kafka_rewind import PastEndRewinder
from fraudstream.models.events import Alert
from fraudstream.stream.aligner import TopicAligner
from fraudstream.stream.batch_steps import BatchSteps
from fraudstream.stream.batching import AlignedBatches
from fraudstream.stream.broker_watch import SILENT_S, BrokerWatch
from fraudstream.stream.commits import AsyncCommits
from fraudstream.stream.decode import Preparation, Prepared, RecordValidator
from fraudstream.stream.dlq import DeadLetterWriter
from fraudstream.stream.features import FeatureEngine
from fraudstream.stream.label_fates import marker_margin_ms
from fraudstream.stream.newest_times import NewestTimes, note_cold_start
from fraudstream.stream.partitionless import PartitionlessWatch
from fraudstream.stream.retry import BatchAbandoned, retry_until_stopped
from fraudstream.stream.gc_tuning import collect_garbage_when_idle, fewer_collections
from fraudstream.stream.keying import MisKeyed
from fraudstream.stream.scoring import Scorer
from fraudstream.stream.state.base import Ready
from fraudstream.stream.stats import RunStats

log = logging.getLogger(__name__)

AlertCallback = Callable[[Alert], None]
T = TypeVar("T")
# Every poll takes all fetched records (memory is bounded by the fetch sizes): kafka-python 3.0.12
# loses parsed records of a partition paused while a poll had returned only part of them (its
# KAFKA-7548 parking never gives them back), and then never fetches that partition again.
POLL_ALL_RECORDS = 1_000_000
# How long a poll may wait when there is nothing to do. Short, because kafka-python 3.0.12 sleeps
# min(poll timeout, retry_backoff_ms = 100 ms) when a poll finds no fetch in flight, which happens
# while one completes: with 200 ms, about one poll a second slept 100 ms with records waiting (the
# p99 latency at 2,000 tx/s was ~120 ms); now such a sleep is at most this long.
IDLE_POLL_MS = 20
# How long a poll may wait while a group join is in progress (no records come before it ends):
# a join takes a few polls instead of ~150 (each a round trip to kafka-python's IO thread), and
# without `fraudstream.kafka_join`'s mend (kafka-python other than 3.0.12) a join that completes
# between two polls is rarely thrown away: the first join of 15 of 52 starts took 2 or 3 rounds
# (6 or 9 s) with the idle poll's 20 ms, 0 of 52 with 500 ms (2026-12-05, `benchmarks/group_join.py`).
JOIN_POLL_MS = 500
# A group join (seen: ~3-6 s) is not idle time for `run(idle_timeout=...)`, for at most this long: a
# group that never forms again (seen with Tansu when a member leaves mid-join) must not keep an
# idle-timeout consumer running for ever.
MAX_REBALANCE_WAIT_S = 30.0


@dataclass
class ScoringConsumer(BatchSteps):
    """Consumes transactions and labels; see the module docstring for the guarantees. A batch's steps
    are `BatchSteps`'."""

    settings: Settings
    engine: FeatureEngine
    scorer: Scorer
    consumer: KafkaConsumer
    producer: KafkaProducer
    on_alert: AlertCallback | None = None
    stats: RunStats = field(default_factory=RunStats)
    stop: threading.Event = field(default_factory=threading.Event)
    assigned: threading.Event = field(default_factory=threading.Event)  # set once partitions are assigned
    rebalance_since: float | None = None  # monotonic time of a revocation not yet followed by an assignment
    assigned_at: float = 0.0  # monotonic time of the latest assignment (set by the rebalance listener)
    max_backoff: float = 10.0
    maintained: bool = False  # the model maintenance ran in this round of the loop
    started_cold: bool | None = None  # a trained champion and no committed offset at the first assignment

    def __post_init__(self) -> None:
        s = self.settings
        self.validator = RecordValidator(s.max_record_bytes, s.max_future_skew, s.allowed_lateness)
        self.tx_dlq = DeadLetterWriter(self.producer, s.topic_dlq)
        self.label_dlq = DeadLetterWriter(self.producer, s.topic_labels_dlq)
        self.watermarks: dict[tuple[str, int], datetime] = {}  # (topic, partition): newest event time
        self.newest_times = NewestTimes(self.engine.store.client, self.engine.store.prefix, s.group_id)
        self.unrestored: set[TopicPartition] = set()  # assigned; their newest time not read back yet
        self.aligner = TopicAligner(follower=s.topic_labels)
        self.batches = AlignedBatches(self.consumer, self.aligner, s.topic_transactions)
        self.commits = AsyncCommits(self.consumer)
        self.marker_margin_ms = marker_margin_ms(s.allowed_lateness)  # a label's marker outlives its record
        self.partitionless = PartitionlessWatch(s.group_id)
        self.past_end = PastEndRewinder()
        self.broker_watch = BrokerWatch(self.stats.waits, silent_s=max(SILENT_S, 3 * s.heartbeat_interval_ms / 1000))
        self.mis_keyed = MisKeyed()
        self.in_flight: list[ConsumerRecord] = []  # the batch `process` works on: polled, not processed

    # -- loop ------------------------------------------------------------------------------------
    def run(self, max_transactions: int | None = None, idle_timeout: float | None = None) -> RunStats:
        """Process batches until `stop` is set, `max_transactions` were handled (scored or
        dead-lettered), or nothing arrived for `idle_timeout` seconds once partitions are assigned
        (not counting a rebalance, up to `MAX_REBALANCE_WAIT_S`: its join can take longer, with
        records waiting).

        Transactions and labels are processed in message-timestamp order across the two topics
        (see `TopicAligner`), so a consumer working through a backlog learns as it would live.
        """
        with fewer_collections():  # the loop allocates millions of short-lived objects
            stats = self._loop(max_transactions, idle_timeout)
        self.commits.settle()  # not after an exception: a process that dies does not commit either
        for writer in (self.tx_dlq, self.label_dlq):
            writer.logged.flush()  # dead letters counted but not logged one by one
        return stats

    def _loop(self, max_transactions: int | None, idle_timeout: float | None) -> RunStats:
        last_activity = time.monotonic()
        self.batches.released()
        limit = self.settings.max_poll_records
        ready: list[ConsumerRecord] = []
        while not self.stop.is_set():
            # wait for records only when the last round had nothing to do
            waiting = ready or self.batches.ahead
            timeout_ms = 0 if waiting else JOIN_POLL_MS if self._joining() else IDLE_POLL_MS
            polled = self.consumer.poll(timeout_ms=timeout_ms, max_records=POLL_ALL_RECORDS)
            if self.unrestored:  # partitions just assigned: before any of their records is validated
                try:
                    self._restore_newest_times()
                except BatchAbandoned:
                    log.warning("stopping while reading back the newest event times (nothing is uncommitted)")
                    break
            for records in polled.values():
                self.aligner.add(records)
            ready, prepared = self.batches.take(limit)  # the batches taken ahead come first
            self.batches.backpressure(limit)
            if ready:
                try:
                    self.process(ready, prepared)
                except BatchAbandoned:
                    log.warning("stopping with the current batch uncommitted (it will be delivered again)")
                    break
                last_activity = time.monotonic()
                self.batches.released()
            elif (polled or (self.aligner.buffered() and not self.batches.holding_labels) or self._rebalancing()
                  or not self.consumer.assignment()):
                # a rebalance is not idleness (a join can take longer than the idle timeout, with
                # records waiting); held labels are not activity: they wait for a stuck partition
                last_activity = time.monotonic()
            if not ready:  # an idle moment: nothing is waiting for the collector's pause now
                collect_garbage_when_idle()
                self.partitionless.check(self.consumer)
                self.tx_dlq.logged.tick()  # a flood of dead letters that stopped: its count now
                self.label_dlq.logged.tick()
            if not self.maintained:  # a batch's scoring did it already (the learning while Redis worked)
                try:  # checkpoints, learner role, model versions: Redis too, so an outage waits here as well
                    self._retry("model maintenance", self.scorer.maintain)
                except BatchAbandoned:
                    log.warning("stopping during model maintenance (nothing uncommitted is lost)")
                    break
            self.maintained = False
            rewound = self.past_end.check(self.consumer)  # a log recreated or lost (a topic deleted, Tansu restarted)
            for tp in rewound:  # what this consumer knew of the old log: its newest event time, its records fetched
                self.watermarks.pop(tp, None)
                self.stats.broker_ends.pop(tp, None)  # the old log's end (the lag's, until the broker is asked again)
            if rewound:  # and the old log's offsets not yet confirmed: a commit must not take them there
                self.batches.drop_partitions((tp.topic, tp.partition) for tp in rewound)
                self.commits.forget(rewound)
            self.broker_watch.check(self.consumer, rebalancing=self._joining())  # an outage while idle too
            self.stats.keep_lag(self.consumer, self.batches.buffered_per_partition())
            if max_transactions is not None and self.stats.processed + self.stats.dead_lettered >= max_transactions:
                break
            if idle_timeout is not None and time.monotonic() - max(last_activity, self.assigned_at) >= idle_timeout:
                log.info("idle for %.0f s, stopping", idle_timeout)
                break
        return self.stats

    def _joining(self) -> bool:
        """A group join is in progress: partitions were revoked and none assigned since, or none
        were ever assigned."""
        return self.rebalance_since is not None or not self.consumer.assignment()

    def _rebalancing(self) -> bool:
        """A rebalance is in progress, and not for longer than `MAX_REBALANCE_WAIT_S`."""
        since = self.rebalance_since
        return since is not None and time.monotonic() - since < MAX_REBALANCE_WAIT_S

    def process(self, records: list[ConsumerRecord], prepared: Prepared | None = None) -> None:
        """Handle records (in timestamp order) completely, then commit their offsets; `prepared`:
        `prepare(records)` if it was done already (a batch taken ahead)."""
        started = time.monotonic()
        self.in_flight = records
        try:
            self._process(records, prepared, started)
        finally:
            self.in_flight = []

    def _process(self, records: list[ConsumerRecord], prepared: Prepared | None, started: float) -> None:
        if prepared is None:
            prepared = self.prepare(records)
        if prepared.dead:
            self._send_dead_letters(prepared.dead)
            labels_dead = sum(writer is self.label_dlq for writer, *_ in prepared.dead)
            self.stats.labels_dead_lettered += labels_dead
            self.stats.dead_lettered += len(prepared.dead) - labels_dead
            for writer, _, reason, _ in prepared.dead:
                self.stats.count_dead_letters("labels" if writer is self.label_dlq else "transactions", [reason])
        # Transactions first, then labels: a transaction is scored by a model that has not learned the
        # labels of its own batch (never one reported after it), and a label finds the record of a
        # transaction in the same batch. Terminal risk counts a fraud from its report time on, so
        # it does not depend on this order.
        alerts: list[Alert] = []
        if prepared.transactions:  # the next batch is decoded while Redis works (`_prepare_ahead`)
            alerts = self._retry("scoring", lambda: self._score(prepared.transactions))
        if prepared.labels:
            self._learn(prepared.labels)  # retries each of its steps
        if prepared.newest:  # what the lateness rule needs at these offsets, whoever reads on from them
            self._retry("newest event times", lambda: self.newest_times.save(prepared.offsets, prepared.newest))
        self._retry("commit", lambda: self._commit(prepared.offsets))
        self.stats.batches += 1
        if prepared.mis_keyed:  # handled as the others; counted and warned about
            self.stats.mis_keyed += len(prepared.mis_keyed)
            self.mis_keyed.note(prepared.mis_keyed)
        self.stats.observe_batch(time.monotonic() - started)
        if self.on_alert is not None:
            for alert in alerts:
                self.on_alert(alert)

    def prepare(self, records: list[ConsumerRecord]) -> Prepared:
        """Decode and validate; bad records become dead letters."""
        return self.preparation(records).finish()

    def preparation(self, records: list[ConsumerRecord]) -> Preparation:
        """`prepare` in steps (see `Preparation`)."""
        return Preparation(records, self.settings.topic_labels, self.validator, self.watermarks,
                           (self.tx_dlq, self.label_dlq))

    def _restore_newest_times(self) -> None:
        partitions = sorted(self.unrestored)
        # read here, on the loop's thread: kafka-python's rebalance listener may not wait for the broker
        committed = self._retry("newest event times", lambda: {tp: self.consumer.committed(tp) for tp in partitions})
        found = self._retry("newest event times", lambda: self.newest_times.restore(committed))
        if self.started_cold is None:
            self.started_cold = note_cold_start(committed, self.scorer.champion.labels_learned)
        for tp, when in found.items():
            self.watermarks[tp] = max(when, self.watermarks.get(tp, when))
        self.unrestored.difference_update(partitions)

    def _prepare_ahead(self, ready: Ready | None = None) -> None:
        """Work for a wait on Redis: decode and validate the next batch until `ready()` (see
        `AlignedBatches.prepare_ahead`); the rest in the next wait, or when it is processed."""
        self.batches.prepare_ahead(self.settings.max_poll_records, self.preparation, ready)

    def _commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        # Not waiting for the answer: a refusal after a rebalance means the new owner re-processes the
        # batch from the last commit (all effects are idempotent); see AsyncCommits.
        self.commits.commit(offsets)

    def _retry(self, what: str, step: Callable[[], T]) -> T:
        return retry_until_stopped(what, step, self.stop, self.max_backoff, waits=self.stats.waits,
                                   while_waiting=self._while_waiting)

    def _while_waiting(self, error: BaseException) -> None:
        """Before a retry's wait: while Redis is away, the lag keeps counting what is published (and
        the batch that waits, polled but not processed)."""
        if isinstance(error, redis.RedisError):
            waiting = Counter(self.batches.buffered_per_partition())
            waiting.update((record.topic, record.partition) for record in self.in_flight)
            self.stats.refresh_lag_from_broker(self.consumer, dict(waiting))
