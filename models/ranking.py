"""Threshold-free ranking figures of scores against labels, as pure functions over arrays: AUC ROC
(ties counted half), average precision (as scikit-learn's), and the ROC and precision-recall
curves' points. A NaN score has no rank: each refuses one with a ValueError, as scikit-learn does.

>>> import numpy as np
>>> y, s = np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])
>>> roc_auc(y, s), average_precision(y, s)
(0.75, 0.8333333333333333)
"""

from __future__ import annotations

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
