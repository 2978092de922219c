"""Pure accumulators behind the consumer's operational figures (metrics endpoint and dashboard).

`Histogram` counts observations into fixed buckets (Prometheus style), `LabelWindow` keeps the
newest (champion score, label) pairs for rolling AUC and precision at the alert threshold. Both are
written by the consumer thread and read by the metrics or dashboard thread: readers copy the state
in one C-level call (``list(...)``) and never iterate shared containers in Python.

>>> h = Histogram((1.0, 10.0))
>>> for v in (0.5, 3.0, 30.0):
...     h.observe(v)
>>> h.cumulative(), h.count, h.total
([(1.0, 1), (10.0, 2), (inf, 3)], 3, 33.5)
>>> h.observe_many([1.0, 10.5])  # a batch at once, the same buckets
>>> h.cumulative(), h.count, h.total
([(1.0, 2), (10.0, 3), (inf, 5)], 5, 45.0)
>>> w = LabelWindow(size=4)
>>> for score, fraud in [(0.9, True), (0.2, False), (0.7, False), (0.8, True)]:
...     w.add(score, fraud)
>>> w.auc(), w.precision_at(0.75), w.n, w.frauds
(1.0, 1.0, 4, 2)
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fraudstream.errors import ConfigError
from fraudstream.models.ranking import roc_auc

# publish-to-scored latency (ms) and batch duration (s) buckets
LATENCY_BUCKETS_MS: tuple[float, ...] = (1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)
BATCH_BUCKETS_S: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# champion scores: fine at both ends, where the alert thresholds and nearly all genuine scores are
SCORE_BUCKETS: tuple[float, ...] = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9,
                                    0.95, 0.98, 0.99, 1.0)


class Histogram:
    """Observation counts per bucket (upper bounds inclusive), their sum and count."""

    def __init__(self, bounds: Sequence[float]) -> None:
        if not bounds or list(bounds) != sorted(set(bounds)):
            raise ConfigError(f"histogram bounds must be increasing and distinct: {bounds!r}")
        self.bounds: tuple[float, ...] = tuple(float(b) for b in bounds)
        self._counts = [0] * (len(self.bounds) + 1)  # the last bucket is +Inf
        self.count = 0
        self.total = 0.0

    def observe(self, value: float) -> None:
        self._counts[bisect.bisect_left(self.bounds, value)] += 1
        self.count += 1
        self.total += value

    def observe_many(self, values: Sequence[float]) -> None:
        """`observe` each of `values` (0.05 µs a value in a batch of 2,000, in one numpy pass; a small
        batch value by value); a NaN counts in the +Inf bucket and not in the sum."""
        if len(values) < 100:
            for value in values:
                if value == value:  # (not NaN)
                    self.observe(value)
                else:
                    self._counts[-1] += 1
                    self.count += 1
            return
        array = np.asarray(values, dtype=float)
        counts = np.bincount(np.searchsorted(self.bounds, array, side="left"), minlength=len(self._counts))
        for i in np.flatnonzero(counts).tolist():
            self._counts[i] += int(counts[i])
        self.count += len(array)
        self.total += float(np.nansum(array))

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations <= bound) per bucket, ending with +Inf."""
        counts = list(self._counts)
        out, running = [], 0
        for bound, n in zip((*self.bounds, math.inf), counts):
            running += n
            out.append((bound, running))
        return out


@dataclass(frozen=True)
class WindowFigures:
    """What a `LabelWindow` shows at one moment (NaN when undefined)."""

    n: int
    frauds: int
    auc: float
    flagged: int
    precision: float


class LabelWindow:
    """The newest `size` labelled transactions with the champion's score given when they were scored."""

    def __init__(self, size: int = 5000) -> None:
        if size < 1:
            raise ConfigError(f"label window size must be at least 1, not {size}")
        self._pairs: deque[tuple[float, bool]] = deque(maxlen=size)

    def add(self, score: float | None, is_fraud: bool) -> None:
        """Record one label; a label without a saved champion score is ignored."""
        if score is not None and not math.isnan(score):
            self._pairs.append((float(score), bool(is_fraud)))

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        pairs = list(self._pairs)  # one C-level copy: safe while the consumer thread appends
        if not pairs:
            return np.empty(0), np.empty(0, dtype=bool)
        table = np.array(pairs, dtype=float)
        return table[:, 0], table[:, 1] > 0.5

    @property
    def n(self) -> int:
        return len(self._pairs)

    @property
    def frauds(self) -> int:
        return int(self._arrays()[1].sum())

    def auc(self) -> float:
        """ROC AUC over the window; NaN until it holds both classes."""
        scores, labels = self._arrays()
        return roc_auc(labels, scores) if labels.size else float("nan")

    def precision_at(self, threshold: float) -> float:
        """Share of frauds among the window's transactions scored at least `threshold`; NaN if none."""
        return self.figures(threshold).precision

    def figures(self, threshold: float) -> WindowFigures:
        """All figures from one consistent copy of the window.

        >>> LabelWindow().figures(0.5)
        WindowFigures(n=0, frauds=0, auc=nan, flagged=0, precision=nan)
        """
        scores, labels = self._arrays()
        flagged = scores >= threshold
        n_flagged = int(flagged.sum())
        return WindowFigures(
            n=int(labels.size), frauds=int(labels.sum()),
            auc=roc_auc(labels, scores) if labels.size else float("nan"),
            flagged=n_flagged,
            precision=int((flagged & labels).sum()) / n_flagged if n_flagged else float("nan"),
        )
