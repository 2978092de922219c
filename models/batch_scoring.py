"""Scores of a whole batch at once, equal to `zoo.score_one` row by row, float for float.

The live consumer scores a batch with one model state (labels are learned after the batch is
scored), so the additive logistic models (`LogBins | LogisticRegression`, alone, undersampled or in
a weighted mean) can be evaluated on a feature matrix with numpy instead of one dict at a time: the
per-row cost drops from ~30 us to ~6 (512 rows). The boosted trees (`gbt_window`) score a batch of
any size with one call. Other models, and batches of fewer than `MIN_VECTOR_ROWS`, are scored row
by row.

Every step repeats River's arithmetic exactly, in the same order: the logistic regression's dot
product adds the terms in the order of the transformed features (value term, then bin term, per
input feature), logarithms and exponentials come from `math` (numpy's vectorised ones may differ
in the last bit on some CPUs), and the probability wrappers' formulas are copied operation by
operation. So a model scores a transaction the same in the live consumer (batches) and in the
backtest (one at a time), and the tests hold the two equal.

>>> from fraudstream.models import zoo
>>> model = zoo.make_model("gam_under", seed=1)
>>> for amount, fraud in [(5.0, False), (900.0, True), (12.0, False), (700.0, True)]:
...     model.learn_one({"TX_AMOUNT": amount, "TX_DURING_NIGHT": float(fraud)}, fraud)
>>> rows = [{"TX_AMOUNT": 3.0 * a, "TX_DURING_NIGHT": float(a % 2)} for a in range(200)]
>>> score_many(model, rows) == [zoo.score_one(model, x) for x in rows]
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import chain
from typing import Any

import numpy as np
from river import compose, linear_model

from fraudstream.models.boosted import WindowedBoostedTrees
from fraudstream.models.transforms import _BINARY, _UNIT, _LN2, BIN_SEPARATOR, LogBins
from fraudstream.models.wrappers import MeanProbaClassifier, NegativeUndersampler, proba_true, undersampling_corrected

SIGMOID_CLIP = 30.0  # river.utils.math.sigmoid: 0 below -30, 1 above 30
MIN_VECTOR_ROWS = 40  # below this, row by row is faster (~25 us fixed per numpy column pass)


def score_many(model: Any, rows: Sequence[Mapping[str, float]]) -> list[float]:
    """P(fraud) of every row, equal to ``[zoo.score_one(model, x) for x in rows]``."""
    if not rows:
        return []
    names = tuple(rows[0])
    if _row_by_row(model, len(rows)) or any(tuple(x) != names for x in rows):
        return [proba_true(model.predict_proba_one(x)) for x in rows]
    flat = chain.from_iterable(x.values() for x in rows)
    matrix = np.fromiter(flat, dtype=np.float64, count=len(rows) * len(names)).reshape(len(rows), len(names))
    return _proba(model, names, matrix, rows).tolist()


def score_matrix(model: Any, names: Sequence[str], matrix: np.ndarray) -> list[float]:
    """`score_many` of the rows of a matrix whose columns are `names` (no dict per row unless the
    model needs one)."""
    if len(matrix) == 0:
        return []
    names = tuple(names)
    if _row_by_row(model, len(matrix)):
        return [proba_true(model.predict_proba_one(dict(zip(names, x)))) for x in matrix.tolist()]
    return _proba(model, names, matrix, None).tolist()


def _row_by_row(model: Any, n: int) -> bool:
    """Whether row by row is as fast: a few rows (live traffic in small batches), where the
    per-column numpy calls would cost more than they save, except for a tree model, whose every call
    has a fixed cost of its own (~0.1 ms); or a model without a vectorised part."""
    return (n < MIN_VECTOR_ROWS and not _trees_score(model)) or not _vectorisable(model)


def _vectorisable(model: Any) -> bool:
    """Whether some part of the model has a vectorised path (else row by row is as fast)."""
    if isinstance(model, NegativeUndersampler):
        return _vectorisable(model.classifier)
    if isinstance(model, MeanProbaClassifier):
        return any(_vectorisable(m) for m in model.models)
    return _is_gam(model) or isinstance(model, WindowedBoostedTrees)


def _trees_score(model: Any) -> bool:
    """Whether the scores come from boosted trees (past their warm-up)."""
    if isinstance(model, NegativeUndersampler):
        return _trees_score(model.classifier)
    return isinstance(model, WindowedBoostedTrees) and model.warming_up is None


def _is_gam(model: Any) -> bool:
    if not isinstance(model, compose.Pipeline):
        return False
    steps = list(model.steps.values())
    return (len(steps) == 2 and type(steps[0]) is LogBins and type(steps[1]) is linear_model.LogisticRegression
            and not getattr(compose.Pipeline, "_LEARN_UNSUPERVISED_DURING_PREDICT", False))


def _proba(model: Any, names: tuple[str, ...], matrix: np.ndarray,
           rows: Sequence[Mapping[str, float]] | None) -> np.ndarray:
    """`proba_true(model.predict_proba_one(x))` of every row (`rows`: the matrix's as dicts, made
    from it when None and a model needs them)."""
    if isinstance(model, NegativeUndersampler):
        q = _proba(model.classifier, names, matrix, rows)
        return _proba_true(undersampling_corrected(q, model.rate))
    if isinstance(model, MeanProbaClassifier):
        total = sum(model.weights)
        acc: np.ndarray | int = 0  # sum() starts from the integer 0
        for member, weight in zip(model.models, model.weights):
            acc = acc + weight * _proba(member, names, matrix, rows)
        return _proba_true(acc / total)  # type: ignore[operator]
    if isinstance(model, WindowedBoostedTrees):
        warmup = model.warming_up
        if warmup is not None:
            return _proba(warmup, names, matrix, rows)
        return _proba_true(model.proba_matrix(names, matrix))
    if _is_gam(model):
        bins, regression = model.steps.values()
        return _proba_true(_sigmoid(_gam_logit(bins, regression, names, matrix)))
    if rows is None:
        rows = [dict(zip(names, x)) for x in matrix.tolist()]
    return np.array([proba_true(model.predict_proba_one(x)) for x in rows], dtype=np.float64)


def _proba_true(p1: np.ndarray) -> np.ndarray:
    """`wrappers.proba_true({False: 1.0 - p, True: p})`, elementwise."""
    total = p1 + (1.0 - p1)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.minimum(1.0, np.fmax(0.0, p1 / total))  # fmax: 0.0 for a NaN, as Python's max(0.0, nan)
    return np.where(total <= 0.0, 0.0, share)


def _sigmoid(logit: np.ndarray) -> np.ndarray:
    """`river.utils.math.sigmoid`, elementwise, with `math.exp` as River uses it."""
    inside = np.clip(logit, -SIGMOID_CLIP - 1.0, SIGMOID_CLIP + 1.0)  # unchanged where it is used; no overflow
    exp = np.fromiter(map(math.exp, (-inside).tolist()), dtype=np.float64, count=len(logit))
    p = 1.0 / (1.0 + exp)
    return np.where(logit < -SIGMOID_CLIP, 0.0, np.where(logit > SIGMOID_CLIP, 1.0, p))


def _gam_logit(bins: LogBins, regression: linear_model.LogisticRegression, names: tuple[str, ...],
               matrix: np.ndarray) -> np.ndarray:
    """The regression's ``weights.dot(bins.transform_one(x)) + intercept`` for every row: the terms
    added one input feature at a time, in the order `transform_one` emits them."""
    weights = regression.weights  # a dict copy, once per batch
    n = matrix.shape[0]
    kinds = [bins.kind_of(k) for k in names]
    logged = [j for j, kind in enumerate(kinds) if kind != _BINARY]
    z = np.empty_like(matrix)
    if logged:  # signed log1p with math.log1p (exactly transform_one's value)
        values = matrix[:, logged]
        z[:, logged] = np.where(values >= 0.0, 1.0, -1.0) * _log1p(np.abs(values))
    scale = bins.per_octave / _LN2
    total = np.zeros(n, dtype=np.float64)
    for j, (name, kind) in enumerate(zip(names, kinds)):
        column = matrix[:, j]
        if kind == _BINARY:
            if name in weights:
                total += weights[name] * column
            continue
        norm = bins.normaliser(name)
        if norm is not None and name in weights:
            total += weights[name] * ((z[:, j] - norm[0]) * norm[1])
        if kind == _UNIT:
            index = np.where(column >= 1.0, 10, np.trunc(column * 10.0)).astype(np.int64)
        else:
            index = np.floor(z[:, j] * scale).astype(np.int64)
        total += _bin_weights(weights, name, index)
    return total + regression.intercept


_LOG1P_OF_WHOLE = np.array([math.log1p(i) for i in range(4096)], dtype=np.float64)


def _log1p(values: np.ndarray) -> np.ndarray:
    """`math.log1p` of every element, float for float: whole numbers below 4,096 (counts, flags,
    zeros: two thirds of a batch's values) from a table of its values, the others one at a time
    (`np.log1p` differs from it in the last bit for ~8 % of values here).

    >>> x = np.array([[0.0, 1.0, 7.0], [2.5, 4095.0, 1e9], [-0.5, 0.5, 4096.0]])
    >>> bool((_log1p(x) == np.vectorize(math.log1p)(x)).all())
    True
    """
    whole = (values >= 0.0) & (values < len(_LOG1P_OF_WHOLE)) & (values == np.floor(values))  # not NaN
    out = np.empty_like(values)
    out[whole] = _LOG1P_OF_WHOLE[values[whole].astype(np.intp)]
    rest = ~whole
    out[rest] = np.fromiter(map(math.log1p, values[rest].tolist()), dtype=np.float64, count=int(rest.sum()))
    return out


def _bin_weights(weights: dict[str, float], name: str, index: np.ndarray) -> np.ndarray:
    """Per row, the weight of the one-hot bin `name#index` (times its value, 1.0), 0 if unlearned."""
    if len(index) == 0:
        return np.zeros(0, dtype=np.float64)
    low, high = int(index.min()), int(index.max())
    if high - low <= 4 * len(index):  # bins are logarithmic: a short range, looked up without sorting
        table = np.array([weights.get(f"{name}{BIN_SEPARATOR}{b}", 0.0) for b in range(low, high + 1)], dtype=np.float64)
        return table[index - low] * 1.0
    found, inverse = np.unique(index, return_inverse=True)
    lookup = np.array([weights.get(f"{name}{BIN_SEPARATOR}{b}", 0.0) for b in found.tolist()], dtype=np.float64)
    return lookup[inverse] * 1.0
