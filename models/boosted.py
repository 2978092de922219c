"""Gradient-boosted trees refit on a sliding window of recent labels, as a River classifier.

An online linear model adds up one term per feature; fraud patterns are interactions (an amount
that is large *for this customer*, a terminal that turned risky *recently*), which trees capture.
`WindowedBoostedTrees.learn_one` keeps the label (every fraud, a seeded share `rate` of genuine
ones), and after every `refit_every` labels it fits scikit-learn's ``HistGradientBoostingClassifier``
on the labels kept of the last `window` seen. Scores come from the last fit (corrected for the
undersampling, as `NegativeUndersampler` does), so they change only at a refit: a caller can score
all transactions between two refits in one call (`learns_before_change`, `proba_matrix`).

A batch of up to 2,000 rows (the consumer's batches, the 36 rows of one alert's explanation) is
scored from the same trees as arrays (`stacked_trees`): the same floats, ~0.1 ms for 30 rows
instead of ~0.65 ms, most of which scikit-learn spends calling into each of the 100 trees.

Trees need a few dozen frauds. Until a fit has `min_frauds` frauds to learn from, an online
`warmup_model` (the zoo gives `gam_under`) learns every label and gives the scores (0.0 without
one); a fit is tried every 100 labels, and once one succeeds the warm-up model is dropped and the
gaps between fits double up to `refit_every`.

A fit takes ~0.3-0.9 s (30,000 kept labels, one core: OpenMP is held to one thread, see `_fit`).
The backtest fits in line (deterministic);
the live consumer calls `fit_in_background()`, so that its scoring goes on with the previous trees
while the next ones are fitted in a thread, and publishes a checkpoint of it only between fits.
In the background the fits keep to a share of the time, `max_fit_share`: one at a time, and after
a fit that took d seconds the next one starts no sooner than d / max_fit_share seconds after that
one began (a refit due earlier is tried again 100 labels later). At the handbook's traffic a fit is
due about once a day (10,000 labels) and this never holds one back; a consumer catching up a
backlog learns thousands of labels a second, and without it fitted trees back to back on a core
that the broker and Redis share.

>>> import random
>>> rng = random.Random(0)
>>> model = WindowedBoostedTrees(refit_every=1000, window=5000, rate=0.5, min_frauds=10, seed=1)
>>> model.predict_proba_one({"TX_AMOUNT": 10.0})  # nothing fitted yet, no warm-up model
{False: 1.0, True: 0.0}
>>> for i in range(1500):
...     fraud = i % 10 == 0
...     model.learn_one({"TX_AMOUNT": rng.uniform(300, 900) if fraud else rng.uniform(1, 100)}, fraud)
>>> model.n_fits, model.learns_before_change()  # fitted after 100, 200, 400, 800 labels; next at 1,600
(4, 99)
>>> model.predict_proba_one({"TX_AMOUNT": 600.0})[True] > 0.5 > model.predict_proba_one({"TX_AMOUNT": 20.0})[True]
True
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from river import base
from threadpoolctl import ThreadpoolController

from fraudstream.errors import ModelError
from fraudstream.models.kept_labels import KeptLabels
from fraudstream.models.stacked_trees import StackedTrees
from fraudstream.models.wrappers import undersampling_corrected

if TYPE_CHECKING:
    from sklearn.ensemble import HistGradientBoostingClassifier

log = logging.getLogger(__name__)

FIRST_FIT_AT = 100  # labels; then the gap doubles up to refit_every
_clock = time.monotonic  # of background fits' share of the time (a test replaces it)
_threadpools: list[ThreadpoolController] = []  # made on first use (it inspects the loaded libraries, ~3 ms)


def _one_openmp_thread() -> Any:
    """A context limiting OpenMP (scikit-learn's trees) to one thread in this thread, for fits (see
    `_fit`) and scoring.

    Scoring uses one: a batch of a few dozen rows is ~100 short parallel loops, one per tree, after
    each of which OpenMP's idle threads spin, so with two threads a 30-row batch cost 8.2 ms of CPU
    instead of 1.6 ms (the other core's, which the broker and Redis need)."""
    if not _threadpools:
        _threadpools.append(ThreadpoolController())
    return _threadpools[0].limit(limits=1, user_api="openmp")


class WindowedBoostedTrees(base.Classifier):
    """Boosted trees (depth `max_depth`, `max_iter` rounds) refit every `refit_every` labels on the
    frauds and the `rate` share of genuine labels kept from the last `window` labels.

    Parameters
    ----------
    refit_every
        Labels between two fits once warmed up (10,000: about a day of the handbook's traffic).
    window
        Labels a fit looks back over (280,000: about four weeks of the handbook's traffic).
    rate
        Share of genuine labels kept (seeded); scores are corrected back to the true class balance.
    max_depth, max_iter, learning_rate
        Of the boosted trees.
    min_frauds
        A fit needs at least this many frauds among the kept labels.
    warmup_model
        An online classifier that learns every label and scores until the first fit.
    seed
        Seeds the genuine-label sampling and the trees.
    max_fit_share
        Fits in the background (`fit_in_background`) take at most this share of the time (see the
        module docstring); fits in line keep to the label schedule alone.
    """

    def __init__(self, refit_every: int = 10_000, window: int = 280_000, rate: float = 0.1, max_depth: int = 4,
                 max_iter: int = 100, learning_rate: float = 0.1, min_frauds: int = 50,
                 warmup_model: base.Classifier | None = None, seed: int = 42, max_fit_share: float = 0.1) -> None:
        if (not 0.0 < rate <= 1.0 or refit_every < 1 or window < refit_every or min_frauds < 1
                or not 0.0 < max_fit_share <= 1.0):
            raise ModelError(f"need 0 < rate <= 1, refit_every >= 1, window >= refit_every, min_frauds >= 1 and "
                             f"0 < max_fit_share <= 1 (got {rate}, {refit_every}, {window}, {min_frauds}, "
                             f"{max_fit_share})")
        self.refit_every = refit_every
        self.window = window
        self.rate = rate
        self.max_depth = max_depth
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.min_frauds = min_frauds
        self.max_fit_share = max_fit_share
        self.warmup_model = warmup_model
        self.seed = seed
        self._warmup = None if warmup_model is None else warmup_model.clone()  # the parameter stays a blueprint
        self._rng = random.Random(seed)
        self._names: tuple[str, ...] | None = None
        self._kept = KeptLabels()
        self._trees: HistGradientBoostingClassifier | None = None
        self._stacked: StackedTrees | None = None  # the same trees as arrays, for small batches
        self._fitting: threading.Thread | None = None
        self._background = False
        self._fit_not_before = 0.0  # `_clock` time before which no background fit starts
        self._typical: dict[str, float] = {}
        self.n_seen = 0
        self.n_fits = 0
        self._try_again_soon()  # sets _next_fit: the first fit is tried after 100 labels

    @classmethod
    def _unit_test_params(cls):  # type: ignore[no-untyped-def]
        yield {"refit_every": 100, "window": 1000}

    # -- learning ----------------------------------------------------------------------------------
    def learn_one(self, x: dict, y: bool) -> None:  # type: ignore[override]
        warmup = self._warmup
        if warmup is not None:
            warmup.learn_one(x, y)
        self.n_seen += 1
        if y or self._rng.random() < self.rate:
            if self._names is None:
                self._names = tuple(x)
            self._kept.add(self.n_seen, self._row(x), bool(y))
        if self.n_seen >= self._next_fit:
            self._refit()

    def learns_before_change(self) -> int:
        """How many more `learn_one` calls leave the scores as they are (the next one refits; while
        the warm-up model scores, or with fits in the background, each one may change them)."""
        return 0 if self._warmup is not None or self._background else self._next_fit - self.n_seen - 1

    @property
    def fitting(self) -> bool:
        """A background fit is running (pickling waits for it)."""
        return self._fitting is not None and self._fitting.is_alive()

    @property
    def fit_generation(self) -> int | None:
        """Changes exactly when the scores can: the number of fits once the trees score, None while
        the warm-up model (which every label changes) scores. The live learner publishes this model
        when it changed, not after every so many labels (a checkpoint holds the kept labels, MBs)."""
        return None if self._warmup is not None else self.n_fits

    @property
    def warming_up(self) -> base.Classifier | None:
        """The warm-up model while it gives the scores, else None."""
        return self._warmup

    def _row(self, x: Mapping[str, float]) -> np.ndarray:
        names = self._names or ()
        return np.fromiter((x.get(n, math.nan) for n in names), dtype=np.float32, count=len(names))

    def fit_in_background(self, enabled: bool = True) -> None:
        """Fit in a thread from now on (the live consumer); scores change when a fit completes."""
        self._background = enabled

    def _refit(self) -> None:
        self._next_fit = self.n_seen + min(self.refit_every, self.n_seen)  # gaps double up to refit_every
        self._kept.drop_up_to(self.n_seen - self.window)
        if self._background and (self.fitting or _clock() < self._fit_not_before):  # or the last one's time is not over
            self._try_again_soon()  # with these labels and the next ones
            log.debug("a refit is due at %d labels before the last one's share of the time is over: trying again "
                      "in %d labels", self.n_seen, FIRST_FIT_AT)
            return
        if self._kept.frauds < self.min_frauds or self._kept.frauds == len(self._kept):
            if self._trees is None:  # not enough frauds yet
                self._try_again_soon()
            return
        X, y = self._kept.matrix()
        if self._background:
            self._fit_not_before = math.inf  # until this fit is done (`_fit_logged`)
            self._fitting = threading.Thread(target=self._fit_logged, args=(X, y), name="gbt-refit", daemon=True)
            try:
                self._fitting.start()
            except BaseException:
                self._fitting, self._fit_not_before = None, 0.0
                raise
        else:
            self._fit(X, y)

    def _try_again_soon(self) -> None:
        self._next_fit = self.n_seen + min(FIRST_FIT_AT, self.refit_every)

    def _fit_logged(self, X: np.ndarray, y: np.ndarray) -> None:
        # A process's first fit imports scikit-learn (~1 s): not part of the fit's share of the time
        # (it would hold the next fit back ~10 s).
        import sklearn.ensemble  # noqa: F401

        started = _clock()
        try:
            self._fit(X, y)
        except Exception:  # a thread's exception would go to threading.excepthook only; the old trees stay
            log.exception("background refit on %d labels failed; scoring goes on with the previous trees", len(y))
        finally:
            self._fit_not_before = started + (_clock() - started) / self.max_fit_share

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        """Fit the trees with one OpenMP thread: wherever this runs the other core is busy (the
        backtest's feature worker; the live consumer's scoring, broker and Redis), and OpenMP's
        threads spin while they wait for each other. In a backtest of the dev file's first 400,000
        rows, two threads took 52 / 45 s and one 32 / 35 s (alternating runs, 2026-12-03)."""
        from sklearn.ensemble import HistGradientBoostingClassifier  # ~1 s to import: only when a model fits

        started = time.perf_counter()
        trees = HistGradientBoostingClassifier(max_iter=self.max_iter, max_depth=self.max_depth,
                                               learning_rate=self.learning_rate, early_stopping=False,
                                               random_state=self.seed)
        with _one_openmp_thread():
            trees.fit(X, y)
            stacked = StackedTrees.of(trees, X)
        typical = dict(zip(self._names or (), np.nanmedian(X[~y], axis=0).astype(float).tolist()))
        self._trees, self._stacked, self._typical, self.n_fits = trees, stacked, typical, self.n_fits + 1
        self._warmup = None  # the trees score from now on
        log.debug("refit on %d labels (%d frauds) in %.2f s", len(y), int(y.sum()), time.perf_counter() - started)

    def wait_for_fit(self, timeout: float | None = None) -> None:
        """Wait until a background fit in progress is done."""
        if self._fitting is not None:
            self._fitting.join(timeout)

    # -- scoring -----------------------------------------------------------------------------------
    def predict_proba_one(self, x: dict) -> dict[bool, float]:  # type: ignore[override]
        warmup = self._warmup
        if warmup is not None:
            return warmup.predict_proba_one(x)
        trees = self._trees
        if trees is None:
            return {False: 1.0, True: 0.0}
        q = self._tree_proba(trees, self._row(x).astype(np.float64)[None, :])
        p = float(undersampling_corrected(q, self.rate)[0])
        return {False: 1.0 - p, True: p}

    def proba_matrix(self, names: Sequence[str], matrix: np.ndarray) -> np.ndarray:
        """The trees' P(fraud) of every row of `matrix` (columns named `names`), equal to
        `predict_proba_one` row by row once the trees score (see `warming_up`)."""
        trees = self._trees
        if trees is None:
            return np.zeros(matrix.shape[0], dtype=np.float64)
        own = self._names or ()
        if tuple(names) != own:
            where = {n: j for j, n in enumerate(names)}
            cols = [matrix[:, where[n]] if n in where else np.full(matrix.shape[0], math.nan) for n in own]
            matrix = np.column_stack(cols) if cols else np.empty((matrix.shape[0], 0))
        q = self._tree_proba(trees, matrix.astype(np.float32).astype(np.float64))  # float32 as one row at a time
        return undersampling_corrected(q, self.rate)

    def _tree_proba(self, trees: HistGradientBoostingClassifier, X: np.ndarray) -> np.ndarray:
        """``trees.predict_proba(X)[:, 1]``; a small batch from the stacked trees (the same floats)."""
        stacked = self._stacked
        if stacked is not None and stacked.trees is trees and stacked.scores_faster(len(X)):
            return stacked.proba(X)
        with _one_openmp_thread():
            return trees.predict_proba(X)[:, 1]

    def typical_values(self) -> dict[str, float]:
        """Median of each feature over the genuine labels of the last fit (for explanations)."""
        return dict(self._typical)

    # -- pickling: the kept labels as one compressed float32 matrix; a fit in progress is waited for --
    def __getstate__(self) -> dict[str, Any]:
        self.wait_for_fit()  # a checkpoint holds every fit its labels started
        state = self.__dict__.copy()
        state["_fitting"], state["_background"], state["_fit_not_before"] = None, False, 0.0
        state["_stacked"] = None  # made again from the trees when loaded
        state["_kept_packed"] = state.pop("_kept").packed(len(self._names or ()))  # the form of every version
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        kept = KeptLabels.unpacked(state.pop("_kept_packed"), len(state["_names"] or ()))
        state["_kept"] = kept
        state.pop("_kept_frauds", None)  # written by versions before `KeptLabels` (it counts them itself)
        state.setdefault("max_fit_share", 0.1)  # checkpoints written before fits kept to a share of the time
        state.setdefault("_fit_not_before", 0.0)
        trees = state["_trees"]
        with _one_openmp_thread():
            state["_stacked"] = None if trees is None else StackedTrees.of(trees, kept.matrix()[0])
        self.__dict__.update(state)
