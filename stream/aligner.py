"""Timestamp-aligned consumption of several topics (transactions and labels).

A consumer behind on its input (a backlog, a fast replay) would otherwise score all buffered
transactions before it sees the labels published between them, so the model would learn later
than it does live, and a label fetched before its transaction would find nothing to learn from.
Records are buffered per (topic, partition) and released in message-timestamp order up to the
*horizon*: the oldest of the newest timestamps buffered for each partition that still has records
to fetch (Kafka Streams does the same with its task idling). A partition that is caught up holds
nothing back; a lagging one with nothing buffered holds everything back until it is fetched.

>>> from types import SimpleNamespace as R
>>> a = TopicAligner()
>>> a.add([R(topic="tx", partition=0, timestamp=t, offset=t) for t in (1, 2, 5)])
>>> a.add([R(topic="labels", partition=0, timestamp=3, offset=0)])
>>> [(r.topic, r.timestamp) for r in a.release(lagging={("tx", 0), ("labels", 0)})]
[('tx', 1), ('tx', 2), ('labels', 3)]
>>> [(r.topic, r.timestamp) for r in a.release(lagging={("tx", 0), ("labels", 1)})]  # labels[1]: nothing yet
[]
>>> [(r.topic, r.timestamp) for r in a.release(lagging=set())]
[('tx', 5)]
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable
from typing import Any

Key = tuple[str, int]  # (topic, partition)


class TopicAligner:
    """Buffers records per (topic, partition); releases them in timestamp order up to a horizon.

    `follower`: a topic whose records refer to the others' (labels to transactions). A producer that
    sends a label right after its transaction can give both the same millisecond timestamp, so at
    equal timestamps the follower's records come after the others', and a follower record at the
    horizon of the *other* topics' lagging partitions waits (a record it refers to may have that
    timestamp and not be fetched yet). This holds for partitions still being fetched (a backlog);
    a partition counted as caught up sets no horizon, so a label fetched before its
    same-millisecond transaction is fetched can still go first.

    >>> from types import SimpleNamespace as R
    >>> a = TopicAligner(follower="labels")
    >>> a.add([R(topic="labels", partition=0, timestamp=t, offset=t) for t in (2, 3)])
    >>> a.add([R(topic="tx", partition=0, timestamp=t, offset=t) for t in (2, 3)])
    >>> [(r.topic, r.timestamp) for r in a.release(lagging={("tx", 0)})]  # horizon 3: the label of 3 waits
    [('tx', 2), ('labels', 2), ('tx', 3)]
    >>> a.add([R(topic="labels", partition=0, timestamp=3, offset=4)])
    >>> [(r.topic, r.timestamp) for r in a.release(lagging={("labels", 0)})]  # only labels lag: no wait
    [('labels', 3), ('labels', 3)]
    """

    def __init__(self, follower: str | None = None) -> None:
        self._queues: dict[Key, deque[Any]] = {}
        self.follower = follower

    def add(self, records: Iterable[Any]) -> None:
        for record in records:
            self._queues.setdefault((record.topic, record.partition), deque()).append(record)

    def buffered(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def buffered_per_partition(self) -> dict[Key, int]:
        """Records waiting per (topic, partition): fetched but not yet released (consumer lag)."""
        return {key: len(q) for key, q in self._queues.items()}

    def drop_partitions(self, partitions: Iterable[Key]) -> dict[Key, int]:
        """Forget buffered records of revoked partitions (they were not processed, so not committed);
        return, per partition that had any, the offset of the first one dropped.

        >>> from types import SimpleNamespace as R
        >>> a = TopicAligner()
        >>> a.add([R(topic="tx", partition=0, timestamp=t, offset=10 + t) for t in (1, 2)])
        >>> a.drop_partitions([("tx", 0), ("tx", 1)]), a.buffered()
        ({('tx', 0): 11}, 0)
        """
        first: dict[Key, int] = {}
        for key in partitions:
            queue = self._queues.pop(key, None)
            if queue:
                first[key] = queue[0].offset
        return first

    def horizon(self, lagging: Iterable[Key]) -> float:
        """The newest timestamp up to which every partition's records are known: the oldest of the
        newest timestamps buffered for the `lagging` partitions (those with more to fetch)."""
        horizon = float("inf")
        for key in lagging:
            queue = self._queues.get(key)
            horizon = min(horizon, queue[-1].timestamp if queue else float("-inf"))
        return horizon

    def release(self, lagging: Iterable[Key], limit: int | None = None, horizon: float | None = None,
                topic: str | None = None) -> list[Any]:
        """Records with timestamp <= the horizon (or `horizon` if given), merged in timestamp order
        (each partition in offset order), at most `limit` of them; only those of `topic` if given.
        Records of the follower topic also need a timestamp below the horizon of the other topics'
        lagging partitions (below `horizon`, if given).

        >>> from types import SimpleNamespace as R
        >>> a = TopicAligner()
        >>> a.add([R(topic="tx", partition=0, timestamp=5, offset=0), R(topic="labels", partition=0, timestamp=1, offset=0)])
        >>> [(r.topic, r.timestamp) for r in a.release({("tx", 1)}, horizon=float("inf"), topic="tx")], a.buffered()
        ([('tx', 5)], 1)
        """
        follower = self.follower
        if horizon is None:
            lagging = list(lagging)
            horizon = self.horizon(lagging)
            leader_horizon = self.horizon(k for k in lagging if k[0] != follower)
        else:
            leader_horizon = horizon

        def head(queue: deque[Any], key: Key) -> tuple[float, int, Key] | None:
            """Heap entry of the queue's first record, None while it must wait."""
            t = queue[0].timestamp
            if key[0] != follower:
                return (t, 0, key) if t <= horizon else None
            return (t, 1, key) if t <= horizon and t < leader_horizon else None

        heads = [h for key, q in self._queues.items()
                 if q and (topic is None or key[0] == topic) and (h := head(q, key)) is not None]
        heapq.heapify(heads)
        out: list[Any] = []
        while heads and (limit is None or len(out) < limit):
            _, _, key = heapq.heappop(heads)
            queue = self._queues[key]
            out.append(queue.popleft())
            if queue and (h := head(queue, key)) is not None:
                heapq.heappush(heads, h)
        return out
