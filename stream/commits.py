"""Offset commits that do not wait for the broker's answer.

A batch's offsets are sent (`KafkaConsumer.commit_async`) once its work is durable, as before, but
the loop goes on to the next batch instead of waiting the ~2 ms round trip (live batches of ~40
transactions take ~10 ms in all). What that changes: a process that dies in the moment between a
commit's request and its answer has that batch delivered again, as it would have had it died just
before committing; every step is idempotent. The commit is still never sent before the work.

Offsets whose commit was not confirmed are remembered per partition: after a failed commit the
next one carries them all again; `settle` commits them synchronously when the loop ends; a
partition revoked in a rebalance is forgotten (its new owner's commits are not to be overwritten).

>>> from kafka.structs import OffsetAndMetadata, TopicPartition
>>> class Broker:  # stands for a KafkaConsumer whose commits succeed when the loop polls again
...     def __init__(self): self.answers, self.committed = [], {}
...     def commit_async(self, offsets, callback): self.answers.append((callback, dict(offsets)))
...     def poll(self):
...         for callback, offsets in self.answers: self.committed.update(offsets); callback(offsets, None)
...         self.answers.clear()
>>> broker = Broker()
>>> commits = AsyncCommits(broker)  # type: ignore[arg-type]
>>> commits.commit({TopicPartition("tx", 0): OffsetAndMetadata(10, "", -1)})
>>> sorted(tp.partition for tp in commits.unconfirmed)
[0]
>>> broker.poll(); commits.unconfirmed
{}
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata

log = logging.getLogger(__name__)

SETTLE_TIMEOUT_MS = 10_000  # the last commit when the loop ends; past it the batch is delivered again


class AsyncCommits:
    """See the module docstring. The answers arrive in the consumer's `poll` (and `commit_async`),
    so on the loop's own thread."""

    def __init__(self, consumer: KafkaConsumer) -> None:
        self.consumer = consumer
        self.unconfirmed: dict[TopicPartition, OffsetAndMetadata] = {}
        self.failed = False

    def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        """Send `offsets` (of work that is durable); after a failure, every unconfirmed one too."""
        if not offsets:
            return
        self.unconfirmed.update(offsets)
        send = dict(self.unconfirmed) if self.failed else dict(offsets)
        self.failed = False
        self.consumer.commit_async(send, callback=self._answered)

    def _answered(self, offsets: dict[TopicPartition, OffsetAndMetadata], result: object) -> None:
        if isinstance(result, BaseException):
            # e.g. a rebalance: the new owner re-processes from the last commit (idempotent)
            log.warning("offset commit not accepted (sent again with the next one): %s", result)
            self.failed = True
            return
        for tp, sent in offsets.items():
            kept = self.unconfirmed.get(tp)
            if kept is not None and kept.offset <= sent.offset:
                del self.unconfirmed[tp]

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Partitions revoked: not ours to commit any more."""
        for tp in partitions:
            self.unconfirmed.pop(tp, None)

    def settle(self) -> None:
        """Commit every unconfirmed offset and wait for the answer (the loop is ending)."""
        if not self.unconfirmed:
            return
        try:
            self.consumer.commit(dict(self.unconfirmed), timeout_ms=SETTLE_TIMEOUT_MS)
        except (CommitFailedError, KafkaError) as exc:
            log.warning("last offset commit failed; its records will be delivered again: %s", exc)
            return
        self.unconfirmed.clear()
        self.failed = False
