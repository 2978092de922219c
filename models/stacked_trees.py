"""All trees of a fitted scikit-learn ``HistGradientBoostingClassifier`` as arrays, to score small
batches in a few numpy operations instead of one call per tree.

scikit-learn's prediction calls into compiled code once per tree: ~11 µs each, so 100 trees cost
~1.1 ms however few rows there are (one row, or the 36 rows of one alert's explanation). Here each
tree is padded to a complete binary tree of the forest's depth (a leaf above that depth becomes a
chain of splits that always go left), and every row walks every tree at once, one level per step.
That costs ~25 ns per row and tree: faster than scikit-learn on one thread up to a few thousand
rows, beyond which the arrays outgrow the CPU's caches (`StackedTrees.fits`). The walk follows scikit-learn's own rules (``x <= threshold`` goes left; NaN
goes where the split sends missing values) and the leaves are added in its order, from the same
baseline, so the scores are the same floats; `StackedTrees.of` checks that on the rows it is given
and declines (None) a model it cannot reproduce: categorical splits, several trees per round, or a
scikit-learn whose internals differ.

>>> import numpy as np
>>> from sklearn.ensemble import HistGradientBoostingClassifier
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(2000, 3)); X[::7, 1] = np.nan
>>> y = (X[:, 0] + np.nan_to_num(X[:, 1]) ** 2 > 1.0)
>>> trees = HistGradientBoostingClassifier(max_iter=20, max_depth=3, random_state=0).fit(X, y)
>>> stacked = StackedTrees.of(trees, X)
>>> bool((stacked.proba(X[:50]) == trees.predict_proba(X[:50])[:, 1]).all()), stacked.fits(50), stacked.fits(5000)
(True, True, False)
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

MAX_DEPTH = 10  # deeper forests are left to scikit-learn (the padded trees grow as 2 ** depth)
SMALL_BATCH = 2000  # rows up to which the arrays scored faster than scikit-learn (benchmarks/tree_scoring.py)


class StackedTrees:
    """The padded trees of one fitted model (`of` builds it); `trees` is that model."""

    def __init__(self, trees: Any, feature: np.ndarray, threshold: np.ndarray, missing_left: np.ndarray,
                 leaf: np.ndarray, depth: int) -> None:
        self.trees = trees
        self.feature, self.threshold, self.missing_left, self.leaf = feature, threshold, missing_left, leaf
        self.depth = depth
        self.n_trees, self.n_splits = feature.shape
        self.baseline = float(np.asarray(trees._baseline_prediction).ravel()[0])

    @classmethod
    def of(cls, trees: Any, check: np.ndarray) -> StackedTrees | None:
        """The arrays of `trees`, or None when they would not give scikit-learn's scores on the
        rows of `check` (and on a row of NaNs): a model with categorical splits or several trees
        per round, or an unknown layout of scikit-learn's internals."""
        try:
            stacked = cls._build(trees)
            rows = np.vstack([np.asarray(check, dtype=np.float64)[:512], np.full((1, check.shape[1]), np.nan)])
            same = bool((stacked.proba(rows) == trees.predict_proba(rows)[:, 1]).all())
        except (AttributeError, KeyError, IndexError, TypeError, ValueError) as exc:
            log.warning("scoring with scikit-learn's predict_proba only: its trees could not be read (%s)", exc)
            return None
        if not same:
            log.warning("scoring with scikit-learn's predict_proba only: the stacked trees' scores differ from it")
            return None
        return stacked

    @classmethod
    def _build(cls, trees: Any) -> StackedTrees:
        if trees.n_trees_per_iteration_ != 1 or getattr(trees, "_preprocessor", None) is not None:
            raise ValueError("not one tree per round of numeric features")
        forest = [round_[0].nodes for round_ in trees._predictors]
        if any(nodes["is_categorical"].any() for nodes in forest):
            raise ValueError("categorical splits")
        depth = max(int(nodes["depth"].max()) for nodes in forest)
        if depth > MAX_DEPTH:
            raise ValueError(f"trees {depth} deep")
        n_splits = 2 ** depth - 1
        feature = np.zeros((len(forest), n_splits), dtype=np.intp)
        threshold = np.full((len(forest), n_splits), np.inf)  # padding: always left, NaN too
        missing_left = np.ones((len(forest), n_splits), dtype=bool)
        leaf = np.zeros((len(forest), n_splits + 1))
        for t, nodes in enumerate(forest):
            todo = [(0, 0, 0)]  # (node, position in the complete tree, its depth)
            while todo:
                node, pos, level = todo.pop()
                record = nodes[node]
                if record["is_leaf"]:
                    below = 2 ** (depth - level)  # the padded leaves under it all hold its value
                    first = (pos + 1) * below - 1 - n_splits
                    leaf[t, first:first + below] = record["value"]
                    continue
                feature[t, pos] = record["feature_idx"]
                threshold[t, pos] = record["num_threshold"]
                missing_left[t, pos] = bool(record["missing_go_to_left"])
                todo += [(int(record["left"]), 2 * pos + 1, level + 1), (int(record["right"]), 2 * pos + 2, level + 1)]
        return cls(trees, feature, threshold, missing_left, leaf, depth)

    def fits(self, n_rows: int) -> bool:
        """Whether a batch of `n_rows` is scored faster here than by scikit-learn."""
        return n_rows <= SMALL_BATCH

    def raw(self, X: np.ndarray) -> np.ndarray:
        """The sum of the leaves each row reaches, added to the baseline in the trees' order."""
        X = np.ascontiguousarray(X, dtype=np.float64)
        n = X.shape[0]
        values = X.ravel()
        row_start = (np.arange(n) * X.shape[1])[:, None]
        split_start = np.arange(self.n_trees) * self.n_splits
        feature, threshold, missing_left = self.feature.ravel(), self.threshold.ravel(), self.missing_left.ravel()
        nan = bool(np.isnan(values).any())
        pos = np.zeros((n, self.n_trees), dtype=np.intp)
        for _ in range(self.depth):
            split = split_start + pos
            x = values[row_start + feature[split]]
            left = x <= threshold[split]
            if nan:
                left |= np.isnan(x) & missing_left[split]
            pos = 2 * pos + 2 - left
        summed = np.empty((n, self.n_trees + 1))
        summed[:, 0] = self.baseline
        summed[:, 1:] = self.leaf.ravel()[np.arange(self.n_trees) * (self.n_splits + 1) + pos - self.n_splits]
        return np.cumsum(summed, axis=1)[:, -1]  # one addition after another, as scikit-learn adds them

    def proba(self, X: np.ndarray) -> np.ndarray:
        """P(class 1) per row, as ``trees.predict_proba(X)[:, 1]``."""
        return self.trees._loss.predict_proba(self.raw(X)[:, None])[:, 1]
