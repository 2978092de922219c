"""A broker that stops answering while the consumer has nothing to do: said and shown.

Polls that return nothing look the same whether the topics are quiet or the broker is gone, and
with no batch in flight no step is retried, so nothing said so (an operator's walk-through: 45 s of
a killed broker with the waiting gauge at 0 and no line of fraudstream's). The group's heartbeats
tell the two apart: kafka-python sends one every `heartbeat_interval_ms` and the broker answers at
once. When none has been answered for `silent_s` outside a rebalance, the watch logs a warning
and sets the wait's start in `Waits` (the ``fraudstream_waiting_for_server_seconds`` gauge), unless
a retried step set it already; when the answers come back it says so and clears what it set.

>>> from fraudstream.stream.retry import Waits
>>> waits, silence = Waits(), [0.0]
>>> watch = BrokerWatch(waits, silent_s=5.0, silent_for=lambda consumer: silence[0])
>>> watch.check(None, rebalancing=False, now=100.0), waits.since
(None, None)
>>> silence[0] = 6.0  # no heartbeat answered for 6 s
>>> watch.check(None, rebalancing=False, now=106.0), waits.since
('the Kafka broker has not answered for 6 s (the group coordinator, its heartbeats): waiting for it', 100.0)
>>> watch.check(None, rebalancing=False, now=110.0), waits.since  # said once
(None, 100.0)
>>> silence[0] = 0.2
>>> watch.check(None, rebalancing=False, now=112.0), waits.since
('the Kafka broker answers again, after 12 s', None)
>>> silence[0] = 9.0  # no heartbeats during a rebalance: not an outage
>>> watch.check(None, rebalancing=True, now=130.0), waits.since
(None, None)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from fraudstream.kafka_io import coordinator_silent_s
from fraudstream.stream.retry import Waits

log = logging.getLogger(__name__)

SILENT_S = 5.0  # no heartbeat answered this long (they go every second): the broker is away
# (the consumer takes 3 heartbeat intervals when that is longer: with one every 5 s, 5 s is no silence)


class BrokerWatch:
    """See the module docstring; `check` once per round of the loop."""

    def __init__(self, waits: Waits, silent_s: float = SILENT_S,
                 silent_for: Callable[[Any], float | None] = coordinator_silent_s) -> None:
        self.waits, self.silent_s, self.silent_for = waits, silent_s, silent_for
        self.since: float | None = None  # monotonic time of the last answer before the silence
        self.owner = False  # whether this watch set `waits.since`

    def check(self, consumer: Any, rebalancing: bool, now: float | None = None) -> str | None:
        """The line logged, if any (returned for tests)."""
        silent = None if rebalancing else self.silent_for(consumer)
        now = time.monotonic() if now is None else now
        if self.since is None:
            if silent is None or silent < self.silent_s:
                return None
            self.since = now - silent
            if self.waits.since is None:
                self.waits.since, self.owner = self.since, True
            message = (f"the Kafka broker has not answered for {silent:.0f} s (the group coordinator, its "
                       "heartbeats): waiting for it")
            log.warning(message, extra={"waiting_for": "broker"})
            return message
        if silent is not None and silent >= self.silent_s:
            return None
        message = f"the Kafka broker answers again, after {now - self.since:.0f} s"
        log.info(message)
        if self.owner:
            self.waits.since = None
        self.since, self.owner = None, False
        return message
