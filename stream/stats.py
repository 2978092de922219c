"""Counters and latency figures of a consumer run.

>>> s = RunStats()
>>> for ms in (1.0, 2.0, 3.0, 4.0, 100.0):
...     s.observe_latency(ms)
>>> s.latency_percentile(50), s.latency_percentile(99)
(3.0, 100.0)
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from fraudstream.kafka_io import fetch_position, unfetched
from fraudstream.stream.retry import Waits
from fraudstream.stream.rolling import BATCH_BUCKETS_S, LATENCY_BUCKETS_MS, SCORE_BUCKETS, Histogram, LabelWindow

log = logging.getLogger(__name__)

# How often the loop asks the broker for its partitions' ends (ListOffsets) for the lag, besides the
# high watermarks of its fetches: fetches that slow down or stop (a broker in trouble) report ends
# of seconds ago, or none, and the lag would understate the backlog just when it matters. One
# request every 5 s, on the loop's own thread: when records flow, a millisecond or two; when idle it
# waits behind the fetch in flight (11-22 ms with the consumer's 20 ms fetch wait, measured on Tansu);
# while the broker is away, up to its 500 ms timeout.
LAG_FROM_BROKER_EVERY_S = 5.0


@dataclass
class RunStats:
    processed: int = 0  # transactions handled, `delivered_again` included
    delivered_again: int = 0  # transactions delivered again whose scored record was kept: not scored again
    alerts: int = 0
    dead_lettered: int = 0
    labels_learned: int = 0
    labels_dead_lettered: int = 0
    labels_duplicate: int = 0  # delivered again after they were learned: skipped
    mis_keyed: int = 0  # transactions and labels whose Kafka key is not their customer id (stream.keying)
    # (kind, reason) -> dead letters: kind "transactions" or "labels", reason as in the fraudstream.reason header
    dead_letter_reasons: Counter[tuple[str, str]] = field(default_factory=Counter)
    batches: int = 0
    started: float = field(default_factory=time.monotonic)
    first_record: float | None = None  # monotonic time the first batch of transactions was done
    processed_at_first: int = 0  # transactions of that batch
    last_record: float | None = None
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=200_000))
    # operational figures for the metrics endpoint and the dashboard (see fraudstream.stream.metrics)
    latency_histogram: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS_MS))
    batch_histogram: Histogram = field(default_factory=lambda: Histogram(BATCH_BUCKETS_S))
    score_histogram: Histogram = field(default_factory=lambda: Histogram(SCORE_BUCKETS))  # the champion's
    labelled: LabelWindow = field(default_factory=LabelWindow)
    lag: dict[tuple[str, int], int] = field(default_factory=dict)  # (topic, partition) -> records behind
    waits: Waits = field(default_factory=Waits)  # steps retried through an outage, and the current wait
    lag_asked_at: float | None = None  # monotonic time the broker was last asked for the lag (`keep_lag`)
    broker_ends: dict[Any, int] = field(default_factory=dict)  # TopicPartition -> end, as the broker last gave it

    def observe_latency(self, ms: float) -> None:
        self.latencies_ms.append(ms)
        self.latency_histogram.observe(ms)

    def count_scored(self, scored: int, again: int, dead: int, alerts: int, latencies_ms: list[float],
                     scores: list[float] | None = None) -> None:
        """A batch's transactions done, its work acknowledged: `scored`, delivered `again` (not scored
        again), `dead`-lettered, the `alerts` sent, the champion's `scores` of the scored ones; the
        time `throughput` counts from and to.

        >>> stats = RunStats()
        >>> stats.count_scored(3, 1, 1, 2, [5.0, 7.0, 9.0], [0.004, 0.93, 0.97])
        >>> stats.processed, stats.delivered_again, stats.dead_lettered, stats.alerts, stats.processed_at_first
        (4, 1, 1, 2, 4)
        >>> stats.score_histogram.count
        3
        """
        self.processed += scored + again
        self.delivered_again += again
        self.dead_lettered += dead
        self.alerts += alerts
        for ms in latencies_ms:
            self.observe_latency(ms)
        if scores:
            self.score_histogram.observe_many(scores)
        clock = time.monotonic()
        if self.first_record is None:
            self.first_record, self.processed_at_first = clock, self.processed
        self.last_record = clock

    def observe_batch(self, seconds: float) -> None:
        self.batch_histogram.observe(seconds)

    def observe_label(self, champion_score: float | None, is_fraud: bool) -> None:
        """A learned label with the champion's score saved at scoring time (rolling AUC/precision)."""
        self.labelled.add(champion_score, is_fraud)

    def update_lag(self, consumer: Any, buffered: dict[tuple[str, int], int] | None = None) -> None:
        """Records not yet processed per assigned partition: behind the fetch high watermark (or the
        end the broker gave when last asked, `broker_ends`, when larger) plus `buffered` (fetched,
        waiting in the aligner). Call from the consumer's own thread (kafka-python consumers are not
        thread-safe). Partitions not fetched yet are left out."""
        waiting = buffered or {}
        ends = self.broker_ends
        lag: dict[tuple[str, int], int] = {}
        for tp in consumer.assignment():
            behind = unfetched(consumer, tp)
            if behind is not None:
                if tp in ends:
                    behind = max(behind, ends[tp] - fetch_position(consumer, tp))
                key = (tp.topic, tp.partition)
                lag[key] = max(0, behind) + waiting.get(key, 0)
        self.lag = lag

    def keep_lag(self, consumer: Any, buffered: dict[tuple[str, int], int] | None = None,
                 now: float | None = None) -> None:
        """Once a round of the loop: `update_lag`, having asked the broker for its ends first
        (`refresh_lag_from_broker`) if it was last asked `LAG_FROM_BROKER_EVERY_S` ago or more."""
        now = time.monotonic() if now is None else now
        if self.lag_asked_at is not None and now - self.lag_asked_at < LAG_FROM_BROKER_EVERY_S:
            self.update_lag(consumer, buffered)
            return
        self.lag_asked_at = now
        self.refresh_lag_from_broker(consumer, buffered)

    def refresh_lag_from_broker(self, consumer: Any, buffered: dict[tuple[str, int], int] | None = None,
                                timeout_ms: int = 500) -> None:
        """`update_lag` with the partitions' ends asked of the broker (ListOffsets), kept in
        `broker_ends` until the next ask: while the loop waits for Redis and fetches nothing, and
        every few seconds (`keep_lag`), so that the lag keeps growing with what is published when
        fetches slow down or stop. Tansu answers with the last batch's base offset, short of the high
        watermark by that batch; the larger of it and the last fetch's watermark is taken. The ends
        stay as they were when the broker does not answer."""
        from kafka.errors import KafkaError

        # fetched ones only (as `update_lag`): another has no position yet, and kafka-python's
        # position() would wait for its reset
        try:  # (highwater raises for a partition revoked meanwhile by kafka-python's IO thread)
            partitions = [tp for tp in consumer.assignment() if consumer.highwater(tp) is not None]
            self.broker_ends = consumer.end_offsets(partitions, timeout_ms=timeout_ms) if partitions else {}
        # (kafka-python asserts on some states, and its end_offsets raises KeyError for a partition
        # whose leader the metadata lacks: a topic deleted, a leader being elected)
        except (KafkaError, AssertionError, KeyError, ValueError, TypeError) as exc:
            log.debug("lag not asked of the broker: %s", exc)
        try:
            self.update_lag(consumer, buffered)
        except (KafkaError, AssertionError, ValueError, TypeError) as exc:
            log.debug("lag not refreshed: %s", exc)

    def latency_percentile(self, q: float) -> float | None:
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        index = min(len(ordered) - 1, max(0, round(q / 100.0 * (len(ordered) - 1))))
        return ordered[index]

    @property
    def throughput(self) -> float:
        """Transactions per second from the end of the first batch to the end of the last one (the
        first batch's transactions are not counted: its time is not).

        >>> stats = RunStats(processed=3000, first_record=10.0, processed_at_first=1000, last_record=12.0)
        >>> stats.throughput
        1000.0
        """
        seconds = self._timed_seconds()
        return 0.0 if seconds is None else (self.processed - self.processed_at_first) / seconds

    def _timed_seconds(self) -> float | None:
        """From the end of the first batch of transactions to the end of the last; None before a
        second batch."""
        if self.first_record is None or self.last_record is None or self.last_record <= self.first_record:
            return None
        return self.last_record - self.first_record

    def count_dead_letters(self, kind: str, reasons: Iterable[str]) -> None:
        """Dead letters of `kind` ("transactions" or "labels") by reason, sent and acknowledged.

        >>> stats = RunStats()
        >>> stats.count_dead_letters("labels", ["label_conflict", "unknown_transaction", "label_conflict"])
        >>> stats.summary()["dead_letter_reasons"]
        {'labels': {'label_conflict': 2, 'unknown_transaction': 1}, 'transactions': {}}
        """
        self.dead_letter_reasons.update((kind, reason) for reason in reasons)

    def summary(self) -> dict[str, Any]:
        """The run's counters and figures; ``throughput_tps`` is None when the run had a single batch
        of transactions, whose time `throughput` does not know.

        >>> RunStats(processed=40, first_record=5.0, processed_at_first=40, last_record=5.0).summary()["throughput_tps"]
        >>> RunStats(processed=3000, first_record=10.0, processed_at_first=1000, last_record=12.0).summary()["throughput_tps"]
        1000.0
        """
        return {
            "processed": self.processed, "delivered_again": self.delivered_again, "alerts": self.alerts,
            "dead_lettered": self.dead_lettered,
            "labels_learned": self.labels_learned, "labels_dead_lettered": self.labels_dead_lettered,
            "labels_duplicate": self.labels_duplicate, "mis_keyed": self.mis_keyed, "throughput_tps": None if self._timed_seconds() is None else round(self.throughput, 1),
            "latency_p50_ms": _tenth(self.latency_percentile(50)), "latency_p99_ms": _tenth(self.latency_percentile(99)),
            "dead_letter_reasons": {kind: {reason: n for (k, reason), n in sorted(self.dead_letter_reasons.items())
                                           if k == kind} for kind in ("labels", "transactions")},
        }


def _tenth(ms: float | None) -> float | None:
    """A latency as the summary shows it, to 0.1 ms.

    >>> _tenth(91.1162109375), _tenth(None)
    (91.1, None)
    """
    return None if ms is None else round(ms, 1)
