"""Each transactions partition's newest event time, kept in Redis by the offset it was committed with.

The lateness rule (`RecordValidator`) dead-letters a transaction more than the allowed lateness older
than the newest event time its partition has had. For that to decide the same for a record whichever
consumer process reads it (after a restart, a crash or a rebalance), the newest time must be known
at the partition's committed offset, not only in the memory of the process that read the records
before it. Kafka's commit metadata would be its natural home, but Tansu, the embedded broker, does not
keep it; so a batch's newest time per partition goes to Redis (a sorted set per partition, member
``"<next offset>:<epoch µs>"`` scored by the next offset) after the batch's work is durable and
before its offsets are committed, and a consumer given a partition takes the member of its committed
offset. A write whose commit never happened (a crash in between) has a larger offset than the
commit, so it is never taken; the newest `KEPT` members are kept, for `TTL_MS` after the last batch.

>>> entry = member(42, 1_522_540_831_000_000)
>>> entry, parse_member(entry)
('42:1522540831000000', (42, datetime.datetime(2018, 4, 1, 0, 0, 31, tzinfo=datetime.timezone.utc)))
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from importlib.resources import files
from typing import Any

from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata

from fraudstream.constants import NEWEST_TIME_TAG
from fraudstream.stream.state.redis_records import glob_escaped
from fraudstream.timeutil import epoch_us, from_epoch_us

log = logging.getLogger(__name__)

KEPT = 64  # members per partition: a commit answered up to this many batches late still finds its own
TTL_MS = 30 * 86_400_000  # a group stopped longer than this starts the rule afresh


def note_cold_start(committed: Mapping[TopicPartition, int | None], labels_learned: int) -> bool:
    """Warn (and return True) when a champion that has learned labels starts a group that has no
    `committed` offset on any of its partitions: most likely a new deployment, whose customers' and
    terminals' windows fill only as event time passes."""
    if not labels_learned or not committed or any(offset is not None for offset in committed.values()):
        return False
    log.warning("the champion has learned %d labels and this consumer group has committed nothing yet: unless Redis "
                "already holds this stream's feature state, the customers' and terminals' windows (up to 30 days) "
                "fill only as event time passes, and until then the champion scores features unlike those it "
                "learned from (expect lower precision; a backtest warns of the same with a short slice)",
                labels_learned)
    return True


def member(next_offset: int, newest_us: int) -> str:
    return f"{next_offset}:{newest_us}"


def parse_member(raw: str | bytes) -> tuple[int, datetime]:
    text = raw.decode() if isinstance(raw, bytes) else raw
    offset, newest = text.split(":", 1)
    return int(offset), from_epoch_us(int(newest))


def partitions_recorded(client: Any, prefix: str) -> list[datetime]:
    """The newest event time each partition of each consumer group of key prefix `prefix` recorded
    (kept `TTL_MS` after the partition's last batch)."""
    found = []
    for key in client.scan_iter(match=f"{glob_escaped(prefix)}:{{{NEWEST_TIME_TAG}:*", count=1000):
        times = [parse_member(raw)[1] for raw in client.zrange(key, 0, -1)]
        if times:
            found.append(max(times))
    return found


class NewestTimes:
    """The newest event times of a consumer group's transactions partitions, in Redis."""

    def __init__(self, client: Any, prefix: str, group: str) -> None:
        self.client = client
        self.prefix = prefix
        self.group = group
        self._save = client.register_script(files(__package__).joinpath("newest_times_save.lua").read_text())

    def key(self, tp: TopicPartition) -> str:
        """One key per partition, all of a group's in one hash slot."""
        return f"{self.prefix}:{{{NEWEST_TIME_TAG}:{self.group}}}:{tp.topic}:{tp.partition}"

    def save(self, offsets: Mapping[TopicPartition, OffsetAndMetadata], newest: Mapping[TopicPartition, datetime]) -> None:
        """Record each partition's `newest` time at the offset about to be committed for it (one script
        call: a pipeline of three commands per partition cost ~0.25 ms of CPU a batch, a live batch's
        ~4 ms)."""
        if not newest:
            return
        args: list[Any] = [KEPT, TTL_MS]
        for tp, when in newest.items():
            args += (offsets[tp].offset, member(offsets[tp].offset, epoch_us(when)))
        self._save(keys=[self.key(tp) for tp in newest], args=args)

    def restore(self, committed: Mapping[TopicPartition, int | None]) -> dict[tuple[str, int], datetime]:
        """The newest event times of partitions at their `committed` offsets (those recorded)."""
        found = {}
        for tp, offset in committed.items():
            when = self.at(tp, offset)
            if when is not None:
                found[(tp.topic, tp.partition)] = when
        return found

    def at(self, tp: TopicPartition, committed: int | None) -> datetime | None:
        """The newest event time of `tp` at its `committed` offset; None with no commit or none recorded
        for it (a commit of a version before this one, or older than the `KEPT` kept)."""
        if committed is None:
            return None
        found = self.client.zrangebyscore(self.key(tp), committed, committed)
        if not found:
            log.info("%s[%d]: no newest event time recorded at the committed offset %d: the lateness rule "
                     "counts from the records read from there", tp.topic, tp.partition, committed)
            return None
        return parse_member(found[0])[1]
