"""Which buffered records the consumer processes next: timestamp alignment across partitions, its
safety net, backpressure (see `fraudstream.stream.aligner.TopicAligner` for the alignment), and
the batch taken ahead: the next batch, taken from what is buffered and decoded while the consumer
waits for Redis on the current one (`prepare_ahead`), then processed next (`take`).

The consumer's fetch position per partition is its own (kafka-python), the buffered records the
aligner's; this module only decides and pauses or resumes fetching, from the consumer's thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from fraudstream.stream.aligner import Key, TopicAligner

log = logging.getLogger(__name__)

MAX_ALIGN_WAIT_S = 5.0  # safety net: transactions go ahead after this long without progress
PAUSE_BATCHES = 5  # pause fetching a partition with more than this many batches buffered ahead of the others
RESUME_BATCHES = 2  # ... and resume it once it is down to this many


class AlignedBatches:
    """Batches of buffered records in timestamp order, for one consumer (not thread-safe)."""

    def __init__(self, consumer: Any, aligner: TopicAligner, transactions_topic: str) -> None:
        self.consumer = consumer
        self.aligner = aligner
        self.transactions_topic = transactions_topic
        self.last_release = time.monotonic()  # when records were last released (for the safety net)
        self.holding_labels = False  # only labels are buffered, waiting for a partition without progress
        self.ahead: tuple[list[Any], Any] | None = None  # the batch taken ahead, and what `prepare` made of it

    def prepare_ahead(self, limit: int, prepare: Callable[[list[Any]], Any]) -> None:
        """Take the next batch now, from the records already buffered (no fetch) up to the horizon
        (the safety net of `next` is left to the loop: this may run long after the last release,
        after retries), and `prepare` it: work for a wait on Redis."""
        if self.ahead is None and self.aligner.buffered():  # live traffic: the batch took them all
            records = self.aligner.release(self.lagging(), limit=limit)
            if records:
                self.ahead = (records, prepare(records))

    def buffered_per_partition(self) -> dict[Key, int]:
        """Records fetched and not yet processed per (topic, partition), the batch taken ahead included."""
        counts = self.aligner.buffered_per_partition()
        for record in self.ahead[0] if self.ahead is not None else ():
            key = (record.topic, record.partition)
            counts[key] = counts.get(key, 0) + 1
        return counts

    def take(self, limit: int) -> tuple[list[Any], Any]:
        """The batch to process now and what `prepare` made of it: the one taken ahead, else
        `next(limit)` with None."""
        if self.ahead is not None:
            taken, self.ahead = self.ahead, None
            return taken
        return self.next(limit), None

    def drop_partitions(self, partitions: Iterable[Key]) -> dict[Key, int]:
        """Forget the revoked partitions' records, buffered or in the batch taken ahead (what `prepare`
        made of it gives the rest's by its `without(partitions)`); per partition that had any, the
        offset of the first one dropped (see `TopicAligner.drop_partitions`)."""
        revoked = set(partitions)
        first = self.aligner.drop_partitions(revoked)
        if self.ahead is not None:
            records, prepared = self.ahead
            kept = []
            for record in records:  # in offset order per partition, before the buffered ones
                key = (record.topic, record.partition)
                if key in revoked:
                    first[key] = min(first.get(key, record.offset), record.offset)
                else:
                    kept.append(record)
            if len(kept) < len(records):
                self.ahead = (kept, prepared.without(revoked)) if kept else None
        return first

    def released(self) -> None:
        """Restart the safety net's wait: records were processed now, or partitions were just
        assigned (nothing could be released before, however long the group join took)."""
        self.last_release = time.monotonic()

    def lagging(self) -> set[Key]:
        """Assigned partitions not yet fetched up to their high watermark (or never fetched)."""
        lagging = set()
        for tp in self.consumer.assignment():
            high = self.consumer.highwater(tp)
            if high is None or self.consumer.position(tp) < high:
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
