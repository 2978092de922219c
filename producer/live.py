"""Live production: the simulator's stream published at a fixed rate, on a simulated or the wall clock.

The k-th transaction is due ``k / rate`` seconds after the start. Its event time depends on `clock`:

- ``"simulated"`` (the default): the simulator's own times (from its start, 2024-01-01 by default),
  so the same seed gives the same stream, ids and times included. Simulated time passes as fast as
  the transactions are sent: at 1,000 tx/s the demo world (1,000 customers, ~2,200 transactions a
  day) lives a day every ~2.2 s, so each customer keeps its ~2 transactions a day and the rolling
  windows (up to 30 days) hold what they would in production. A long run passes the present (after
  ~40 min at 1,000 tx/s): its consumers need ``max_future_skew=None`` (`fraudstream demo` and the
  compose file set it).
- ``"wall"``: the wall-clock time the transaction is sent. Each customer then makes ``rate /
  customers`` transactions a second (1 a second in the demo world), so its windows fill without
  bound; for a world as large as the rate (short runs, latency tests).

Each label (reported at event time + `label_delay`, on the same clock) is published once that moment
has passed. After `count` transactions the labels still pending are waited for (simulated time goes
on at the run's average pace), but for at most ``max_label_wait`` seconds (default: the label delay
in wall-clock time plus 2 s, capped at 60 s); setting `stop` ends the run at once, dropping the
pending labels (counted in `ProduceStats.labels_dropped`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from fraudstream.config import Settings
from fraudstream.constants import CLOCKS
from fraudstream.errors import ConfigError, ServiceError
from fraudstream.models.events import Label
from fraudstream.producer.publisher import Publisher
from fraudstream.producer.simulator import Simulator, SimulatorConfig
from fraudstream.timeutil import utcnow

log = logging.getLogger(__name__)
_TICK = 0.01  # longest sleep between checks of the clock, the stop flag and due labels
Clock = Literal["simulated", "wall"]  # fraudstream.constants.CLOCKS


@dataclass
class ProduceStats:
    """What a live run published."""

    transactions: int = 0
    frauds: int = 0
    labels: int = 0
    labels_dropped: int = 0
    sending_seconds: float = 0.0  # until the last transaction was sent
    seconds: float = 0.0  # in all, with the wait for the last labels

    @property
    def rate(self) -> float:
        """Transactions per second while they were sent (the wait for the last labels not counted)."""
        return self.transactions / self.sending_seconds if self.sending_seconds > 0 else 0.0


class EventClock:
    """Event times of a live run: the simulator's (``"simulated"``) or the wall clock's (``"wall"``);
    `now()` is the clock's present, which decides when a label is due (see the module docstring).

    >>> from datetime import UTC
    >>> clock = EventClock("simulated")
    >>> clock.stamp(datetime(2024, 1, 1, 0, 5, tzinfo=UTC))
    datetime.datetime(2024, 1, 1, 0, 5, tzinfo=datetime.timezone.utc)
    >>> clock.now()  # while sending: the last transaction's time
    datetime.datetime(2024, 1, 1, 0, 5, tzinfo=datetime.timezone.utc)
    >>> EventClock("wall").stamp(datetime(2024, 1, 1, tzinfo=UTC)).year > 2024
    True
    """

    def __init__(self, kind: Clock) -> None:
        if kind not in CLOCKS:
            raise ConfigError(f"clock must be one of {', '.join(CLOCKS)}, got {kind!r}")
        self.kind = kind
        self.began = self.last_sent = 0.0  # monotonic times of the first and the last stamp
        self.first: datetime | None = None  # event times of the first and the last stamped transaction
        self.last: datetime | None = None

    def stamp(self, simulated: datetime) -> datetime:
        """The event time of a transaction sent now, `simulated` in the simulation."""
        event_time = utcnow() if self.kind == "wall" else simulated
        if self.first is None:
            self.first, self.began = event_time, time.monotonic()
        self.last, self.last_sent = event_time, time.monotonic()
        return event_time

    def pace(self) -> float:
        """Seconds of event time per second of the run so far (1 on the wall clock)."""
        elapsed = self.last_sent - self.began
        if self.kind == "wall" or self.first is None or self.last is None or elapsed <= 0:
            return 1.0
        return max(1.0, (self.last - self.first).total_seconds() / elapsed)

    def now(self, sending: bool = True) -> datetime:
        """The clock's present: on the simulated clock, the last transaction's time while transactions
        are sent; once they are all sent (`sending` false), time goes on from it at the run's pace."""
        if self.kind == "wall" or self.last is None:
            return utcnow()
        if sending:
            return self.last
        return self.last + timedelta(seconds=(time.monotonic() - self.last_sent) * self.pace())


def run_live(settings: Settings, count: int | None, rate: float, seed: int, label_delay: timedelta,
             stop: threading.Event | None = None, on_sent: Callable[[int], None] | None = None,
             config: SimulatorConfig | None = None, max_label_wait: float | None = None,
             clock: Clock = "simulated", stats: ProduceStats | None = None) -> ProduceStats:
    """Publish simulated transactions at `rate` per second and their labels after `label_delay` (on
    the `clock`'s time, see the module docstring).

    Stops after `count` transactions (None: until `stop` is set); flushes before returning.
    `on_sent(n)` is called with the running number of transactions sent, after each batch of sends.
    `config` defaults to `SimulatorConfig.live_demo(seed)`. Delivery is confirmed
    every `DELIVERED_EVERY_S` (`Publisher.confirm_if_due`): a broker that stops answering ends the
    run with a `ServiceError` within `DELIVERY_WAIT_S`; `stats` (given) then holds what was sent.
    """
    if rate <= 0:
        raise ConfigError(f"rate must be positive, got {rate}")
    if count is not None and count < 0:
        raise ConfigError(f"count must not be negative, got {count}")
    stop = stop or threading.Event()
    records = Simulator(config or SimulatorConfig.live_demo(seed)).records()
    event_clock = EventClock(clock)
    publisher = Publisher(settings)
    stats = stats if stats is not None else ProduceStats()
    pending: deque[Label] = deque()
    began = time.monotonic()
    failed = False
    try:
        while not stop.is_set() and (count is None or stats.transactions < count):
            due = int((time.monotonic() - began) * rate) + 1
            if count is not None:
                due = min(due, count)
            while stats.transactions < due:
                rec = next(records)
                now = event_clock.stamp(rec.transaction.event_time)
                tx = rec.transaction.model_copy(update={"event_time": now})
                publisher.send_transaction(tx)
                stats.transactions += 1
                stats.frauds += bool(rec.is_fraud)
                pending.append(Label(transaction_id=tx.transaction_id, customer_id=tx.customer_id,
                                     terminal_id=tx.terminal_id, is_fraud=bool(rec.is_fraud), event_time=now,
                                     reported_at=now + label_delay))
            if on_sent is not None:
                on_sent(stats.transactions)
            _publish_due(pending, publisher, stats, event_clock.now())
            publisher.confirm_if_due()  # a broker gone: found out now
            next_due = began + (stats.transactions + 1) / rate - time.monotonic()
            stop.wait(min(max(next_due, 0.0), _TICK))
        stats.sending_seconds = time.monotonic() - began  # the transactions are sent; labels may be due
        wait = max_label_wait if max_label_wait is not None else min(
            label_delay.total_seconds() / event_clock.pace() + 2.0, 60.0)
        deadline = time.monotonic() + wait
        while pending and not stop.is_set() and time.monotonic() < deadline:
            _publish_due(pending, publisher, stats, event_clock.now(sending=False))
            stop.wait(_TICK)
        stats.labels_dropped = len(pending)
    except (ServiceError, KeyboardInterrupt):  # a broker gone, or a second Ctrl-C: no long wait for it
        failed = True
        stats.labels_dropped = len(pending)
        raise
    finally:
        stats.seconds = time.monotonic() - began
        stats.sending_seconds = stats.sending_seconds or stats.seconds
        if failed:  # what is still buffered will not go either: no long wait, and the error is the first one
            publisher.close_after_failure(1.0)
        else:
            publisher.close()
    log.info("produced %d transactions (%d frauds) and %d labels in %.1f s; %d labels not sent",
             stats.transactions, stats.frauds, stats.labels, stats.seconds, stats.labels_dropped)
    return stats


def _publish_due(pending: deque[Label], publisher: Publisher, stats: ProduceStats, now: datetime) -> None:
    while pending and pending[0].reported_at <= now:
        publisher.send_label(pending.popleft())
        stats.labels += 1
