"""Estimator contracts of every zoo model on a small synthetic stream (no servers needed)."""

from __future__ import annotations

import pickle
import random

import numpy as np
import pytest

from fraudstream.errors import ModelError
from fraudstream.models import zoo
from fraudstream.models.batch_scoring import _bin_weights, score_matrix
from fraudstream.models.events import Reason

FEATURES = ("TX_AMOUNT", "TERMINAL_ID_RISK_7DAY_WINDOW", "CUSTOMER_ID_NB_TX_1DAY_WINDOW", "noise")


def synthetic(n: int, seed: int, fraud_share: float = 0.2) -> list[tuple[dict[str, float], bool]]:
    """Frauds have large amounts and risky terminals; genuine ones small amounts, safe terminals."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        fraud = rng.random() < fraud_share
        x = {
            "TX_AMOUNT": rng.gauss(200.0, 30.0) if fraud else rng.gauss(50.0, 20.0),
            "TERMINAL_ID_RISK_7DAY_WINDOW": rng.uniform(0.5, 1.0) if fraud else rng.uniform(0.0, 0.3),
            "CUSTOMER_ID_NB_TX_1DAY_WINDOW": float(rng.randint(1, 6)),
            "noise": rng.random(),
        }
        out.append((x, fraud))
    return out


def auc(labels: list[bool], scores: list[float]) -> float:
    """Rank AUC (ties counted half), independent of the code under test."""
    y = np.array(labels, dtype=bool)
    s = np.array(scores)
    pos, neg = s[y], s[~y]
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


TRAIN = synthetic(1500, seed=1)
TEST = synthetic(400, seed=2)


@pytest.mark.parametrize("name", zoo.MODEL_NAMES)
def test_untrained_and_single_class_scores_are_probabilities(name: str) -> None:
    model = zoo.make_model(name, seed=3)
    x = TEST[0][0]
    assert 0.0 <= zoo.score_one(model, x) <= 1.0
    for x, _ in TRAIN[:50]:
        assert model.learn_one(x, False) is None  # River contract: learn_one returns nothing
    s = zoo.score_one(model, TEST[1][0])
    assert isinstance(s, float) and 0.0 <= s <= 1.0


@pytest.mark.parametrize("name", zoo.MODEL_NAMES)
def test_learns_separable_pattern_deterministically(name: str) -> None:
    runs = []
    for _ in range(2):
        model = zoo.make_model(name, seed=7)
        for x, y in TRAIN:
            model.learn_one(x, y)
        runs.append([zoo.score_one(model, x) for x, _ in TEST])
    assert runs[0] == runs[1], "same name and seed must give the same scores"
    assert all(0.0 <= s <= 1.0 for s in runs[0])
    assert auc([y for _, y in TEST], runs[0]) > 0.9


@pytest.mark.parametrize("name", zoo.MODEL_NAMES)
def test_explain_names_real_features_and_model_pickles(name: str) -> None:
    model = zoo.make_model(name, seed=5)
    for x, y in TRAIN[:600]:
        model.learn_one(x, y)
    fraud_x = next(x for x, y in TEST if y)
    reasons = zoo.explain(model, fraud_x, top=2)
    assert len(reasons) == 2 and all(isinstance(r, Reason) for r in reasons)
    assert {r.feature for r in reasons} <= set(FEATURES)
    assert reasons[0].contribution >= reasons[1].contribution
    assert reasons[0].value == fraud_x[reasons[0].feature]
    clone = pickle.loads(pickle.dumps(model))
    assert zoo.score_one(clone, fraud_x) == zoo.score_one(model, fraud_x)


def test_linear_explanation_points_at_the_signal() -> None:
    model = zoo.make_model("logreg")
    for x, y in TRAIN:
        model.learn_one(x, y)
    fraud_x = next(x for x, y in TEST if y)
    top = {r.feature for r in zoo.explain(model, fraud_x, top=2)}
    assert top == {"TX_AMOUNT", "TERMINAL_ID_RISK_7DAY_WINDOW"}


def test_undersampler_learns_every_fraud_and_a_share_of_genuine() -> None:
    model = zoo.make_model("logreg_under", seed=11)
    for x, y in TRAIN:
        model.learn_one(x, y)
    n_frauds = sum(y for _, y in TRAIN)
    assert model.n_positive == n_frauds
    assert model.n_negative_seen == len(TRAIN) - n_frauds
    share = model.n_negative_learned / model.n_negative_seen
    assert 0.05 < share < 0.15


def test_unknown_model_name() -> None:
    with pytest.raises(ModelError, match="unknown model 'nope'"):
        zoo.make_model("nope")


def feature_rows(n: int, seed: int) -> list[dict[str, float]]:
    """Every engine feature, with the values that sit on bin edges: whole counts, 2^k - 1, 0, shares
    in tenths, negative z-scores, large amounts."""
    from fraudstream.stream.schema import FEATURE_NAMES

    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        x = {}
        for name in FEATURE_NAMES:
            if name.startswith(("TX_DURING", "has_", "customer_first_use", "terminal_last_is")):
                x[name] = float(rng.randint(0, 1))
            elif "_RISK_" in name:
                x[name] = rng.choice([0.0, 0.1, 0.3, 0.7, 1.0, rng.random()])
            elif "_NB_" in name or "_nb_" in name:
                x[name] = float(rng.randint(0, 40))
            else:
                x[name] = rng.choice([round(rng.expovariate(0.02), 2), float(2 ** rng.randint(0, 12) - 1),
                                      -round(rng.expovariate(0.5), 3), 0.0, float(rng.randint(0, 64))])
        rows.append(x)
    return rows


@pytest.mark.parametrize("name", zoo.MODEL_NAMES)
def test_batch_scores_equal_one_at_a_time_scores(name: str) -> None:
    """The live consumer scores batches (`score_many`), the backtest one transaction at a time:
    the two must agree float for float, untrained and trained."""
    model = zoo.make_model(name, seed=5)
    rows = feature_rows(300, seed=6)
    assert zoo.score_many(model, rows) == [zoo.score_one(model, x) for x in rows]
    rng = random.Random(7)
    for x in feature_rows(1500, seed=8):  # frauds: mostly the large amounts
        model.learn_one(x, (x["TX_AMOUNT"] > 60.0) != (rng.random() < 0.05))
    scores = zoo.score_many(model, rows)
    assert scores == [zoo.score_one(model, x) for x in rows]
    assert len(set(scores)) > 1  # trained: not a constant
    # the live consumer's path: the rows as one matrix, in batches above and below MIN_VECTOR_ROWS
    names = list(rows[0])
    matrix = np.array([list(x.values()) for x in rows])
    assert score_matrix(model, names, matrix) == scores
    assert score_matrix(model, names, matrix[:5]) == scores[:5]
    # rows with another key order (not the engine's) take the row-by-row path and still agree
    shuffled = [dict(reversed(list(x.items()))) for x in rows[:20]] + rows[:20]
    assert zoo.score_many(model, shuffled) == [zoo.score_one(model, x) for x in shuffled]


@pytest.mark.parametrize("index", [[3, -2, 7, 3, 0], [0, 5000, -40, 5000, 12]])
def test_bin_weights_by_table_and_by_sorting(index: list[int]) -> None:
    """Bins of a short range are looked up in a table, of a long one by sorting: the same weights."""
    weights = {"TX_AMOUNT#3": 0.5, "TX_AMOUNT#-2": -1.25, "TX_AMOUNT#5000": 2.0, "other#7": 9.0}
    got = _bin_weights(weights, "TX_AMOUNT", np.array(index, dtype=np.int64)).tolist()
    assert got == [weights.get(f"TX_AMOUNT#{b}", 0.0) for b in index]
