"""Feature transforms for linear models: standardised logs plus one-hot log-scale bins.

A logistic regression over these is a generalised additive model: each feature gets a smooth
linear term and a piecewise-constant shape learned from the data (a step at some amount, a jump in
terminal risk), with no threshold written into the code. Bin edges are fixed (log scale, or tenths
for features in [0, 1]), so the transform needs no warm-up and is deterministic.

>>> t = LogBins(per_octave=1)
>>> t.learn_one({"TX_AMOUNT": 3.0}); t.learn_one({"TX_AMOUNT": 15.0})
>>> out = t.transform_one({"TX_AMOUNT": 15.0, "TX_DURING_NIGHT": 1.0, "TERMINAL_ID_RISK_7DAY_WINDOW": 0.25})
>>> sorted((k, round(v, 6)) for k, v in out.items())  # no risk seen yet: only its bin
[('TERMINAL_ID_RISK_7DAY_WINDOW#2', 1.0), ('TX_AMOUNT', 1.0), ('TX_AMOUNT#4', 1.0), ('TX_DURING_NIGHT', 1.0)]
>>> base_feature("TX_AMOUNT#4")
'TX_AMOUNT'
"""

from __future__ import annotations

import logging
import math

from river import base

log = logging.getLogger(__name__)

BIN_SEPARATOR = "#"
BINARY_FEATURES = ("TX_DURING_WEEKEND", "TX_DURING_NIGHT", "has_coordinates", "customer_first_use_of_terminal_30d",
                   "terminal_last_is_fraud")
_LN2 = math.log(2.0)


def base_feature(name: str) -> str:
    """The input feature a transformed feature comes from."""
    return name.split(BIN_SEPARATOR, 1)[0]


def signed_log1p(value: float) -> float:
    """log(1 + |v|) with the sign of v.

    >>> signed_log1p(0.0), round(signed_log1p(-math.e + 1), 6)
    (0.0, -1.0)
    """
    return math.copysign(math.log1p(abs(value)), value)


class LogBins(base.Transformer):
    """Per numeric feature: its standardised signed log1p and a one-hot bin indicator.

    Binary features pass through. Features whose name contains ``_RISK_`` (shares in [0, 1]) are
    binned in tenths, others in `per_octave` bins per doubling of 1 + |v|.
    Standardisation statistics (Welford) are updated by `learn_one`, i.e. from learned examples only.
    """

    def __init__(self, per_octave: int = 4, binary: tuple[str, ...] = BINARY_FEATURES) -> None:
        self.per_octave = per_octave
        self.binary = tuple(binary)
        self._stats: dict[str, list[float]] = {}  # name -> [n, mean, m2] of the signed log1p
        self._names: dict[tuple[str, int], str] = {}
        self._norm: dict[str, tuple[float, float]] = {}  # name -> (mean, 1 / std), from _stats
        self._kinds: dict[str, int] = {}  # name -> _BINARY, _UNIT or _LOG

    def __setstate__(self, state: dict) -> None:  # checkpoints written before the caches existed
        self.__dict__.update(state)
        self._kinds = {}
        self._norm = {k: n for k, s in self._stats.items() if (n := _normaliser(s)) is not None}

    def kind_of(self, name: str) -> int:
        """How `name` is transformed: `_BINARY` (passed through), `_UNIT` (tenths) or `_LOG` (log bins)."""
        kind = self._kinds.get(name)
        return self._kind(name) if kind is None else kind

    def normaliser(self, name: str) -> tuple[float, float] | None:
        """(mean, 1 / std) of the signed log1p of `name`, once learned with a spread; else None."""
        return self._norm.get(name)

    def _kind(self, name: str) -> int:
        kind = _BINARY if name in self.binary else _UNIT if "_RISK_" in name else _LOG
        self._kinds[name] = kind
        return kind

    def learn_one(self, x: dict) -> None:  # type: ignore[override]
        kinds, stats, norm, log1p = self._kinds, self._stats, self._norm, math.log1p
        for k, v in x.items():
            kind = kinds.get(k)
            if (self._kind(k) if kind is None else kind) == _BINARY:
                continue
            z = log1p(v) if v >= 0.0 else -log1p(-v)
            s = stats.get(k)
            if s is None:
                s = stats[k] = [0.0, 0.0, 0.0]
            s[0] += 1.0
            d = z - s[1]
            s[1] += d / s[0]
            s[2] += d * (z - s[1])
            n = _normaliser(s)
            if n is not None:
                norm[k] = n

    def typical_values(self) -> dict[str, float]:
        """Per learned numeric feature, the value at its mean log (a baseline for explanations)."""
        return {k: math.copysign(math.expm1(abs(s[1])), s[1]) for k, s in self._stats.items()}

    def transform_one(self, x: dict) -> dict:  # type: ignore[override]
        out: dict[str, float] = {}
        names, kinds, norm = self._names, self._kinds, self._norm
        scale, log1p, floor = self.per_octave / _LN2, math.log1p, math.floor
        for k, v in x.items():  # the hot path of the linear models: signed_log1p inlined
            kind = kinds.get(k)
            if kind is None:
                kind = self._kind(k)
            if kind == _BINARY:
                out[k] = v
                continue
            z = log1p(v) if v >= 0.0 else -log1p(-v)
            n = norm.get(k)
            if n is not None:
                out[k] = (z - n[0]) * n[1]
            b = (10 if v >= 1.0 else int(v * 10.0)) if kind == _UNIT else floor(z * scale)
            name = names.get((k, b))
            if name is None:
                name = names[(k, b)] = f"{k}{BIN_SEPARATOR}{b}"
            out[name] = 1.0
        return out


_BINARY, _UNIT, _LOG = 0, 1, 2


def _normaliser(stats: list[float]) -> tuple[float, float] | None:
    """(mean, 1 / std) once the statistics have a spread."""
    n, mean, m2 = stats
    return (mean, 1.0 / math.sqrt(m2 / n)) if n > 1.0 and m2 > 0.0 else None
