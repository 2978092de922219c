"""StackedTrees: the scores of scikit-learn's boosted trees, float for float, from arrays; and
`gbt_window` scoring small batches with them. No servers needed."""

from __future__ import annotations

import logging
import pickle

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from fraudstream.models.boosted import WindowedBoostedTrees
from fraudstream.models import stacked_trees
from fraudstream.models.stacked_trees import SMALL_BATCH, StackedTrees


def data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Interactions, and missing values in two columns (their splits send them both ways)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    y = (X[:, 0] * X[:, 1] > 0.3) | (X[:, 2] > 1.5)
    X[rng.random(n) < 0.15, 1] = np.nan
    X[y & (rng.random(n) < 0.5), 3] = np.nan  # missing mostly among the positives
    return X, y


@pytest.mark.parametrize("params", [
    {"max_depth": 4, "max_iter": 100},
    {"max_depth": None, "max_leaf_nodes": 8, "max_iter": 30},  # uneven trees: leaves at many depths
    {"max_depth": 2, "max_iter": 5, "learning_rate": 0.5},
])
def test_scores_are_scikit_learns_float_for_float(params: dict) -> None:
    X, y = data(6000, seed=1)
    trees = HistGradientBoostingClassifier(random_state=0, early_stopping=False, **params).fit(X, y)
    stacked = StackedTrees.of(trees, X)
    assert stacked is not None
    probe, _ = data(3000, seed=2)
    probe[::50] = np.nan  # whole rows missing
    probe[1::50, 4], probe[2::50, 0] = np.inf, -np.inf
    assert np.array_equal(stacked.proba(probe), trees.predict_proba(probe)[:, 1])
    depths = {int(d) for p in trees._predictors for d in p[0].nodes["depth"][p[0].nodes["is_leaf"] == 1]}
    assert stacked.depth == max(depths)
    if params.get("max_leaf_nodes"):
        assert len(depths) > 1  # the padding of leaves above the deepest was exercised
    real = np.isfinite(stacked.threshold)
    if params["max_iter"] > 5:  # splits that send missing values left and splits that send them right
        assert stacked.missing_left[real].any() and not stacked.missing_left[real].all()
    with pytest.raises(ValueError, match="5 features"):
        stacked.proba(probe[:, :4])


def test_trees_of_a_single_leaf() -> None:
    X, _ = data(500, seed=7)
    y = np.arange(500) % 2 == 0
    no_split = HistGradientBoostingClassifier(max_iter=3, min_samples_leaf=400, random_state=0).fit(X, y)
    stacked = StackedTrees.of(no_split, X)  # 500 rows cannot make two leaves of 400
    assert stacked is not None and stacked.depth == 0 and stacked.n_splits == 0
    assert np.array_equal(stacked.proba(X), no_split.predict_proba(X)[:, 1])


def test_declines_what_it_does_not_lay_out(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    X, y = data(2000, seed=3)
    categories = X.copy()
    categories[:, 0] = np.floor(np.abs(X[:, 0]) * 3) % 5  # a category 0..4
    with_categories = HistGradientBoostingClassifier(categorical_features=[0], max_iter=10, random_state=0)
    three_classes = HistGradientBoostingClassifier(max_iter=10, random_state=0)
    deep = HistGradientBoostingClassifier(max_iter=10, max_depth=4, random_state=0).fit(X, y)
    monkeypatch.setattr(stacked_trees, "MAX_DEPTH", 3)
    with caplog.at_level(logging.INFO):
        assert StackedTrees.of(with_categories.fit(categories, y), categories) is None
        assert StackedTrees.of(three_classes.fit(X, (X[:, 2] > 0).astype(int) + y), X) is None
        assert StackedTrees.of(deep, X) is None
    assert caplog.text.count("scikit-learn's predict_proba only") == 3
    assert "categorical" in caplog.text and "3 trees per round" in caplog.text and "4 deep" in caplog.text


def test_declines_when_its_scores_would_differ(monkeypatch: pytest.MonkeyPatch,
                                               caplog: pytest.LogCaptureFixture) -> None:
    X, y = data(2000, seed=4)
    trees = HistGradientBoostingClassifier(max_iter=10, max_depth=4, random_state=0).fit(X, y)
    assert StackedTrees.of(trees, X) is not None
    raw = StackedTrees.raw
    monkeypatch.setattr(StackedTrees, "raw", lambda self, X: raw(self, X) + 1e-12)  # internals read wrongly
    with caplog.at_level(logging.WARNING):
        assert StackedTrees.of(trees, X) is None
    assert "differ" in caplog.text


def test_gbt_window_scores_small_batches_from_the_stacked_trees() -> None:
    rng = np.random.default_rng(5)
    names = ("a", "b", "c")
    model = WindowedBoostedTrees(refit_every=1000, window=4000, rate=0.5, min_frauds=10, seed=6)
    for _ in range(1000):
        fraud = bool(rng.random() < 0.1)
        model.learn_one({"a": rng.normal(2.0 if fraud else 0.0), "b": rng.normal(), "c": float(rng.integers(3))}, fraud)
    assert model.n_fits > 0 and model._stacked is not None and model._stacked.trees is model._trees
    calls = []
    predict = model._trees.predict_proba
    model._trees.predict_proba = lambda X: (calls.append(len(X)), predict(X))[1]
    small, large = rng.normal(size=(SMALL_BATCH, 3)), rng.normal(size=(SMALL_BATCH + 1, 3))
    small[::9, 1] = np.nan
    by_arrays = model.proba_matrix(names, small)
    one = model.predict_proba_one(dict(zip(names, small[0].tolist())))[True]
    assert calls == []  # neither went to scikit-learn
    by_sklearn = model.proba_matrix(names, np.vstack([small, large]))
    assert calls == [2 * SMALL_BATCH + 1]
    assert np.array_equal(by_arrays, by_sklearn[:SMALL_BATCH]) and one == by_arrays[0]
    stacked, model._stacked = model._stacked, StackedTrees.of(HistGradientBoostingClassifier(max_iter=3).fit(
        small[:, :1], small[:, 0] > 0), small[:, :1])  # arrays of other trees (a refit half published)
    assert np.array_equal(model.proba_matrix(names, small), by_arrays) and calls[-1] == SMALL_BATCH
    model._stacked = None  # arrays declined
    assert np.array_equal(model.proba_matrix(names, small), by_arrays) and len(calls) == 3
    model._stacked = stacked
    del model._trees.predict_proba
    clone = pickle.loads(pickle.dumps(model))  # a checkpoint: the arrays are made again from its trees
    assert clone._stacked is not None and clone._stacked.trees is clone._trees
    assert np.array_equal(clone.proba_matrix(names, small), by_arrays)
