"""WindowedBoostedTrees (`gbt_window`): refit schedule, sliding window, undersampling correction,
batch scores equal to one-at-a-time scores, pickling. No servers needed."""

from __future__ import annotations

import pickle
import random
import threading

import numpy as np
import pytest

from fraudstream.errors import ModelError
from fraudstream.models import boosted, zoo
from fraudstream.models.boosted import WindowedBoostedTrees


def stream(n: int, seed: int, fraud_share: float = 0.1) -> list[tuple[dict[str, float], bool]]:
    """Frauds: large amounts at night, or any amount at a risky terminal (an interaction)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        fraud = rng.random() < fraud_share
        night = float(rng.random() < 0.3)
        risky = rng.random() < (0.8 if fraud else 0.05)
        amount = rng.uniform(150, 600) if fraud and not risky else rng.uniform(1, 120)
        out.append(({"TX_AMOUNT": amount, "TX_DURING_NIGHT": night, "TERMINAL_ID_RISK_7DAY_WINDOW": float(risky)},
                    fraud))
    return out


def test_refits_on_a_doubling_then_fixed_schedule() -> None:
    model = WindowedBoostedTrees(refit_every=2000, window=4000, seed=1)
    fits_at = []
    for i, (x, y) in enumerate(stream(9000, seed=2), start=1):
        before = model.n_fits
        stable = model.learns_before_change()
        model.learn_one(x, y)
        if model.n_fits != before:
            fits_at.append(i)
            assert stable == 0  # it said this label would change the scores
    # tried every 100 labels until 50 frauds are kept (~10 % of labels), then gaps double up to 2,000
    assert fits_at == [600, 1200, 2400, 4400, 6400, 8400]


def test_scores_do_not_change_between_refits() -> None:
    model = WindowedBoostedTrees(refit_every=1000, window=3000, min_frauds=10, seed=3)
    data = stream(3599, seed=4)
    probe = [x for x, _ in stream(50, seed=5)]
    for x, y in data[:2600]:  # fits at 100, 200, 400, 800, 1,600 and 2,600 labels
        model.learn_one(x, y)
    fitted = zoo.score_many(model, probe)
    assert model.learns_before_change() == 999
    for x, y in data[2600:]:  # 999 more labels: the next fit is at 3,600
        model.learn_one(x, y)
    assert zoo.score_many(model, probe) == fitted


def test_keeps_every_fraud_a_share_of_genuine_and_only_the_window() -> None:
    model = WindowedBoostedTrees(refit_every=1000, window=3000, rate=0.2, min_frauds=10, seed=6)
    data = stream(10_000, seed=7)
    for x, y in data:
        model.learn_one(x, y)
    kept = list(model._kept.rows)
    assert model.n_seen == 10_000
    # the last fit was at label 9,600: it dropped labels up to 6,600 (those after it are kept too)
    assert min(k[0] for k in kept) > 6600
    frauds_in_window = sum(y for x, y in data[6600:])
    assert sum(k[2] for k in kept) == frauds_in_window == model._kept.frauds
    genuine_in_window = 3400 - frauds_in_window
    share = sum(not k[2] for k in kept) / genuine_in_window
    assert 0.15 < share < 0.25


def test_learns_an_interaction_and_corrects_for_undersampling() -> None:
    model = WindowedBoostedTrees(refit_every=2000, window=8000, rate=0.1, seed=8)
    data = stream(8000, seed=9)
    for x, y in data:
        model.learn_one(x, y)
    test = stream(3000, seed=10)
    scores = np.array(zoo.score_many(model, [x for x, _ in test]))
    y = np.array([f for _, f in test])
    pos, neg = scores[y], scores[~y]
    assert (pos[:, None] > neg[None, :]).mean() > 0.9  # AUC
    # corrected scores estimate the true fraud rate (10 %), not the undersampled one (~50 %)
    assert 0.05 < scores.mean() < 0.2
    big_night = {"TX_AMOUNT": 400.0, "TX_DURING_NIGHT": 1.0, "TERMINAL_ID_RISK_7DAY_WINDOW": 0.0}
    small_safe = {"TX_AMOUNT": 30.0, "TX_DURING_NIGHT": 0.0, "TERMINAL_ID_RISK_7DAY_WINDOW": 0.0}
    assert zoo.score_one(model, big_night) > 0.5 > zoo.score_one(model, small_safe)


def test_no_fit_without_enough_frauds() -> None:
    model = WindowedBoostedTrees(refit_every=500, window=1000, min_frauds=10, seed=11)
    for x, _ in stream(1200, seed=12):
        model.learn_one(x, False)
    assert model.n_fits == 0
    assert zoo.score_one(model, {"TX_AMOUNT": 900.0}) == 0.0


def test_matrix_scores_equal_row_scores_in_any_column_order() -> None:
    model = WindowedBoostedTrees(refit_every=1000, window=4000, seed=13)
    for x, y in stream(3000, seed=14):
        model.learn_one(x, y)
    rows = [x for x, _ in stream(300, seed=15)]
    one_by_one = [zoo.score_one(model, x) for x in rows]
    names = ("TERMINAL_ID_RISK_7DAY_WINDOW", "extra", "TX_AMOUNT", "TX_DURING_NIGHT")
    matrix = np.array([[x[n] if n in x else 7.0 for n in names] for x in rows])
    assert model.proba_matrix(names, matrix).tolist() == one_by_one
    assert len(set(one_by_one)) > 10


def test_pickle_keeps_the_window_and_the_scores() -> None:
    model = WindowedBoostedTrees(refit_every=1000, window=4000, min_frauds=10, seed=16)
    data = stream(3500, seed=17)
    for x, y in data[:3000]:
        model.learn_one(x, y)
    clone = pickle.loads(pickle.dumps(model))
    assert clone._kept.frauds == model._kept.frauds == sum(k[2] for k in model._kept.rows) > 0
    probe = [x for x, _ in stream(100, seed=18)]
    assert zoo.score_many(clone, probe) == zoo.score_many(model, probe)
    for x, y in data[3000:]:  # the same labels into both: the same refit at 3,600
        model.learn_one(x, y)
        clone.learn_one(x, y)
    for x, y in stream(600, seed=19):
        model.learn_one(x, y)
        clone.learn_one(x, y)
    assert model.n_fits == clone.n_fits
    assert zoo.score_many(clone, probe) == zoo.score_many(model, probe)


def test_rejects_bad_parameters() -> None:
    with pytest.raises(ModelError):
        WindowedBoostedTrees(rate=0.0)
    with pytest.raises(ModelError):
        WindowedBoostedTrees(refit_every=1000, window=10)
    with pytest.raises(ModelError):
        WindowedBoostedTrees(min_frauds=0)
    with pytest.raises(ModelError):
        WindowedBoostedTrees(max_fit_share=0.0)


def test_background_fits_give_the_scores_of_inline_fits() -> None:
    """The live consumer fits in a thread; once a fit is done, the scores are those of a fit in line,
    and a pickle (a checkpoint) taken while it runs waits for it."""
    inline = WindowedBoostedTrees(refit_every=1000, window=4000, min_frauds=10, seed=20)
    live = WindowedBoostedTrees(refit_every=1000, window=4000, min_frauds=10, max_fit_share=1.0, seed=20)
    live.fit_in_background()
    assert live.learns_before_change() == 0  # fits land whenever they are done
    probe = [x for x, _ in stream(100, seed=21)]
    for x, y in stream(1700, seed=22):  # fits at 100, 200, 400, 800 and 1,600 labels
        inline.learn_one(x, y)
        live.learn_one(x, y)
        live.wait_for_fit()  # one at a time here, so that none is tried again later
    assert live.n_fits == inline.n_fits == 5
    assert zoo.score_many(live, probe) == zoo.score_many(inline, probe)
    gate = threading.Event()
    fit = live._fit
    live._fit = lambda X, y: (gate.wait(10), fit(X, y))  # type: ignore[method-assign]
    for x, y in stream(1000, seed=23):  # the fit at 2,600 labels starts in a thread and waits at the gate
        inline.learn_one(x, y)
        live.learn_one(x, y)
    assert live.fitting and live.n_fits == 5
    del live._fit  # the running thread holds the gated one
    threading.Timer(0.3, gate.set).start()
    clone = pickle.loads(pickle.dumps(live))  # waits for the fit
    assert clone.n_fits == inline.n_fits == 6
    assert zoo.score_many(clone, probe) == zoo.score_many(inline, probe)


def test_a_refit_due_during_a_background_fit_is_tried_again_soon() -> None:
    model = WindowedBoostedTrees(refit_every=300, window=4000, min_frauds=10, max_fit_share=1.0, seed=27)
    model.fit_in_background()
    data = stream(1400, seed=28)
    for x, y in data[:700]:  # fits at 100, 200, 400 and 700 labels
        model.learn_one(x, y)
        model.wait_for_fit()
    gate = threading.Event()
    fit = model._fit
    model._fit = lambda X, y: (gate.wait(10), fit(X, y))  # type: ignore[method-assign]
    for x, y in data[700:1000]:  # the fit at 1,000 labels waits at the gate
        model.learn_one(x, y)
    del model._fit
    assert model.fitting and model._next_fit == 1300
    for x, y in data[1000:1300]:  # due at 1,300 while it still runs: tried again 100 labels later
        model.learn_one(x, y)
    assert model._next_fit == 1400 and model.n_fits == 4
    gate.set()
    model.wait_for_fit()
    for x, y in data[1300:1400]:  # the fit at 1,400 labels
        model.learn_one(x, y)
    model.wait_for_fit()
    assert model.n_fits == 6 and model._next_fit == 1700


def test_background_fits_keep_to_their_share_of_the_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fit that took d seconds is followed by the next no sooner than d / max_fit_share seconds
    after it began; one due earlier is tried again 100 labels later. Fits in line keep to the label
    schedule alone."""
    now = [100.0]
    monkeypatch.setattr(boosted, "_clock", lambda: now[0])
    model = WindowedBoostedTrees(refit_every=300, window=4000, min_frauds=5, max_fit_share=0.25, seed=29)
    model.fit_in_background()
    fit = model._fit
    model._fit = lambda X, y: (now.__setitem__(0, now[0] + 2.0), fit(X, y))  # type: ignore[method-assign]
    data = stream(700, seed=30)
    for x, y in data[:100]:  # the fit at 100 labels begins at 100.0 and takes 2 s: the next not before 108.0
        model.learn_one(x, y)
    model.wait_for_fit()
    assert model.n_fits == 1 and now[0] == 102.0
    now[0] = 107.9
    for x, y in data[100:200]:  # due at 200 labels, 0.1 s too early: tried again at 300
        model.learn_one(x, y)
    model.wait_for_fit()
    assert model.n_fits == 1 and model._next_fit == 300
    now[0] = 108.0
    for x, y in data[200:300]:  # the fit at 300 labels; the next one is due at 600, not before 116.0
        model.learn_one(x, y)
    model.wait_for_fit()
    assert model.n_fits == 2 and model._next_fit == 600
    for x, y in data[300:600]:
        model.learn_one(x, y)
    assert model.n_fits == 2 and model._next_fit == 700
    now[0] = 116.0
    for x, y in data[600:700]:
        model.learn_one(x, y)
    model.wait_for_fit()
    assert model.n_fits == 3
    del model._fit
    clone = pickle.loads(pickle.dumps(model))  # a checkpoint: the budget's clock is this process's only
    assert clone.max_fit_share == 0.25 and clone._fit_not_before == 0.0
    state = model.__getstate__()
    del state["max_fit_share"], state["_fit_not_before"]  # as checkpoints written before this are
    state["_kept_frauds"] = 3  # as those written before `KeptLabels` (an attribute of its own, then)
    older = WindowedBoostedTrees.__new__(WindowedBoostedTrees)
    older.__setstate__(state)
    assert older.max_fit_share == 0.1 and older._fit_not_before == 0.0
    assert not hasattr(older, "_kept_frauds") and older._kept.frauds == model._kept.frauds > 3
    inline = WindowedBoostedTrees(refit_every=300, window=4000, min_frauds=5, max_fit_share=0.25, seed=29)
    for x, y in data[:400]:  # in line: fits at 100, 200 and 400 labels, whatever the clock says
        inline.learn_one(x, y)
    assert inline.n_fits == 3


def test_warm_up_model_scores_until_the_first_fit() -> None:
    """`gbt_window` scores as `gam_under` (which it learns every label into) until its trees have 50
    frauds to learn from; then the trees score and the warm-up model is dropped."""
    trees, gam = zoo.make_model("gbt_window", seed=24), zoo.make_model("gam_under", seed=24)
    probe = [x for x, _ in stream(100, seed=25)]
    data = stream(3000, seed=26, fraud_share=0.02)
    for i, (x, y) in enumerate(data):
        if trees.warming_up is None:
            break
        assert trees.learns_before_change() == 0  # each label changes the scores
        trees.learn_one(x, y)
        gam.learn_one(x, y)
        if i % 97 == 0 and trees.warming_up is not None:
            assert zoo.score_many(trees, probe) == zoo.score_many(gam, probe) == [zoo.score_one(gam, x) for x in probe]
            assert zoo.explain(trees, probe[0]) == zoo.explain(gam, probe[0])
    assert trees.n_fits == 1 and trees.warming_up is None
    assert sum(y for _, y in data[:i]) >= 50 > sum(y for _, y in data[:i - 100])
    assert zoo.score_many(trees, probe) != zoo.score_many(gam, probe)
    assert trees.learns_before_change() > 0
    clone = pickle.loads(pickle.dumps(trees))
    assert clone.warming_up is None and zoo.score_many(clone, probe) == zoo.score_many(trees, probe)
