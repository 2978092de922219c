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


def test_card_precision_does_not_depend_on_how_cards_are_named() -> None:
    """Cards tied at the k-th place: the figure must not come from the order of their ids (the same
    scores once with numeric ids and once with their strings, which sort otherwise, gave 0.08 and
    0.0786 on a week of the dev file whose model scored every card alike for two days)."""
    rng = np.random.default_rng(3)
    days = np.repeat([0, 1], 400)
    cards = np.concatenate([rng.permutation(400), rng.permutation(400)]) + 5
    y = (rng.random(800) < 0.05).astype(int)
    s = np.where(days == 0, 0.25, np.round(rng.random(800), 1))  # day 0: one score; day 1: ten levels
    as_numbers = metrics.card_precision_top_k(days, cards, y, s, k=100)
    as_strings = metrics.card_precision_top_k(days, cards.astype(str), y, s, k=100)
    renamed = metrics.card_precision_top_k(days, 10_000 - cards, y, s, k=100)
    assert as_numbers == as_strings == renamed


def test_card_precision_counts_cards_tied_at_the_cut_by_their_expected_share() -> None:
    """The expected value over the orders of tied cards (as AUC counts a tie half): 6 fraud cards among
    300 scored alike fill 100 places with 2 frauds on average. None of them is surely among the k,
    so none is left out on later days."""
    days = np.repeat([0, 1], 300)
    cards = np.tile(np.arange(300), 2)
    y = np.tile((np.arange(300) % 50 == 0).astype(int), 2)
    s = np.concatenate([np.full(300, 0.3), np.where(np.arange(300) % 50 == 0, 0.9, 0.1)])
    cp, daily = metrics.card_precision_top_k(days, cards, y, s, k=100)
    assert daily == [pytest.approx(0.02), pytest.approx(0.06)]  # day 1: the six fraud cards on top
    s[:3] = 0.8  # day 0: cards 0 (fraud), 1, 2 above the rest; 97 places left for 297 cards with 5 frauds
    _, daily = metrics.card_precision_top_k(days, cards, y, s, k=100)
    assert daily == [pytest.approx((1 + 97 * 5 / 297) / 100), pytest.approx(0.05)]  # card 0 left out on day 1
    few = metrics.card_precision_top_k(days[:300], cards[:300], y[:300], np.full(300, 0.3), k=300)
    assert few[1] == [pytest.approx(6 / 300)]  # every card fits: no share to take


def test_a_nan_score_is_refused_not_ranked() -> None:
    """A NaN score has no rank: AUC took it for the highest score and average precision and card
    precision for the lowest, so the same scores gave figures that contradict each other (as
    scikit-learn, refuse it)."""
    y = np.array([0, 0, 0, 1, 1, 0])
    s = np.array([0.1, np.nan, 0.2, 0.9, 0.4, np.nan])
    for figure in (lambda: metrics.roc_auc(y, s), lambda: metrics.average_precision(y, s),
                   lambda: metrics.card_precision_top_k(np.zeros(6), np.arange(6), y, s, k=2),
                   lambda: metrics.performance(y, s, 0.5),
                   lambda: metrics.prequential_metrics(np.zeros(6), np.arange(6), y, s, 0, 0, 0)):
        with pytest.raises(ValueError, match="2 of 6 scores are NaN"):
            figure()
