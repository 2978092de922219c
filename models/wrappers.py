"""River classifiers the zoo composes: negative undersampling, anomaly detectors as classifiers, averaging.

Each is a plain `river.base.Classifier`: `learn_one(x, y)` returns nothing, `predict_proba_one(x)`
returns ``{False: p0, True: p1}``. All randomness comes from a seed given at construction.

>>> from river import linear_model
>>> model = NegativeUndersampler(linear_model.LogisticRegression(), rate=0.5, seed=1)
>>> p = model.predict_proba_one({"a": 1.0})  # inner 0.5, odds halved by the correction
>>> round(p[True], 4)
0.3333
>>> model.learn_one({"a": 1.0}, True)
>>> model.n_positive, model.n_negative_seen, model.n_negative_learned
(1, 0, 0)
"""

from __future__ import annotations

import copy
import logging
import random
from collections.abc import Sequence

import numpy as np
from river import base

log = logging.getLogger(__name__)


def proba_true(proba: dict) -> float:
    """P(True) from a River probability dict, 0.0 when the model knows no class yet.

    >>> proba_true({}), proba_true({False: 1.0}), proba_true({False: 0.25, True: 0.75})
    (0.0, 0.0, 0.75)
    >>> proba_true({False: 2.0, True: 2.0})  # unnormalised votes
    0.5
    """
    p1 = float(proba.get(True, 0.0))
    p0 = float(proba.get(False, 0.0))
    total = p1 + p0
    if total != total:  # a NaN: 0.0, as min/max give it below, but said
        _warn_odd(proba, negative=False, nan=True)
        return 0.0
    if p1 < 0.0 or p0 < 0.0 or (total <= 0.0 and proba and True not in proba and False not in proba):
        _warn_odd(proba, negative=p1 < 0.0 or p0 < 0.0)
    if total <= 0.0:
        return 0.0
    return min(1.0, max(0.0, p1 / total))


#: The kinds of unusable probability dicts warned of already (once a process each: scores are hot).
ODD_PROBAS: set[str] = set()


def _warn_odd(proba: dict, negative: bool, nan: bool = False) -> None:
    """Warn, once a process, of a model's probability dict that no score can come from as meant (a
    model of your own's mistake: a NaN or a negative probability of True or False, or neither class)."""
    kind = "nan" if nan else "negative" if negative else "classes"
    if kind in ODD_PROBAS:
        return
    ODD_PROBAS.add(kind)
    if nan:
        log.warning("a model's predict_proba_one returned %r, a NaN probability: its scores are 0.0 (no alert) and "
                    "the figures count them as sure genuine", proba)
    elif negative:
        log.warning("a model's predict_proba_one returned %r, a negative probability: its scores are clipped to "
                    "[0, 1] and mean little", proba)
    else:
        log.warning("a model's predict_proba_one returned %r, without the classes True and False: its scores are 0.0 "
                    "(River classifiers learn y=True for a fraud and y=False otherwise)", proba)


def undersampling_corrected(q: np.ndarray, rate: float) -> np.ndarray:
    """`NegativeUndersampler`'s correction of P(fraud) `q` learned on `rate` of the negatives,
    elementwise, with the same operations (so the same floats as its `predict_proba_one`).

    >>> undersampling_corrected(np.array([0.5, 1.0]), 0.1).tolist()
    [0.09090909090909091, 1.0]
    """
    corrected = rate * q
    return np.where(q < 1.0, corrected / (corrected + 1.0 - q), 1.0)


class NegativeUndersampler(base.Classifier):
    """Learn from every fraud and a seeded random share `rate` of genuine transactions.

    Scores are corrected back to the original class balance: undersampling the negatives by `rate`
    multiplies the odds by 1/rate, so p = rate·q / (rate·q + 1 − q) for the inner model's q. The
    correction is monotone (rankings, hence AUC and average precision, are unchanged) and keeps the
    alert threshold meaningful.
    """

    def __init__(self, classifier: base.Classifier, rate: float = 0.1, seed: int = 42) -> None:
        if not 0.0 < rate <= 1.0:
            from fraudstream.errors import ModelError

            raise ModelError(f"undersampling rate must be in (0, 1], got {rate}")
        self.classifier = classifier
        self.rate = rate
        self.seed = seed
        self._rng = random.Random(seed)
        self.n_positive = 0
        self.n_negative_seen = 0
        self.n_negative_learned = 0

    @classmethod
    def _unit_test_params(cls):  # type: ignore[no-untyped-def]
        from river import linear_model

        yield {"classifier": linear_model.LogisticRegression()}

    def learn_one(self, x: dict, y: bool) -> None:  # type: ignore[override]
        if y:
            self.n_positive += 1
            self.classifier.learn_one(x, y)
            return
        self.n_negative_seen += 1
        if self._rng.random() < self.rate:
            self.n_negative_learned += 1
            self.classifier.learn_one(x, y)

    def predict_proba_one(self, x: dict) -> dict[bool, float]:  # type: ignore[override]
        proba = self.classifier.predict_proba_one(x)
        if not proba:
            return {False: 1.0, True: 0.0}
        q = proba_true(proba)
        p = self.rate * q / (self.rate * q + 1.0 - q) if q < 1.0 else 1.0
        return {False: 1.0 - p, True: p}


class AnomalyClassifier(base.Classifier):
    """An unsupervised anomaly detector used as a classifier: it learns the genuine transactions only
    (as their labels arrive) and its anomaly score, clipped to [0, 1], is P(fraud)."""

    def __init__(self, detector: base.Estimator, learn_frauds: bool = False) -> None:
        self.detector = detector
        self.learn_frauds = learn_frauds

    def learn_one(self, x: dict, y: bool) -> None:  # type: ignore[override]
        if self.learn_frauds or not y:
            self.detector.learn_one(x)  # type: ignore[attr-defined]

    def predict_proba_one(self, x: dict) -> dict[bool, float]:  # type: ignore[override]
        s = min(1.0, max(0.0, float(self.detector.score_one(x))))  # type: ignore[attr-defined]
        return {False: 1.0 - s, True: s}


class MeanProbaClassifier(base.Classifier):
    """Weighted mean of the members' P(fraud); every member learns every example."""

    def __init__(self, models: Sequence[base.Classifier], weights: Sequence[float] | None = None) -> None:
        self.models = list(models)
        self.weights = list(weights) if weights is not None else [1.0] * len(self.models)
        if len(self.weights) != len(self.models) or not self.models or min(self.weights) < 0 or sum(self.weights) <= 0:
            from fraudstream.errors import ModelError

            raise ModelError("MeanProbaClassifier needs one non-negative weight per model and a positive sum")

    def learn_one(self, x: dict, y: bool) -> None:  # type: ignore[override]
        for model in self.models:
            model.learn_one(x, y)

    def predict_proba_one(self, x: dict) -> dict[bool, float]:  # type: ignore[override]
        total = sum(self.weights)
        p = sum(w * proba_true(m.predict_proba_one(x)) for m, w in zip(self.models, self.weights)) / total
        return {False: 1.0 - p, True: p}


def fresh_copy(model: base.Estimator) -> base.Estimator:
    """A deep copy (for tests and for the backtest's --save-model snapshot)."""
    return copy.deepcopy(model)
