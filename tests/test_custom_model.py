"""A model of your own (`package.module:callable`): made with its seed and checked, validated by a
backtest, and live through its checkpoint, as a user takes it through the loop."""

from __future__ import annotations

import json
import logging
import os
import pickle
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from fraudstream.cli import main
from fraudstream.config import Settings
from fraudstream.errors import CheckpointError, ModelError
from fraudstream.models import checkpoint, zoo
from fraudstream.models.events import Alert
from fraudstream.stream.model_loading import check_names
from fraudstream.stream.registry import registry_for
from tests.kafka_helpers import read_topic
from tests.test_backtest import write_handbook_csv
from tests.test_cli_pipeline import run_cli

OWN_MODELS = '''
"""A user's models."""
from river import base, compose, naive_bayes, preprocessing

SEEDS = []


class AlwaysWorried(base.Classifier):
    """Scores every transaction 0.9, and counts the labels it learns."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.learned = 0

    def learn_one(self, x, y):
        self.learned += 1

    def predict_proba_one(self, x):
        return {False: 0.1, True: 0.9}


def worried(seed):
    """Always worried: 0.9 for every transaction."""
    SEEDS.append(seed)
    return AlwaysWorried(seed)


class Forgetful(base.Classifier):
    """Keeps a closure once it learned a label: it pickles fresh, not after."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.last = None

    def learn_one(self, x, y):
        self.last = lambda: y

    def predict_proba_one(self, x):
        return {False: 0.5, True: 0.5}


def forgetful(seed):
    return Forgetful(seed)


def bayes():
    return preprocessing.StandardScaler() | naive_bayes.GaussianNB()


def scaler():
    return preprocessing.StandardScaler()


NOT_CALLABLE = 3


def needs_depth(seed, depth):
    return naive_bayes.GaussianNB()


def needs_grace(*, grace, seed=0):
    return naive_bayes.GaussianNB()


def with_lambda():
    return compose.FuncTransformer(lambda x: {**x, "big": float(x["TX_AMOUNT"] > 200)}) | naive_bayes.GaussianNB()


def with_closure(seed):
    cutoff = 200.0 + seed

    def flag(x):
        return {**x, "big": float(x["TX_AMOUNT"] > cutoff)}
    return compose.FuncTransformer(flag) | naive_bayes.GaussianNB()


def raising(seed):
    raise ValueError("hyper-parameters not set")
'''


@pytest.fixture
def own_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A module of the user's on sys.path (and on PYTHONPATH for the CLI's processes), by a name of this test's."""
    name = f"own_models_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(OWN_MODELS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])))
    return name


def test_a_model_of_your_own_is_made_with_its_seed_and_checked(own_module: str) -> None:
    import importlib

    model = zoo.make_model(f"{own_module}:worried", seed=7)
    assert type(model).__name__ == "AlwaysWorried" and model.seed == 7
    assert importlib.import_module(own_module).SEEDS == [7]
    assert zoo.score_one(model, {"TX_AMOUNT": 1.0}) == 0.9
    assert zoo.describe(f"{own_module}:worried") == "Always worried: 0.9 for every transaction."
    pipeline = zoo.make_model(f"{own_module}:bayes")  # no seed argument: called without one
    pipeline.learn_one({"TX_AMOUNT": 5.0}, False)
    pipeline.learn_one({"TX_AMOUNT": 900.0}, True)
    assert 0.0 <= zoo.score_one(pipeline, {"TX_AMOUNT": 800.0}) <= 1.0
    refusals = {
        f"{own_module}:scaler": "returned a StandardScaler, not a River classifier",
        f"{own_module}:NOT_CALLABLE": f"{own_module} has no callable 'NOT_CALLABLE'",
        f"{own_module}:absent": f"{own_module} has no callable 'absent'",
        "no_such_package_here.models:build": "cannot import no_such_package_here.models (No module named "
                                             "'no_such_package_here'); install it or put its directory on PYTHONPATH",
        "a:b:c": "a model of your own is named package.module:callable",
        "gpt": "known: logreg, logreg_under",
    }
    for spec, message in refusals.items():
        with pytest.raises(ModelError, match=message.replace("(", r"\(").replace(")", r"\)")):
            zoo.make_model(spec)


@pytest.mark.services
def test_backtested_then_imported_it_scores_live(own_module: str, settings: Settings, tmp_path: Path) -> None:
    spec, name = f"{own_module}:worried", f"{own_module}.worried"
    data = write_handbook_csv(tmp_path / "hb.csv", days=10, customers=10)
    saved, figures = tmp_path / "own.fsmodel", tmp_path / "bt.json"
    result = CliRunner().invoke(main, ["backtest", str(data), "--model", spec, "--label-delay", "2d", "--eval-start",
                                       "2018-04-04", "--save-model", str(saved), "--json", str(figures),
                                       "--no-progress"])
    assert result.exit_code == 0, result.output
    report = json.loads(figures.read_text())
    assert report["model"] == spec and report["n_labels_learned"] > 100 and report["n_window_frauds"] > 0, report
    assert report["auc_roc"] == 0.5 and report["alerts"] == report["n_window_transactions"]  # this model's scores
    key = settings.model_signing_key.get_secret_value()
    cp = checkpoint.load_file(saved, key)
    assert (cp.info.name, cp.info.kind) == (name, spec) and cp.model.learned == report["n_labels_learned"]
    gone = "zzz" + own_module[3:]  # as long: the pickle stays well formed, and names a module not importable here
    payload = pickle.dumps(cp.model).replace(own_module.encode(), gone.encode())
    with pytest.raises(CheckpointError, match=f"No module named '{gone}' \\(a model of your own, from {spec}: "
                                              "install its module or put its directory on PYTHONPATH\\)"):
        checkpoint.unpickled(cp.info, payload)

    registry = registry_for(settings)
    with pytest.raises(ModelError, match=f"a model of your own goes live through a checkpoint, after a backtest: "
                                         f".*`fraudstream models promote {name}`"):
        check_names(registry, [spec])
    with pytest.raises(ModelError, match=r"\(a challenger, FRAUDSTREAM_CHALLENGERS\): .* `fraudstream models import "
                                         rf"M.fsmodel` \(a challenger from then on, as {name}\)$"):
        check_names(registry, ["gbt_window"], [spec])
    imported = run_cli(settings, "models", "import", str(saved), "--promote")
    assert imported.returncode == 0, imported.stderr[-2000:]
    produced = run_cli(settings, "produce", "--count", "200", "--rate", "2000", "--label-delay", "1s")
    assert produced.returncode == 0, produced.stderr[-2000:]
    consumed = run_cli(settings, "consume", "--max-transactions", "200", "--idle-timeout", "20")
    assert consumed.returncode == 0, consumed.stderr[-2000:]
    assert json.loads(consumed.stdout.strip().splitlines()[-1])["processed"] == 200
    alerts = [Alert.model_validate_json(r.value) for r in read_topic(settings, settings.topic_alerts, expect=200)]
    assert len(alerts) == 200 and {(a.model_name, a.score) for a in alerts} == {(name, 0.9)}


def test_a_module_that_fails_to_import_is_refused_naming_the_spec(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"broken_models_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text("from river import tree\n\ndef build(seed:\n    return tree.HoeffdingTreeClassifier()\n")
    (tmp_path / f"{name}_b.py").write_text("THRESHOLD = undefined_name\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModelError, match=rf"model {name}:build: cannot import {name}: SyntaxError: '\(' was never "
                                         rf"closed \({name}.py, line 3\)"):
        zoo.make_model(f"{name}:build")
    with pytest.raises(ModelError, match=rf"model {name}_b:build: cannot import {name}_b: NameError: name "
                                         "'undefined_name' is not defined"):
        zoo.make_model(f"{name}_b:build")
    (tmp_path / f"{name}_c.py").write_text("import no_such_dependency_here\n")  # theirs is found; its import is not
    with pytest.raises(ModelError, match=rf"model {name}_c:build: {name}_c imports no_such_dependency_here, which is "
                                         "not installed here"):
        zoo.make_model(f"{name}_c:build")
    (tmp_path / f"{name}_d.py").write_text("from river import no_such_thing\n")  # found, fails inside: no install advice
    with pytest.raises(ModelError, match=rf"model {name}_d:build: cannot import {name}_d: ImportError: cannot import "
                                         "name 'no_such_thing' from 'river'"):
        zoo.make_model(f"{name}_d:build")
    (tmp_path / f"{name}_e.py").write_text("import sys\nsys.exit(2)\n")  # a script's argparse, say: not a silent exit
    with pytest.raises(ModelError, match=rf"model {name}_e:build: cannot import {name}_e: SystemExit: 2"):
        zoo.make_model(f"{name}_e:build")


def test_a_callable_that_takes_other_required_arguments_is_refused(own_module: str) -> None:
    for attribute, missing in (("needs_depth", "depth"), ("needs_grace", "grace")):
        with pytest.raises(ModelError, match=f"model {own_module}:{attribute}: {own_module}.{attribute} is called with "
                                             f"seed= at most, but requires {missing}: give it a default"):
            zoo.make_model(f"{own_module}:{attribute}")


def test_a_callable_that_raises_is_a_model_error_naming_the_spec(own_module: str) -> None:
    with pytest.raises(ModelError, match=f"model {own_module}:raising: {own_module}.raising raised ValueError: "
                                         "hyper-parameters not set"):
        zoo.make_model(f"{own_module}:raising")


def test_a_model_that_cannot_be_pickled_is_refused_before_a_backtest(own_module: str) -> None:
    for attribute, local in (("with_lambda", "with_lambda.<locals>.<lambda>"), ("with_closure", "with_closure.<locals>.flag")):
        with pytest.raises(ModelError, match=f"model {own_module}:{attribute}: its model cannot be pickled .*'{local}'\\), and "
                                             "a checkpoint is a pickle: define the functions it uses .* at the top level "
                                             "of a module, not as a lambda or inside the callable"):
            zoo.make_model(f"{own_module}:{attribute}")
    unpicklable = {"step": lambda x: x}
    with pytest.raises(CheckpointError, match="model m \\(logreg\\) cannot be pickled, so not checkpointed: .*lambda"):
        checkpoint.dumps(unpicklable, checkpoint.CheckpointInfo(name="m", kind="logreg"), b"k")


def test_a_probability_dict_the_scores_cannot_use_is_warned_of(caplog: pytest.LogCaptureFixture) -> None:
    from fraudstream.models import wrappers

    import numpy as np

    wrappers.ODD_PROBAS.clear()
    with caplog.at_level("WARNING", logger="fraudstream.models.wrappers"):
        assert zoo.score_one(_Returns({False: np.float32(-0.5), True: np.float32(1.5)}), {}) == 1.0  # numpy's floats
    assert [r.getMessage() for r in caplog.records] == [
        "a model's predict_proba_one returned {False: np.float32(-0.5), True: np.float32(1.5)}, a negative "
        "probability: its scores are clipped to [0, 1] and mean little"]
    wrappers.ODD_PROBAS.clear()
    caplog.clear()
    with caplog.at_level("WARNING", logger="fraudstream.models.wrappers"):
        assert zoo.score_one(_Returns({"legit": 0.2, "fraud": 0.8}), {}) == 0.0
        assert zoo.score_one(_Returns({"legit": 0.3, "fraud": 0.7}), {}) == 0.0  # warned of once
        assert zoo.score_one(_Returns({False: -0.5, True: 30.0}), {}) == 1.0
    assert [r.getMessage() for r in caplog.records] == [
        "a model's predict_proba_one returned {'legit': 0.2, 'fraud': 0.8}, without the classes True and False: "
        "its scores are 0.0 (River classifiers learn y=True for a fraud and y=False otherwise)",
        "a model's predict_proba_one returned {False: -0.5, True: 30.0}, a negative probability: its scores are "
        "clipped to [0, 1] and mean little",
    ]



def test_a_nan_probability_is_warned_of_and_scores_zero_on_both_paths(caplog: pytest.LogCaptureFixture) -> None:
    """A model of your own that returns NaN scored 0.0 without a word: the backtest's figures and the
    live alerts then treat a broken model as one sure that nothing is fraud. Warned of once; the batch
    path (numpy) gave NaN where the row path gave 0.0."""
    import numpy as np

    from fraudstream.models import batch_scoring, wrappers

    wrappers.ODD_PROBAS.clear()
    with caplog.at_level("WARNING", logger="fraudstream.models.wrappers"):
        assert zoo.score_one(_Returns({False: float("nan"), True: float("nan")}), {}) == 0.0
        assert zoo.score_one(_Returns({False: 0.5, True: float("nan")}), {}) == 0.0  # warned of once
    assert [r.getMessage() for r in caplog.records] == [
        "a model's predict_proba_one returned {False: nan, True: nan}, a NaN probability: its scores are 0.0 "
        "(no alert) and the figures count them as sure genuine"]
    assert batch_scoring._proba_true(np.array([float("nan"), 0.25])).tolist() == [0.0, 0.25]
    wrappers.ODD_PROBAS.clear()


class _Returns:
    def __init__(self, proba: dict) -> None:
        self.proba = proba

    def predict_proba_one(self, x: dict) -> dict:
        return self.proba


@pytest.mark.services
def test_the_models_table_keeps_its_columns_with_a_long_kind(own_module: str, settings: Settings,
                                                             tmp_path: Path) -> None:
    spec = f"{own_module}:bayes"
    saved = tmp_path / "own.fsmodel"
    checkpoint.save_file(saved, zoo.make_model(spec), checkpoint.CheckpointInfo(name="mine", kind=spec),
                         settings.model_signing_key.get_secret_value())
    assert run_cli(settings, "models", "import", str(saved)).returncode == 0
    listed = run_cli(settings, "models")
    assert listed.returncode == 0, listed.stderr[-2000:]
    header, row = listed.stdout.splitlines()[:2]
    assert row.split()[:4] == ["mine", "challenger", "1", spec]
    labels_end = header.index("LABELS") + len("LABELS")  # right-aligned under its heading, as SOURCE left-aligned
    assert row.index(spec) == header.index("KIND") and row[:labels_end].endswith(" 0"), listed.stdout
    assert row[header.index("SOURCE"):] == "import", listed.stdout


def test_the_demo_refuses_a_model_of_your_own(own_module: str) -> None:
    """On its embedded servers, new each run, the backtest, import and promote that the consumers'
    refusal names could not be followed."""
    for args in (["demo", "--model", f"{own_module}:worried"], ["demo"]):
        env = {"FRAUDSTREAM_CHALLENGERS": f"{own_module}:worried"} if args == ["demo"] else {}
        result = CliRunner().invoke(main, args, env=env)
        assert result.exit_code == 1, result.output
        assert f"model {own_module}:worried: the demo's servers are new each run" in result.output
    elsewhere = {"FRAUDSTREAM_KAFKA_BOOTSTRAP": "127.0.0.1:1", "FRAUDSTREAM_REDIS_URL": "redis://127.0.0.1:1/0",
                 "FRAUDSTREAM_CHALLENGERS": f"{own_module}:worried"}  # servers of the user's: refused before any is asked
    result = CliRunner().invoke(main, ["demo"], env=elsewhere)
    assert result.exit_code == 1 and "(a challenger, FRAUDSTREAM_CHALLENGERS): a model of your own goes live" in \
        result.output and "cannot reach" not in result.output and "did not answer" not in result.output, result.output


@pytest.mark.services
def test_a_model_that_can_no_longer_be_checkpointed_goes_on_scoring(own_module: str, settings: Settings,
                                                                     tmp_path: Path) -> None:
    """Its learner's publish failed with CheckpointError, which ended the consumer (and again after a restart)."""
    from tests.test_lifecycle import feed, labels, live

    spec, name = f"{own_module}:forgetful", f"{own_module}.forgetful"
    key = settings.model_signing_key.get_secret_value()
    saved = checkpoint.save_file(tmp_path / "f.fsmodel", zoo.make_model(spec), checkpoint.CheckpointInfo(
        name=name, kind=spec, labels_learned=500, frauds_learned=50, source="backtest"), key)
    env = {"FRAUDSTREAM_REDIS_URL": settings.redis_url, "FRAUDSTREAM_REDIS_KEY_PREFIX": settings.redis_key_prefix}
    result = CliRunner().invoke(main, ["models", "import", str(saved), "--promote"], env=env)
    assert result.exit_code == 0, result.output
    learner = live(settings, checkpoint_every_labels=10)
    try:
        assert learner.champion_name == name and learner.lifecycle is not None and learner.lifecycle.is_learner
        records: list[logging.LogRecord] = []
        handler = logging.Handler(logging.ERROR)  # its own: the CLI's logging set up above does not propagate
        handler.emit = records.append  # type: ignore[method-assign]
        logging.getLogger("fraudstream.stream.publish_failures").addHandler(handler)
        try:
            feed(learner, labels(20, seed=3))  # its maintenance publishes after 10 labels: tried there
            assert learner.lifecycle.publish_due(learner, force=True) == 0  # and not again
        finally:
            logging.getLogger("fraudstream.stream.publish_failures").removeHandler(handler)
        errors = [r.getMessage() for r in records if "can no longer be checkpointed" in r.getMessage()]
        assert len(errors) == 1 and f"model {name} can no longer be checkpointed" in errors[0], errors
        assert "a restart loads v1" in errors[0] and "cannot be pickled" in errors[0]
        feed(learner, labels(5, seed=4))  # it goes on scoring and learning
        assert learner.champion.local_labels == 25
        assert registry_for(settings).latest_version(name) == 1
    finally:
        learner.close()
