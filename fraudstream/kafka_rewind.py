"""Rewinding a partition whose log was recreated or lost under a consumer (a Tansu workaround, and
a topic deleted and created again); see `PastEndRewinder`.

>>> from types import SimpleNamespace as NS
>>> tp, ids = TopicPartition("tx", 0), {"tx": "id-1"}
>>> class Consumer:  # what the rewinder reads of a kafka-python 3.0 consumer
...     config = {"auto_offset_reset": "earliest"}
...     def __init__(self):
...         self.state = NS(position=500)
...         self._subscription, self._client = NS(assignment={tp: self.state}), NS(cluster=NS(topic_id=ids.get))
...     def assignment(self): return {tp}
...     def highwater(self, tp): return 520  # the old log's, until a fetch of the new one
...     def seek_to_beginning(self, tp): self.state.position = None  # a reset pending, as kafka-python's
...     def position(self, tp): raise AssertionError("would wait for the broker")
>>> consumer, rewinder = Consumer(), PastEndRewinder(wait_s=30.0)
>>> rewinder.check(consumer)
[]
>>> ids["tx"] = "id-2"  # deleted and created again
>>> rewinder.check(consumer)
[TopicPartition(topic='tx', partition=0)]
>>> rewinder.check(consumer)  # its reset pending: nothing to do, and nothing asked of the broker
[]
"""

from __future__ import annotations

import logging
import time
from typing import Any

from kafka import TopicPartition

from fraudstream.kafka_io import tracked_position

log = logging.getLogger(__name__)

PAST_END_WAIT_S = 30.0  # how long a partition stays past the end of its log before it is rewound


class PastEndRewinder:
    """Resets the position of each assigned partition that has stayed past the high watermark of its
    fetches for `wait_s`, as the consumer's `auto_offset_reset` says (earliest: the log's start;
    otherwise its end), with a warning. Call `check` once per round of a poll loop.

    Tansu workaround. A position stays past the end of its log when the log was recreated or lost:
    Tansu with memory storage restarted, and a partition this consumer kept across the rebalance
    kept its position (kafka-python keeps it, as the Java client does). Tansu 0.6 answers the
    fetches from there with no records and no error, so the partition stalled for good with a lag
    of 0 while its new log grew (seen with two consumers in a group: 5,050 transactions never
    scored). Apache Kafka answers OFFSET_OUT_OF_RANGE when the position is past the log's end, and
    kafka-python resets it itself; it answers nothing, as Tansu, while the position is only past the
    high watermark, which happens for a moment after a leader change (the new leader's watermark
    can trail the old one's until its followers catch up): hence the wait.

    A topic deleted and created again under a running consumer: once its new log grew past the old
    position within the wait, the records before it were skipped without a word (seen on Tansu:
    998 transactions never scored, their offsets committed). So a topic whose id in the cluster's
    metadata changes has its assigned partitions rewound at once, with a warning.
    """

    def __init__(self, wait_s: float = PAST_END_WAIT_S) -> None:
        self.wait_s = wait_s
        self.since: dict[TopicPartition, float] = {}  # partitions past their end, since when (monotonic)
        self.topic_ids: dict[str, Any] = {}  # assigned topics' ids in the metadata, as last seen

    def check(self, consumer: Any) -> list[TopicPartition]:
        """The partitions rewound now."""
        recreated = self._recreated(consumer)
        for tp in recreated:
            self.since.pop(tp, None)
            self._rewind(consumer, tp, None)
        return recreated + self._past_end(consumer, skip=set(recreated))

    def _recreated(self, consumer: Any) -> list[TopicPartition]:
        """Assigned partitions of topics whose id changed since the last check (kafka-python 3's
        metadata; none where it keeps no ids)."""
        cluster = getattr(getattr(consumer, "_client", None), "cluster", None)
        topic_id = getattr(cluster, "topic_id", None)
        if topic_id is None:
            return []
        assigned = consumer.assignment()
        changed = set()
        # ids are kept while a topic is not assigned: a topic deleted has its partitions revoked, and
        # assigned again once it is created anew, at the old log's committed offsets. (A topic
        # recreated while another member held it is then read again from its start here: idempotent.)
        for topic in {tp.topic for tp in assigned}:
            now = topic_id(topic)
            before = self.topic_ids.get(topic)
            if now is not None:
                if before is not None and now != before:
                    changed.add(topic)
                self.topic_ids[topic] = now
        return sorted(tp for tp in assigned if tp.topic in changed)

    def _past_end(self, consumer: Any, skip: set[TopicPartition]) -> list[TopicPartition]:
        past = []
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            position = None if high is None or tp in skip else tracked_position(consumer, tp)
            if position is not None and high is not None and position > high:  # (none: a reset pending)
                past.append(tp)
        if not past and not self.since:
            return []
        now = time.monotonic()
        self.since = {tp: self.since.get(tp, now) for tp in past}
        rewound = [tp for tp in past if now - self.since[tp] >= self.wait_s]
        for tp in rewound:
            self._rewind(consumer, tp, now - self.since.pop(tp))
        return rewound

    @staticmethod
    def _rewind(consumer: Any, tp: TopicPartition, stayed_s: float | None) -> None:
        """`stayed_s`: how long the position was past the end; None: the topic's id changed (its
        high watermark, if any, is still the old log's). Nothing here waits for the broker."""
        position, high = tracked_position(consumer, tp), consumer.highwater(tp)
        if consumer.config.get("auto_offset_reset") == "earliest":
            consumer.seek_to_beginning(tp)
            where = "from its start"
        elif high is None or stayed_s is None:
            consumer.seek_to_end(tp)
            where = "from its end"
        else:
            consumer.seek(tp, high)
            where = f"from its end ({high})"
        at = "an unknown position" if position is None else f"position {position}"
        if stayed_s is None:
            log.warning("%s[%d]: the topic was deleted and created again (its id changed) while this consumer read "
                        "it at %s; reading its new log %s", tp.topic, tp.partition, at, where)
        else:
            log.warning("%s[%d]: %s has been past the end of its log (%d) for %.0f s: the log was recreated "
                        "or lost (a broker restarted without its storage?); reading it %s", tp.topic, tp.partition,
                        at, high, stayed_s, where)
