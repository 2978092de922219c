"""Threshold-free ranking figures of scores against labels, as pure functions over arrays: AUC ROC
(ties counted half), average precision (as scikit-learn's), the ROC and precision-recall curves'
points, and the paired difference of two models' AUC ROC on the same labels with DeLong's confidence
interval. A NaN score has no rank: each refuses one with a ValueError, as scikit-learn does.

>>> import numpy as np
>>> y, s = np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])
>>> roc_auc(y, s), average_precision(y, s)
(0.75, 0.8333333333333333)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann–Whitney, ties counted half); NaN with a single class.

    >>> roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    0.75
    >>> roc_auc(np.array([0, 1]), np.array([0.5, 0.5]))
    0.5
    """
    y = np.asarray(labels).astype(bool)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(rankable(scores))
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def rankable(scores: np.ndarray) -> np.ndarray:
    """`scores` as floats; a ValueError if any is NaN, which has no rank (as scikit-learn's)."""
    s = np.asarray(scores, dtype=float)
    n_nan = int(np.isnan(s).sum())
    if n_nan:
        raise ValueError(f"{n_nan} of {s.size} scores are NaN: a NaN has no rank, so no figure can count it")
    return s


def _average_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    boundaries = np.flatnonzero(np.diff(sorted_values)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [values.size]))
    avg = (starts + ends + 1) / 2.0  # 1-based mean rank of each tie group
    ranks = np.empty(values.size)
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def precision_recall_points(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and threshold at each distinct score, from the highest score down."""
    y = np.asarray(labels).astype(bool)
    s = rankable(scores)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.concatenate((np.flatnonzero(np.diff(s)), [s.size - 1]))  # end of each tie group
    tp = np.cumsum(y)[last]
    fp = (last + 1) - tp
    n_pos = max(int(y.sum()), 1)
    return tp / (tp + fp), tp / n_pos, s[last]


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Average precision, sum over thresholds of (R_n − R_n−1)·P_n (as scikit-learn); NaN without frauds.

    >>> average_precision(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    0.8333333333333333
    """
    y, s = np.asarray(labels).astype(bool), rankable(scores)
    if not y.any():
        return float("nan")
    precision, recall, _ = precision_recall_points(y, s)
    return float(np.sum(np.diff(np.concatenate(([0.0], recall))) * precision))


def roc_points(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates at each distinct score, from (0, 0) to (1, 1).

    >>> fpr, tpr = roc_points(np.array([0, 1, 1]), np.array([0.2, 0.9, 0.5]))
    >>> fpr.tolist(), tpr.tolist()
    ([0.0, 0.0, 0.0, 1.0], [0.0, 0.5, 1.0, 1.0])
    """
    y = np.asarray(labels).astype(bool)
    s = rankable(scores)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.concatenate((np.flatnonzero(np.diff(s)), [s.size - 1])) if s.size else np.array([], dtype=int)
    tp = np.cumsum(y)[last]
    fp = (last + 1) - tp
    return (np.concatenate(([0.0], fp / max(int((~y).sum()), 1))),
            np.concatenate(([0.0], tp / max(int(y.sum()), 1))))


@dataclass(frozen=True)
class AucDifference:
    """AUC ROC of model A minus that of model B on the same labels, with its confidence interval
    (`low`, `high`) and standard error by DeLong's method; NaN where not computable (see
    `paired_auc_difference`). `n` labels, of which `frauds` are frauds."""

    difference: float
    low: float
    high: float
    standard_error: float
    n: int
    frauds: int
    confidence: float = 0.95

    @property
    def computable(self) -> bool:
        return not math.isnan(self.low)


def paired_auc_difference(labels: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray,
                          confidence: float = 0.95) -> AucDifference:
    """AUC ROC of `scores_a` minus that of `scores_b` over the same `labels`, with a confidence
    interval by DeLong's method for two correlated ROC curves.

    Each AUC is the mean of its structural components: for each fraud, the share of genuine
    transactions scored below it, and for each genuine one, the share of frauds scored above it
    (ties counted half, as `roc_auc`). The variance of the difference is that of the paired
    differences of the components, over the frauds and over the genuine ones; the interval is the
    difference ± the normal quantile times its standard error, clipped to [-1, 1]. The components
    come from midranks (Sun & Xu's algorithm), in O(n log n) time.

    Parameters
    ----------
    labels : array of 0/1 (or bool), 1 for a fraud
    scores_a, scores_b : arrays of float, the two models' scores of the same transactions, in the
        order of `labels`; a NaN is refused with a ValueError, as `roc_auc` refuses it
    confidence : the interval's coverage, strictly between 0 and 1

    Returns
    -------
    AucDifference
        `difference`, `low`, `high` and `standard_error` are NaN with fewer than 2 frauds or fewer
        than 2 genuine labels (a single class, or a variance that cannot be estimated).

    References
    ----------
    E. R. DeLong, D. M. DeLong, D. L. Clarke-Pearson (1988), Comparing the areas under two or more
    correlated receiver operating characteristic curves: a nonparametric approach, Biometrics 44(3).
    X. Sun, W. Xu (2014), Fast implementation of DeLong's algorithm for comparing the areas under
    correlated receiver operating characteristic curves, IEEE Signal Processing Letters 21(11).

    Examples
    --------
    >>> y = np.array([0, 0, 0, 0, 1, 1, 1])
    >>> a = np.array([0.1, 0.2, 0.3, 0.6, 0.5, 0.7, 0.9])
    >>> b = np.array([0.2, 0.6, 0.3, 0.5, 0.1, 0.4, 0.9])
    >>> d = paired_auc_difference(y, a, b)
    >>> round(d.difference, 4), round(d.low, 4), round(d.high, 4), d.n, d.frauds
    (0.4167, -0.0453, 0.8786, 7, 3)
    >>> paired_auc_difference(np.array([0, 0, 1]), np.array([0.1, 0.2, 0.3]), np.array([0.3, 0.2, 0.1])).computable
    False
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be strictly between 0 and 1, not {confidence}")
    y = np.asarray(labels).astype(bool)
    a, b = rankable(scores_a), rankable(scores_b)
    if y.ndim != 1 or a.shape != y.shape or b.shape != y.shape:
        raise ValueError(f"labels and both models' scores must be 1-d and alike in length, not of shapes "
                         f"{y.shape}, {a.shape} and {b.shape}")
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos < 2 or n_neg < 2:
        nan = float("nan")
        return AucDifference(nan, nan, nan, nan, int(y.size), n_pos, confidence)
    pos_diff, neg_diff = np.zeros(n_pos), np.zeros(n_neg)  # components of A minus those of B
    for scores, sign in ((a, 1.0), (b, -1.0)):
        ranks = _average_ranks(scores)
        # a fraud's rank among all minus its rank among the frauds: the genuine ones below it (ties half)
        pos_diff += sign * (ranks[y] - _average_ranks(scores[y])) / n_neg
        # likewise the frauds below a genuine one; its component counts those above it
        neg_diff += sign * (1.0 - (ranks[~y] - _average_ranks(scores[~y])) / n_pos)
    difference = float(pos_diff.mean())
    standard_error = math.sqrt(pos_diff.var(ddof=1) / n_pos + neg_diff.var(ddof=1) / n_neg)
    half_width = _normal_quantile(0.5 + confidence / 2.0) * standard_error
    return AucDifference(difference, max(difference - half_width, -1.0), min(difference + half_width, 1.0),
                         standard_error, int(y.size), n_pos, confidence)


def _normal_quantile(p: float) -> float:
    """The standard normal distribution's quantile at `p` (the standard library's: scipy's `norm.ppf`
    gives the same to the last bit or so, and takes ~0.6 s to import)."""
    return NormalDist().inv_cdf(p)
