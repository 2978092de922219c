"""All trees of a fitted scikit-learn ``HistGradientBoostingClassifier`` as arrays, to score small
batches in a few numpy operations instead of one call per tree.

scikit-learn's prediction calls into compiled code once per tree: ~6-11 µs each, so 100 trees cost
~0.65 ms however few rows there are (one row, or the 36 rows of one alert's explanation). Here each
tree is padded to a complete binary tree of the forest's depth (a leaf above that depth becomes a
chain of splits that always go left), and every row walks every tree at once, one level per step.
That costs ~25 ns per row and tree: faster than scikit-learn on one thread up to a few thousand
rows, beyond which the arrays outgrow the CPU's caches (`StackedTrees.scores_faster`). The walk
follows scikit-learn's own rules (``x <= threshold`` goes left; NaN goes where the split sends
missing values) and the leaves are added in its order, from the same baseline, so the scores are
the same floats. `StackedTrees.of` checks that on up to 512 of the rows it is given (spread over
them), on rows set exactly at split thresholds, and on rows of NaNs and infinities, and declines
(None) a model it cannot reproduce: categorical splits, several trees per round, or a scikit-learn
whose internals differ.

>>> import numpy as np
>>> from sklearn.ensemble import HistGradientBoostingClassifier
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(2000, 3)); X[::7, 1] = np.nan
>>> y = (X[:, 0] + np.nan_to_num(X[:, 1]) ** 2 > 1.0)
>>> trees = HistGradientBoostingClassifier(max_iter=20, max_depth=3, random_state=0).fit(X, y)
>>> stacked = StackedTrees.of(trees, X)
>>> bool((stacked.proba(X[:50]) == trees.predict_proba(X[:50])[:, 1]).all())
True
>>> stacked.scores_faster(50), stacked.scores_faster(5000)
(True, False)
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sklearn.ensemble import HistGradientBoostingClassifier

log = logging.getLogger(__name__)

MAX_DEPTH = 10  # deeper forests are left to scikit-learn (the padded trees grow as 2 ** depth)
SMALL_BATCH = 2000  # rows up to which the arrays scored faster than scikit-learn (benchmarks/tree_scoring.py)
CHECK_ROWS = 512  # of the rows given to `StackedTrees.of`


class Unsupported(ValueError):
    """A model whose trees the arrays do not lay out (scikit-learn scores it)."""


class StackedTrees:
    """The padded trees of one fitted model (`of` builds it); `trees` is that model."""

    def __init__(self, trees: HistGradientBoostingClassifier, feature: np.ndarray, threshold: np.ndarray,
                 missing_left: np.ndarray, leaf: np.ndarray, depth: int) -> None:
        self.trees = trees
        self.feature, self.threshold, self.missing_left, self.leaf = feature, threshold, missing_left, leaf
        self.depth = depth
        self.n_trees, self.n_splits = feature.shape
        self.n_features = int(trees.n_features_in_)
        self.baseline = float(np.asarray(trees._baseline_prediction).ravel()[0])

    @classmethod
    def of(cls, trees: HistGradientBoostingClassifier, check: np.ndarray) -> StackedTrees | None:
        """The arrays of `trees`, or None when they would not give scikit-learn's scores (see the
        module docstring) or cannot be made. Call it with scikit-learn held to one OpenMP thread
        where that matters: the check scores a few hundred rows with it."""
        try:
            stacked = cls._build(trees)
            rows = stacked._check_rows(np.asarray(check))
            same = bool(np.array_equal(stacked.proba(rows), trees.predict_proba(rows)[:, 1]))
        except Unsupported as exc:
            log.info("scoring with scikit-learn's predict_proba only: %s", exc)
            return None
        except Exception:  # only a faster path is lost: scikit-learn scores, as before
            log.warning("scoring with scikit-learn's predict_proba only: its trees could not be read", exc_info=True)
            return None
        if not same:
            log.warning("scoring with scikit-learn's predict_proba only: the stacked trees' scores differ from it")
            return None
        return stacked

    def _check_rows(self, given: np.ndarray) -> np.ndarray:
        """Up to `CHECK_ROWS` of the given rows, spread over them; per real split a row with its
        feature exactly at the threshold (``<=`` goes left); rows of NaN, +inf and -inf."""
        spread = np.asarray(given[::max(1, len(given) // CHECK_ROWS)][:CHECK_ROWS], dtype=np.float64)
        spread = spread.reshape(-1, self.n_features)
        base = spread[0] if len(spread) else np.zeros(self.n_features)
        real = np.flatnonzero(np.isfinite(self.threshold.ravel()))[:CHECK_ROWS]
        at_threshold = np.repeat(base[None, :], len(real), axis=0)
        at_threshold[np.arange(len(real)), self.feature.ravel()[real]] = self.threshold.ravel()[real]
        extremes = np.array([[np.nan], [np.inf], [-np.inf]]).repeat(self.n_features, axis=1)
        return np.vstack([spread, at_threshold, extremes])

    @classmethod
    def _build(cls, trees: HistGradientBoostingClassifier) -> StackedTrees:
        if trees.n_trees_per_iteration_ != 1:
            raise Unsupported(f"{trees.n_trees_per_iteration_} trees per round (several classes)")
        if getattr(trees, "_preprocessor", None) is not None:
            raise Unsupported("a preprocessor of its input (categorical features)")
        forest = [round_[0].nodes for round_ in trees._predictors]
        if any(nodes["is_categorical"].any() for nodes in forest):
            raise Unsupported("categorical splits")
        depth = max(int(nodes["depth"].max()) for nodes in forest)
        if depth > MAX_DEPTH:
            raise Unsupported(f"trees {depth} deep (the arrays go to {MAX_DEPTH})")
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

    @staticmethod
    def scores_faster(n_rows: int) -> bool:
        """Whether a batch of `n_rows` is scored faster here than by scikit-learn."""
        return n_rows <= SMALL_BATCH

    def raw(self, X: np.ndarray) -> np.ndarray:
        """The sum of the leaves each row reaches, added to the baseline in the trees' order."""
        X = np.ascontiguousarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"X has shape {X.shape}; the trees take {self.n_features} features per row")
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
