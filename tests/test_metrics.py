"""The handbook prequential metrics: independent brute-force checks and the dev-file acceptance counts."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pytest

from fraudstream.models import metrics


def brute_auc(y: np.ndarray, s: np.ndarray) -> float:
    pos, neg = s[y == 1], s[y == 0]
    return sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))


def brute_ap(y: np.ndarray, s: np.ndarray) -> float:
    """Step-wise AP: for each distinct threshold t (high to low), precision and recall of s >= t."""
    total, prev_recall = 0.0, 0.0
    for t in sorted(set(s.tolist()), reverse=True):
        flagged = s >= t
        tp = int((flagged & (y == 1)).sum())
        recall = tp / int(y.sum())
        total += (recall - prev_recall) * tp / int(flagged.sum())
        prev_recall = recall
    return total


@pytest.mark.parametrize("seed", range(5))
def test_auc_and_ap_match_brute_force_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = (rng.random(120) < 0.2).astype(int)
    s = np.round(rng.random(120) + 0.3 * y, 1)  # rounding makes many ties
    assert metrics.roc_auc(y, s) == pytest.approx(brute_auc(y, s), abs=1e-12)
    assert metrics.average_precision(y, s) == pytest.approx(brute_ap(y, s), abs=1e-12)


def test_single_class_gives_nan() -> None:
    assert np.isnan(metrics.roc_auc(np.zeros(3), np.arange(3.0)))
    assert np.isnan(metrics.average_precision(np.zeros(3), np.arange(3.0)))


def test_card_precision_divides_by_k_and_removes_detected_cards() -> None:
    # day 0: card 1 fraud (top), card 2 genuine; day 1: card 1 again top but detected -> removed
    days = np.array([0, 0, 0, 1, 1, 1])
    cards = np.array([1, 1, 2, 1, 2, 3])
    y = np.array([1, 0, 0, 1, 0, 1])
    s = np.array([0.9, 0.1, 0.5, 0.99, 0.2, 0.3])
    cp, daily = metrics.card_precision_top_k(days, cards, y, s, k=3)
    # day 0: cards {1 (max .9, fraud), 2} -> 1/3 ; day 1 without card 1: {3 fraud, 2} -> 1/3
    assert daily == [pytest.approx(1 / 3), pytest.approx(1 / 3)]
    assert cp == pytest.approx(1 / 3)
    _, daily_k1 = metrics.card_precision_top_k(days, cards, y, s, k=1)
    assert daily_k1 == [1.0, 1.0]  # card 3 ranks first once card 1 is removed


def test_each_weeks_daily_card_precision_comes_with_its_days() -> None:
    """A day without transactions has no value (the handbook's mean is over days with some), so
    the values are not dated by their position in the week."""
    days = np.array([0, 0, 2, 2, 3])  # nothing on day 1
    m = metrics.prequential_metrics(days, np.array([1, 2, 1, 2, 3]), np.array([0, 1, 0, 0, 1]),
                                    np.array([0.1, 0.9, 0.5, 0.4, 0.8]), 0, 3, delay_days=0)
    (week,) = m.weeks
    assert week.days_with_transactions == [0, 2, 3] and len(week.daily_card_precision) == 3


def test_known_compromised_rule_boundaries() -> None:
    # week starts on day 20, delay 7, training block 7: known-fraud window for day D is [6, D - 8]
    start, delay = 20, 7
    customers = np.array(["early", "edge_lo", "edge_hi", "late", "early", "edge_lo", "edge_hi", "late", "edge_hi"])
    days = np.array([5, 6, 12, 13, 20, 20, 20, 20, 21])
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0])
    kept = metrics.known_compromised_kept(days, customers, labels, start, start + 6, delay)
    # day 20 knows frauds dated 6..12: edge_lo (6) and edge_hi (12) are out, early (5) and late (13) in;
    assert kept.tolist() == [False, False, False, False, True, False, False, True, False]


def test_weeks_are_cut_from_eval_start_and_averaged() -> None:
    rng = np.random.default_rng(3)
    days = np.repeat(np.arange(30), 50)
    customers = rng.integers(0, 200, days.size)
    labels = (rng.random(days.size) < 0.1).astype(int)
    scores = rng.random(days.size) + labels
    m = metrics.prequential_metrics(days, customers, labels, scores, eval_start=14, eval_end=29, delay_days=7, k=5)
    assert [(w.start, w.end) for w in m.weeks] == [(14, 20), (21, 27), (28, 29)]
    assert m.auc_roc == pytest.approx(np.mean([w.auc_roc for w in m.weeks]))
    assert m.n_transactions == int(m.kept.sum()) < 16 * 50


@pytest.mark.data
def test_dev_file_reproduces_handbook_test_sets(handbook_csv: Path) -> None:
    pd = pytest.importorskip("pandas")
    df = pd.read_csv(handbook_csv, usecols=["TX_DATETIME", "CUSTOMER_ID", "TX_FRAUD"])
    days = pd.to_datetime(df.TX_DATETIME).values.astype("datetime64[D]").astype(np.int64)
    scores = np.random.default_rng(0).random(len(df))
    m = metrics.prequential_metrics(days, df.CUSTOMER_ID.values, df.TX_FRAUD.values, scores,
                                    metrics.day_number(date(2018, 7, 4)), metrics.day_number(date(2018, 7, 31)), 7)
    assert [w.n_transactions for w in m.weeks] == [57182, 57800, 57931, 58505]
    assert [w.n_frauds for w in m.weeks] == [416, 411, 351, 374]
    assert 0.45 < m.auc_roc < 0.55  # random scores
