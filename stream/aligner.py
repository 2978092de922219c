"""Timestamp-aligned consumption of several topics (transactions and labels).

A consumer behind on its input (a backlog, a fast replay) would otherwise score all buffered
transactions before it sees the labels published between them, so the model would learn later
than it does live. Records are buffered per topic and released in message-timestamp order up to
the horizon every lagging topic has reached (Kafka Streams does the same with its task idling).

>>> from types import SimpleNamespace as R
>>> a = TopicAligner(["tx", "labels"])
>>> a.add([R(topic="tx", partition=0, timestamp=t, offset=t) for t in (1, 2, 5)])
>>> a.add([R(topic="labels", partition=0, timestamp=3, offset=0)])
>>> [(r.topic, r.timestamp) for r in a.release({"tx": False, "labels": False})]
[('tx', 1), ('tx', 2), ('labels', 3)]
>>> [(r.topic, r.timestamp) for r in a.release({"tx": False, "labels": True})]
[('tx', 5)]
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any


class TopicAligner:
    """Buffers records per (topic, partition); releases them in timestamp order up to a horizon."""

    def __init__(self, topics: Iterable[str]) -> None:
        self.topics = list(topics)
        self._queues: dict[tuple[str, int], deque[Any]] = {}

    def add(self, records: Iterable[Any]) -> None:
        for record in records:
            self._queues.setdefault((record.topic, record.partition), deque()).append(record)

    def buffered(self, topic: str | None = None) -> int:
        return sum(len(q) for (t, _), q in self._queues.items() if topic is None or t == topic)

    def buffered_per_partition(self) -> dict[tuple[str, int], int]:
        """Records waiting per (topic, partition): fetched but not yet released (consumer lag)."""
        return {key: len(q) for key, q in self._queues.items()}

    def drop_partitions(self, partitions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """Forget buffered records of revoked partitions (they were not processed, so not committed);
        return, per partition that had any, the offset of the first one dropped.

        >>> from types import SimpleNamespace as R
        >>> a = TopicAligner(["tx"])
        >>> a.add([R(topic="tx", partition=0, timestamp=t, offset=10 + t) for t in (1, 2)])
        >>> a.drop_partitions([("tx", 0), ("tx", 1)]), a.buffered()
        ({('tx', 0): 11}, 0)
        """
        first: dict[tuple[str, int], int] = {}
        for key in partitions:
            queue = self._queues.pop(key, None)
            if queue:
                first[key] = queue[0].offset
        return first

    def horizon(self, caught_up: Mapping[str, bool]) -> float:
        """The newest timestamp up to which every topic's records are known.

        A topic that is caught up (nothing more to fetch) does not hold the others back; a lagging
        topic allows up to the newest timestamp buffered for it (none buffered: nothing released).
        """
        horizon = float("inf")
        for topic in self.topics:
            if caught_up.get(topic, False):
                continue
            newest = [q[-1].timestamp for (t, _), q in self._queues.items() if t == topic and q]
            horizon = min(horizon, max(newest) if newest else float("-inf"))
        return horizon

    def release(self, caught_up: Mapping[str, bool], limit: int | None = None) -> list[Any]:
        """Records with timestamp <= horizon, merged in timestamp order (each partition in order)."""
        horizon = self.horizon(caught_up)
        heads = [(q[0].timestamp, key) for key, q in self._queues.items() if q and q[0].timestamp <= horizon]
        heapq.heapify(heads)
        out: list[Any] = []
        while heads and (limit is None or len(out) < limit):
            _, key = heapq.heappop(heads)
            queue = self._queues[key]
            out.append(queue.popleft())
            if queue and queue[0].timestamp <= horizon:
                heapq.heappush(heads, (queue[0].timestamp, key))
        return out
