"""Live production: the simulator's stream published at a fixed rate with event time = now.

The simulated sequence of customers, terminals, amounts and frauds is kept; only the times are
replaced: the k-th transaction is due ``k / rate`` seconds after the start and carries the wall-clock
time it was sent. Each label (reported at event time + `label_delay`) is published once that moment
has passed. After `count` transactions the labels still pending are waited for, but for at most
``max_label_wait`` seconds (default: the label delay plus 2 s, capped at 60 s); setting `stop` ends
the run at once, dropping the pending labels (counted in `ProduceStats.labels_dropped`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from fraudstream.config import Settings
from fraudstream.errors import ConfigError
from fraudstream.models.events import Label
from fraudstream.producer.publisher import Publisher
from fraudstream.producer.simulator import Simulator, SimulatorConfig
from fraudstream.timeutil import utcnow

log = logging.getLogger(__name__)
_TICK = 0.01  # longest sleep between checks of the clock, the stop flag and due labels


@dataclass
class ProduceStats:
    """What a live run published."""

    transactions: int = 0
    frauds: int = 0
    labels: int = 0
    labels_dropped: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.transactions / self.seconds if self.seconds > 0 else 0.0


def run_live(settings: Settings, count: int | None, rate: float, seed: int, label_delay: timedelta,
             stop: threading.Event | None = None, on_sent: Callable[[int], None] | None = None,
             config: SimulatorConfig | None = None, max_label_wait: float | None = None) -> ProduceStats:
    """Publish simulated transactions at `rate` per second and their labels after `label_delay`.

    Stops after `count` transactions (None: until `stop` is set); flushes before returning.
    `on_sent(n)` is called with the running number of transactions sent, after each batch of sends.
    `config` defaults to `SimulatorConfig.live_demo(seed)`.
    """
    if rate <= 0:
        raise ConfigError(f"rate must be positive, got {rate}")
    if count is not None and count < 0:
        raise ConfigError(f"count must not be negative, got {count}")
    stop = stop or threading.Event()
    records = Simulator(config or SimulatorConfig.live_demo(seed)).records()
    wait = max_label_wait if max_label_wait is not None else min(label_delay.total_seconds() + 2.0, 60.0)
    publisher = Publisher(settings)
    stats = ProduceStats()
    pending: deque[Label] = deque()
    began = time.monotonic()
    try:
        while not stop.is_set() and (count is None or stats.transactions < count):
            due = int((time.monotonic() - began) * rate) + 1
            if count is not None:
                due = min(due, count)
            while stats.transactions < due:
                rec = next(records)
                now = utcnow()
                tx = rec.transaction.model_copy(update={"event_time": now})
                publisher.send_transaction(tx)
                stats.transactions += 1
                stats.frauds += bool(rec.is_fraud)
                pending.append(Label(transaction_id=tx.transaction_id, customer_id=tx.customer_id,
                                     terminal_id=tx.terminal_id, is_fraud=bool(rec.is_fraud), event_time=now,
                                     reported_at=now + label_delay))
            if on_sent is not None:
                on_sent(stats.transactions)
            _publish_due(pending, publisher, stats)
            next_due = began + (stats.transactions + 1) / rate - time.monotonic()
            stop.wait(min(max(next_due, 0.0), _TICK))
        deadline = time.monotonic() + wait
        while pending and not stop.is_set() and time.monotonic() < deadline:
            _publish_due(pending, publisher, stats)
            stop.wait(_TICK)
        stats.labels_dropped = len(pending)
    finally:
        stats.seconds = time.monotonic() - began
        publisher.close()
    log.info("produced %d transactions (%d frauds) and %d labels in %.1f s; %d labels not sent",
             stats.transactions, stats.frauds, stats.labels, stats.seconds, stats.labels_dropped)
    return stats


def _publish_due(pending: deque[Label], publisher: Publisher, stats: ProduceStats) -> None:
    now = utcnow()
    while pending and pending[0].reported_at <= now:
        publisher.send_label(pending.popleft())
        stats.labels += 1
