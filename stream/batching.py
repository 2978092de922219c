"""Which buffered records the consumer processes next: timestamp alignment across partitions, its
safety net, backpressure (see `fraudstream.stream.aligner.TopicAligner` for the alignment), and
the batches taken ahead: the next batches, taken from what is buffered and decoded while the
consumer waits for Redis on the current one (`prepare_ahead`), then processed in turn (`take`).

The consumer's fetch position per partition is its own (kafka-python), the buffered records the
aligner's; this module only decides and pauses or resumes fetching, from the consumer's thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from fraudstream.kafka_io import unfetched
from fraudstream.stream.aligner import Key, TopicAligner

log = logging.getLogger(__name__)

MAX_ALIGN_WAIT_S = 5.0  # safety net: transactions go ahead after this long without progress
PAUSE_BATCHES = 5  # pause fetching a partition with more than this many batches buffered ahead of the others
RESUME_BATCHES = 2  # ... and resume it once it is down to this many
AHEAD_STEP = 100  # records of a batch taken ahead prepared between two looks at the reply awaited
AHEAD_BATCHES = 2  # batches taken ahead at most (with a backlog, the second fills the waits the first cannot)


class Preparing(Protocol):
    """A batch's preparation done in steps (`fraudstream.stream.decode.Preparation`)."""

    @property
    def done(self) -> bool: ...

    def step(self, count: int) -> None: ...

    def finish(self) -> Any: ...

    def without(self, partitions: set[Key]) -> Preparing: ...


class AlignedBatches:
    """Batches of buffered records in timestamp order, for one consumer (not thread-safe)."""

    def __init__(self, consumer: Any, aligner: TopicAligner, transactions_topic: str) -> None:
        self.consumer = consumer
        self.aligner = aligner
        self.transactions_topic = transactions_topic
        self.last_release = time.monotonic()  # when records were last released (for the safety net)
        self.holding_labels = False  # only labels are buffered, waiting for a partition without progress
        self.ahead: list[tuple[list[Any], Preparing]] = []  # batches taken ahead, oldest first, and their preparations

    def prepare_ahead(self, limit: int, start: Callable[[list[Any]], Preparing],
                      ready: Callable[[], bool] | None = None) -> None:
        """Work for a wait on Redis: prepare the batches taken ahead, `AHEAD_STEP` records at a time,
        until `ready()` (the reply awaited has begun to come; without `ready`, until they are all
        prepared), taking the next batch when those are done and fewer than `AHEAD_BATCHES` are
        taken: from the records already buffered (no fetch) up to the horizon, its preparation
        begun by `start` (the safety net of `next` is left to the loop: this may run long after the
        last release, after retries). `take` finishes a batch's preparation."""
        while ready is None or not ready():
            preparing = next((p for _, p in self.ahead if not p.done), None)
            if preparing is None:
                if len(self.ahead) >= AHEAD_BATCHES or not self.aligner.buffered():
                    return  # live traffic: the batches took all there was
                records = self.aligner.release(self.lagging(), limit=limit)
                if not records:
                    return
                preparing = start(records)
                self.ahead.append((records, preparing))
            preparing.step(AHEAD_STEP)

    def buffered_per_partition(self) -> dict[Key, int]:
        """Records fetched and not yet processed per (topic, partition), the batches taken ahead included."""
        counts = self.aligner.buffered_per_partition()
        for records, _ in self.ahead:
            for record in records:
                key = (record.topic, record.partition)
                counts[key] = counts.get(key, 0) + 1
        return counts

    def take(self, limit: int) -> tuple[list[Any], Any]:
        """The batch to process now and its prepared form: the oldest taken ahead (its preparation
        finished now), else `next(limit)` with None."""
        if self.ahead:
            records, preparing = self.ahead.pop(0)
            return records, preparing.finish()
        return self.next(limit), None

    def drop_partitions(self, partitions: Iterable[Key]) -> dict[Key, int]:
        """Forget the revoked partitions' records, buffered or in the batches taken ahead (their
        preparations go on without them: `without(partitions)`); per partition that had any, the
        offset of the first one dropped (see `TopicAligner.drop_partitions`)."""
        revoked = set(partitions)
        first = self.aligner.drop_partitions(revoked)
        still_ahead = []
        for records, preparing in self.ahead:
            kept = []
            for record in records:  # in offset order per partition, before later batches' and the buffered ones
                key = (record.topic, record.partition)
                if key in revoked:
                    first[key] = min(first.get(key, record.offset), record.offset)
                else:
                    kept.append(record)
            if len(kept) == len(records):
                still_ahead.append((records, preparing))
            elif kept:
                still_ahead.append((kept, preparing.without(revoked)))
        self.ahead = still_ahead
        return first

    def released(self) -> None:
        """Restart the safety net's wait: records were processed now, or partitions were just
        assigned (nothing could be released before, however long the group join took)."""
        self.last_release = time.monotonic()

    def lagging(self) -> set[Key]:
        """Assigned partitions not yet fetched up to their high watermark (or never fetched)."""
        lagging = set()
        for tp in self.consumer.assignment():
            behind = unfetched(self.consumer, tp)
            if behind is None or behind > 0:
                lagging.add((tp.topic, tp.partition))
        return lagging

    def next(self, limit: int) -> list[Any]:
        """Buffered records up to the timestamp horizon; after `MAX_ALIGN_WAIT_S` without progress,
        the transactions beyond it (a partition slow to fetch must not stall the others forever).
        Labels always wait for the horizon: one released before its transaction is scored would be
        dead-lettered, while a transaction scored early only misses labels it would have followed."""
        lagging = self.lagging()
        ready = self.aligner.release(lagging, limit=limit)
        if ready or not self.aligner.buffered():
            self.holding_labels = False
            return ready
        if time.monotonic() - self.last_release <= MAX_ALIGN_WAIT_S:
            return []
        ready = self.aligner.release((), limit=limit, topic=self.transactions_topic)
        waiting = sorted(f"{t}[{p}]" for t, p in lagging)
        if ready:
            log.warning("scoring buffered transactions out of timestamp alignment: no progress for %.0f s "
                        "waiting for %s", MAX_ALIGN_WAIT_S, waiting)
        else:  # said again every MAX_ALIGN_WAIT_S while it lasts
            log.warning("holding %d labels until %s are fetched", self.aligner.buffered(), waiting)
            self.last_release = time.monotonic()
        self.holding_labels = not ready
        return ready

    def backpressure(self, limit: int) -> None:
        """Bounded memory: stop fetching partitions that buffered far ahead of a lagging one (their
        records wait for the horizon); fetch them again once most of it is released."""
        buffered = self.aligner.buffered_per_partition()
        paused = self.consumer.paused()
        pause = [tp for tp in self.consumer.assignment()
                 if tp not in paused and buffered.get((tp.topic, tp.partition), 0) > PAUSE_BATCHES * limit]
        resume = [tp for tp in paused if buffered.get((tp.topic, tp.partition), 0) <= RESUME_BATCHES * limit]
        if pause:
            self.consumer.pause(*pause)
        if resume:
            self.consumer.resume(*resume)
