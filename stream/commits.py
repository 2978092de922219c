"""Offset commits that do not wait for the broker's answer.

A batch's offsets are sent (`KafkaConsumer.commit_async`) once its work is durable, as before, but
the loop goes on to the next batch instead of waiting the ~2 ms round trip (live batches of ~40
transactions take ~10 ms in all). What that changes: a process that dies in the moment between a
commit's request and its answer has that batch delivered again, as it would have had it died just
before committing; every step is idempotent. The commit is still never sent before the work.

Offsets whose commit was not confirmed are remembered per partition (the newest of each) and every
commit carries them all, so a refused one goes again with the next (an answer to an older commit
cannot stop that: an answer clears only the offset it answered; nor can a commit sent again go
backwards: offsets only grow, but after `forget`, when a partition is rewound to a new log of its
topic, `kafka_rewind`); after `MAX_REFUSALS` refusals in a row commits are synchronous
again, so that a broker that keeps refusing them (authorisation, a coordinator gone for long)
raises in the loop, which retries with backoff and commits nothing meanwhile, instead of letting
the committed offsets fall behind for ever; `settle` commits them synchronously when the loop ends
(waiting at most `SYNC_COMMIT_TIMEOUT_MS`); a partition revoked in a rebalance is forgotten (its new
owner's commits are not to be overwritten). A commit still unanswered when a rebalance starts
normally lands: it reaches the broker ahead of the JoinGroup, on the same connection.

>>> from kafka.structs import OffsetAndMetadata, TopicPartition
>>> class Broker:  # stands for a KafkaConsumer whose commits succeed when the loop polls again
...     def __init__(self): self.answers = []
...     def commit_async(self, offsets, callback): self.answers.append((callback, dict(offsets)))
...     def poll(self):
...         for callback, offsets in self.answers: callback(offsets, None)
...         self.answers.clear()
>>> broker = Broker()
>>> commits = AsyncCommits(broker)  # type: ignore[arg-type]
>>> commits.commit({TopicPartition("tx", 0): OffsetAndMetadata(10, "", -1)})
>>> sorted(tp.partition for tp in commits.unconfirmed)
[0]
>>> broker.poll(); commits.unconfirmed
{}
>>> tp = TopicPartition("tx", 1)
>>> commits.commit({tp: OffsetAndMetadata(5000, "", -1)})  # unanswered when its topic is recreated
>>> commits.forget([tp]); commits.commit({tp: OffsetAndMetadata(40, "", -1)})  # the new log's
>>> callback, sent = broker.answers.pop(0); callback(sent, None)  # the answer to 5000 comes
>>> commits.unconfirmed[tp].offset  # and does not clear 40, which goes again with the next commit
40
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata

log = logging.getLogger(__name__)

SYNC_COMMIT_TIMEOUT_MS = 5_000  # a commit that waits for its answer; past it the batch is delivered again
MAX_REFUSALS = 3  # refused asynchronous commits in a row before commits wait for their answer again


class AsyncCommits:
    """See the module docstring. The answers arrive in the consumer's `poll` (and `commit_async`),
    so on the loop's own thread; `forget` runs on kafka-python's network thread, in the rebalance
    listener, while the loop's thread waits for the group join."""

    def __init__(self, consumer: KafkaConsumer) -> None:
        self.consumer = consumer
        self.unconfirmed: dict[TopicPartition, OffsetAndMetadata] = {}
        self.refusals = 0  # refused commits since the last accepted one

    def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        """Send `offsets` (of work that is durable) with every other unconfirmed one.

        Raises `KafkaError` (a transient error for the consumer loop) when commits wait for their
        answer again and the broker refuses this one too."""
        if not offsets:
            return
        self.unconfirmed.update(offsets)
        if self.refusals >= MAX_REFUSALS:
            self._commit_now()
            return
        self.consumer.commit_async(dict(self.unconfirmed), callback=self._answered)

    def _answered(self, offsets: dict[TopicPartition, OffsetAndMetadata], result: object) -> None:
        if isinstance(result, BaseException):
            # e.g. a rebalance: the new owner re-processes from the last commit (idempotent)
            self.refusals += 1
            log.warning("offset commit refused (%d in a row; sent again with the next one): %s", self.refusals, result)
            return
        self.refusals = 0
        for tp, sent in offsets.items():
            kept = self.unconfirmed.get(tp)
            if kept is not None and kept.offset == sent.offset:  # (a newer one, or one after a rewind, stays)
                del self.unconfirmed[tp]

    def _commit_now(self) -> None:
        """Commit every unconfirmed offset and wait for the answer."""
        try:
            self.consumer.commit(dict(self.unconfirmed), timeout_ms=SYNC_COMMIT_TIMEOUT_MS)
        except CommitFailedError as exc:
            # a rebalance: revoked partitions are forgotten by then; the others go with the next commit
            log.warning("offset commit refused after a rebalance: %s", exc)
            return
        self.unconfirmed.clear()
        self.refusals = 0

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Partitions revoked (not ours to commit any more), or rewound to a new log (whose offsets
        start again)."""
        for tp in partitions:
            self.unconfirmed.pop(tp, None)

    def settle(self) -> None:
        """Commit every unconfirmed offset and wait for the answer (the loop is ending)."""
        if not self.unconfirmed:
            return
        try:
            self._commit_now()
        except KafkaError as exc:  # the offsets stay unconfirmed: a later run's first commit carries them
            log.warning("last offset commit failed; its records will be delivered again: %s", exc)
