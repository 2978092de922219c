"""Issue 8's targets against one run's figures, as `consumer_throughput.py` prints them."""

from __future__ import annotations

from dataclasses import dataclass

from feature_state_memory import MemoryFigures


@dataclass(frozen=True)
class Target:
    what: str
    measured: str
    met: bool


def targets(pipeline: float, ratio: float, p99: float, rate: float, memory: MemoryFigures | None) -> list[Target]:
    """Issue 8's targets against this run's figures (the memory one both ways: the feature state
    alone, and with the scored records waiting for their labels)."""
    out = [Target("end-to-end scoring rate >= 20,000 tx/s", f"{pipeline:,.0f} tx/s", pipeline >= 20_000),
           Target("ratio to the raw kafka-python rate >= 0.30", f"{ratio:.3f}", ratio >= 0.30),
           Target(f"p99 publish->scored <= 50 ms at 2,000 tx/s offered (this run: {rate:,.0f})", f"{p99:.1f} ms",
                  p99 <= 50.0 and rate >= 2000)]
    if memory is not None:
        out += [Target(f"Redis <= 2 KB (2,000 B) per customer after {memory.days} days: the feature state",
                       f"{memory.feature_state:,.0f} B", memory.feature_state <= 2000),
                Target("  ... with the scored records waiting for their labels", f"{memory.total:,.0f} B",
                       memory.total <= 2000)]
    return out
