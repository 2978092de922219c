"""`paired_auc_difference`: DeLong's interval for the difference of two models' AUC ROC on the same
labels, against DeLong's structural components computed pair by pair, and by simulation."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from fraudstream.models.ranking import paired_auc_difference, roc_auc


def brute_delong(y: np.ndarray, a: np.ndarray, b: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float,
                                                                                                   float]:
    """DeLong, DeLong & Clarke-Pearson (1988) as written: psi over every fraud/genuine pair, the 2×2
    covariance matrices S10 and S01 of the components, and the contrast (1, −1)."""
    y = y.astype(bool)
    v10, v01, aucs = [], [], []
    for s in (a, b):
        x, z = s[y], s[~y]
        psi = (x[:, None] > z[None, :]) + 0.5 * (x[:, None] == z[None, :])
        v10.append(psi.mean(axis=1))
        v01.append(psi.mean(axis=0))
        aucs.append(psi.mean())
    s = np.cov(np.array(v10)) / int(y.sum()) + np.cov(np.array(v01)) / int((~y).sum())
    contrast = np.array([1.0, -1.0])
    se = math.sqrt(contrast @ s @ contrast)
    d = aucs[0] - aucs[1]
    half = NormalDist().inv_cdf(0.5 + confidence / 2) * se
    return d, max(d - half, -1.0), min(d + half, 1.0), se


@pytest.mark.parametrize("seed", range(60))
def test_matches_brute_force_delong_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(4, 300))
    y = (rng.random(n) < rng.uniform(0.02, 0.6)).astype(int)
    y[:2], y[2:4] = 1, 0  # at least 2 of each class
    decimals = seed % 3  # 0 decimals: a handful of distinct scores, ties within and across classes
    a = np.round(rng.random(n) + rng.uniform(0, 1) * y, decimals)
    b = np.round(0.5 * a + 0.7 * rng.random(n) + rng.uniform(0, 1) * y, decimals)
    if seed % 7 == 0:
        b = a.copy()  # the same ranking: a difference of 0 with no variance
    elif seed % 11 == 0:
        b = 1.0 - a  # the reverse ranking
    confidence = (0.95, 0.9, 0.99)[seed % 3]
    got = paired_auc_difference(y, a, b, confidence)
    expected = brute_delong(y, a, b, confidence)
    assert (got.difference, got.low, got.high, got.standard_error) == pytest.approx(expected, abs=1e-12)
    assert got.difference == pytest.approx(roc_auc(y, a) - roc_auc(y, b), abs=1e-12)
    assert (got.n, got.frauds, got.confidence, got.computable) == (n, int(y.sum()), confidence, True)


@pytest.mark.parametrize("labels", [[0, 0, 0, 0], [1, 1, 1], [1, 0, 0, 0], [0, 1, 1, 1, 1], []])
def test_not_computable_without_two_of_each_class(labels: list[int]) -> None:
    y = np.array(labels, dtype=int)
    d = paired_auc_difference(y, np.linspace(0, 1, y.size), np.linspace(1, 0, y.size))
    assert not d.computable and math.isnan(d.difference) and math.isnan(d.high) and math.isnan(d.standard_error)
    assert (d.n, d.frauds) == (y.size, int(y.sum()))


def test_refuses_nan_scores_unlike_lengths_and_a_confidence_outside_0_1() -> None:
    y, s = np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.3, 0.4])
    with pytest.raises(ValueError, match="NaN has no rank"):
        paired_auc_difference(y, s, np.array([0.1, np.nan, 0.3, 0.4]))
    with pytest.raises(ValueError, match="alike in length"):
        paired_auc_difference(y, s, s[:3])
    for confidence in (0.0, 1.0, 95.0):
        with pytest.raises(ValueError, match="strictly between 0 and 1"):
            paired_auc_difference(y, s, s, confidence)


_GRID = 0.25  # the simulated scores are rounded to it: many ties


def _true_auc(shift: float) -> float:
    """P(X > Y) + P(X = Y)/2 for X ~ N(shift, 1) and Y ~ N(0, 1), both rounded to the grid."""
    cdf = NormalDist().cdf
    edges = (np.arange(-40, 61) - 0.5) * _GRID
    p_pos = np.diff([cdf(e - shift) for e in edges])
    p_neg = np.diff([cdf(e) for e in edges])
    below = np.concatenate(([0.0], np.cumsum(p_neg)[:-1]))
    return float(np.sum(p_pos * (below + 0.5 * p_neg)))


@pytest.mark.parametrize(("shift_a", "shift_b"), [(1.6, 1.3), (1.4, 1.4)])
def test_the_95_percent_interval_covers_the_true_difference_95_percent_of_the_time(shift_a: float,
                                                                                   shift_b: float) -> None:
    """500 samples of 41 frauds and 559 genuine from a population whose difference is known: each
    model's score is its shift for a fraud plus normal noise (correlated 0.6 between the models, as
    two models of the same transactions are), rounded to a grid."""
    rng = np.random.default_rng(0)
    truth = _true_auc(shift_a) - _true_auc(shift_b)
    y = np.r_[np.ones(41, dtype=int), np.zeros(559, dtype=int)]
    covered = 0
    for _ in range(500):
        noise = rng.multivariate_normal([0.0, 0.0], [[1.0, 0.6], [0.6, 1.0]], size=y.size)
        a = np.round((noise[:, 0] + shift_a * y) / _GRID) * _GRID
        b = np.round((noise[:, 1] + shift_b * y) / _GRID) * _GRID
        d = paired_auc_difference(y, a, b)
        covered += d.low <= truth <= d.high
    assert 0.93 <= covered / 500 <= 0.97, covered / 500
