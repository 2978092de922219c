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
BINARY_FEATURES = ("TX_DURING_WEEKEND", "TX_DURING_NIGHT", "has_coordinates", "customer_first_use_of_terminal_30d")
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
        self._stats: dict[str, list[float]] = {}  # name -> [n, mean, m2]
        self._names: dict[tuple[str, int], str] = {}

    def _is_unit(self, name: str) -> bool:
        return "_RISK_" in name

    def learn_one(self, x: dict) -> None:  # type: ignore[override]
        binary = self.binary
        for k, v in x.items():
            if k in binary:
                continue
            z = signed_log1p(v)
            s = self._stats.get(k)
            if s is None:
                s = self._stats[k] = [0.0, 0.0, 0.0]
            s[0] += 1.0
            d = z - s[1]
            s[1] += d / s[0]
            s[2] += d * (z - s[1])

    def typical_values(self) -> dict[str, float]:
        """Per learned numeric feature, the value at its mean log (a baseline for explanations)."""
        return {k: math.copysign(math.expm1(abs(s[1])), s[1]) for k, s in self._stats.items()}

    def transform_one(self, x: dict) -> dict:  # type: ignore[override]
        out: dict[str, float] = {}
        names, binary, scale = self._names, self.binary, self.per_octave / _LN2
        for k, v in x.items():
            if k in binary:
                out[k] = v
                continue
            z = signed_log1p(v)
            s = self._stats.get(k)
            if s is not None and s[0] > 1.0 and s[2] > 0.0:
                out[k] = (z - s[1]) / math.sqrt(s[2] / s[0])
            b = min(int(v * 10.0), 10) if self._is_unit(k) else math.floor(z * scale)
            name = names.get((k, b))
            if name is None:
                name = names[(k, b)] = f"{k}{BIN_SEPARATOR}{b}"
            out[name] = 1.0
        return out
