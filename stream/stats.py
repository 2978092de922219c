"""Counters and latency figures of a consumer run.

>>> s = RunStats()
>>> for ms in (1.0, 2.0, 3.0, 4.0, 100.0):
...     s.observe_latency(ms)
>>> s.latency_percentile(50), s.latency_percentile(99)
(3.0, 100.0)
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field


@dataclass
class RunStats:
    processed: int = 0
    alerts: int = 0
    dead_lettered: int = 0
    labels_learned: int = 0
    labels_dead_lettered: int = 0
    batches: int = 0
    started: float = field(default_factory=time.monotonic)
    first_record: float | None = None
    last_record: float | None = None
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=200_000))

    def observe_latency(self, ms: float) -> None:
        self.latencies_ms.append(ms)

    def latency_percentile(self, q: float) -> float | None:
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        index = min(len(ordered) - 1, max(0, round(q / 100.0 * (len(ordered) - 1))))
        return ordered[index]

    @property
    def throughput(self) -> float:
        """Transactions per second between the first and the last processed record."""
        if self.first_record is None or self.last_record is None or self.last_record <= self.first_record:
            return 0.0
        return self.processed / (self.last_record - self.first_record)

    def summary(self) -> dict[str, float | int | None]:
        return {
            "processed": self.processed, "alerts": self.alerts, "dead_lettered": self.dead_lettered,
            "labels_learned": self.labels_learned,
            "labels_dead_lettered": self.labels_dead_lettered, "throughput_tps": round(self.throughput, 1),
            "latency_p50_ms": self.latency_percentile(50), "latency_p99_ms": self.latency_percentile(99),
        }
