"""Which transactions' labels a model has learned, as spans of event time, so that a backtest that
starts from a checkpoint learns no label twice and skips none the checkpoint never saw.

A backtest learns its labels in the order of their transactions' times (a constant label delay), so
what one run learned is every label of its transactions from the first learned to the last: a span.
A checkpoint of a run that started from another checkpoint holds both runs' spans, merged where
they overlap. Times are epoch microseconds, both ends included.

>>> spans = LearnedSpans.up_to(100).merged(200, 300).merged(250, 400)
>>> spans.spans
((-9223372036854775808, 100), (200, 400))
>>> [spans.covers(t) for t in (50, 150, 200, 400, 401)]
[True, False, True, True, False]
>>> LearnedSpans.from_json(spans.to_json()) == spans
True
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from fraudstream.errors import FraudstreamError
from fraudstream.timeutil import epoch_us, from_epoch_us, parse_time

OPEN = -(1 << 63)  # a span that starts with the file


def _iso(us: int) -> str | None:
    return None if us == OPEN else from_epoch_us(us).isoformat()


@dataclass(frozen=True)
class LearnedSpans:
    """Disjoint, sorted spans ``(first, last)`` of event time (µs, inclusive)."""

    spans: tuple[tuple[int, int], ...] = ()

    @classmethod
    def up_to(cls, last_us: int) -> LearnedSpans:
        """Every transaction up to `last_us` (``--learn-after``)."""
        return cls(((OPEN, last_us),))

    def merged(self, first_us: int, last_us: int) -> LearnedSpans:
        """These spans and ``(first_us, last_us)``, overlapping ones made one."""
        return self._of((*self.spans, (first_us, last_us)))

    @classmethod
    def _of(cls, spans: Iterable[tuple[int, int]]) -> LearnedSpans:
        out: list[tuple[int, int]] = []
        for a, b in sorted(spans):
            if out and a <= out[-1][1]:
                out[-1] = (out[-1][0], max(out[-1][1], b))
            else:
                out.append((a, b))
        return cls(tuple(out))

    def covers(self, t_us: int) -> bool:
        for a, b in self.spans:
            if a <= t_us <= b:
                return True
        return False

    def to_json(self) -> list[list[str | None]]:
        """ISO times, ``None`` for a span open at its start (a checkpoint header, the backtest JSON)."""
        return [[_iso(a), _iso(b)] for a, b in self.spans]

    @classmethod
    def from_json(cls, data: object) -> LearnedSpans:
        """What `to_json` wrote (times without a zone are UTC); what is not a span is left out."""
        if not isinstance(data, list):
            return cls()
        spans = []
        for item in data:
            try:
                first = OPEN if item[0] is None else epoch_us(parse_time(item[0]))
                spans.append((first, epoch_us(parse_time(item[1]))))
            except (FraudstreamError, AttributeError, TypeError, IndexError, KeyError):
                continue
        return cls._of(spans)
