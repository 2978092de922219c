"""A scoring consumer that holds no partitions for long says so: it is waiting, not idle by choice.

Two causes: the group has more members than the topics have partitions (this one is a standby), or
the group's join never completes (seen with Tansu 0.6 after every member stopped at once: a member
that leaves while the group re-forms can stay its leader, and no member gets partitions again).
"""

from __future__ import annotations

import logging
import time
from typing import Any

log = logging.getLogger(__name__)

NO_PARTITIONS_WARN_S = 60.0  # a group join takes ~3-6 s here


class PartitionlessWatch:
    """`check` once per round of the consumer's loop; warns once per stretch without partitions.

    >>> class Consumer:
    ...     parts = set()
    ...     def assignment(self): return self.parts
    >>> watch, consumer = PartitionlessWatch("g", warn_after_s=0.0), Consumer()
    >>> watch.check(consumer), watch.check(consumer), watch.check(consumer)  # the second warns
    (False, True, False)
    >>> consumer.parts = {("transactions", 0)}
    >>> watch.check(consumer), watch.since is None
    (False, True)
    """

    def __init__(self, group: str, warn_after_s: float = NO_PARTITIONS_WARN_S) -> None:
        self.group, self.warn_after_s = group, warn_after_s
        self.since: float | None = None  # monotonic time since when none were held
        self.warned = False

    def check(self, consumer: Any) -> bool:
        """Whether it warned now."""
        if consumer.assignment():
            if self.warned:
                log.info("partitions assigned after %.0f s without any", time.monotonic() - (self.since or 0.0))
            self.since, self.warned = None, False
            return False
        now = time.monotonic()
        if self.since is None:
            self.since = now
            return False
        if self.warned or now - self.since < self.warn_after_s:
            return False
        self.warned = True
        log.warning("no partitions assigned for %.0f s in group %s: either the group has more consumers than the "
                    "topics have partitions (this one waits as a standby), or its join does not complete (Tansu 0.6 "
                    "after every consumer stopped at once: restart the broker, or use another FRAUDSTREAM_GROUP_ID, "
                    "which reads the topics again from their start)", now - self.since, self.group)
        return True
