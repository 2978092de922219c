"""Model registry and lifecycle on the real Redis: restore, refusal of bad checkpoints, learner
failover without losing labels, scorers following versions and promotions, metrics."""

from __future__ import annotations

import logging
import math
import random
import time
from pathlib import Path

import pytest

from fraudstream.config import Settings
from click.testing import CliRunner

from fraudstream.cli import main
from fraudstream.errors import CheckpointError, ModelError
from fraudstream.models import boosted, checkpoint
from fraudstream.models.checkpoint import CheckpointInfo
from fraudstream.stream.registry import registry_for
from fraudstream.stream.scoring import Scorer

PROBES = [{"TX_AMOUNT": float(a), "N": float(n)} for a in (3, 40, 300, 900) for n in (0, 2, 5)]


def labels(n: int, seed: int = 0) -> list[tuple[dict[str, float], bool]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        fraud = rng.random() < 0.1
        out.append(({"TX_AMOUNT": rng.uniform(500, 1000) if fraud else rng.uniform(1, 100),
                     "N": float(rng.randint(0, 6))}, fraud))
    return out


def live(settings: Settings, **changes: object) -> Scorer:
    """A scorer of these settings, champion logreg unless `model` is given (the mechanics are the test)."""
    return Scorer.from_settings(settings.model_copy(update={"model": "logreg", **changes}))


def feed(scorer: Scorer, items: list[tuple[dict[str, float], bool]], maintain: bool = True) -> None:
    """What the consumer does: score, later learn from the label; then one loop iteration."""
    for x, y in items:
        scores = scorer.score_all([x])[1][0]
        scorer.learn(x, y, scores)
    scorer.flush_labels()
    scorer.score_all([])  # the learner learns before it scores again
    if maintain:
        scorer.maintain()


def poll_now(scorer: Scorer) -> None:
    """One loop iteration a poll interval later."""
    scorer.lifecycle._next_poll = 0  # type: ignore[union-attr]
    scorer.maintain()


def probe_scores(scorer: Scorer, name: str | None = None) -> list[float]:
    from fraudstream.models import zoo

    model = scorer.models[name or scorer.champion_name].model
    return [zoo.score_one(model, x) for x in PROBES]


@pytest.mark.services
def test_learner_crash_loses_no_label(settings: Settings) -> None:
    a = live(settings, checkpoint_every_labels=100, checkpoint_every_seconds=3600, challengers=("logreg_under",))
    assert a.lifecycle is not None and a.lifecycle.is_learner
    a.maintain()  # publishes the fresh models as v1
    items = labels(250)
    feed(a, items[:200])
    feed(a, items[200:], maintain=False)
    assert a.champion.version == "2+50"  # v2 at 200 labels; 50 learned since, unpublished
    assert a.models["logreg_under"].labels_learned == 250
    before = {n: probe_scores(a, n) for n in a.models}
    assert len(set(before["logreg"])) > 1
    # "SIGKILL": a is dropped without close(); once its role expires, a new consumer restores v2
    # and replays the label stream from v2's position
    registry = registry_for(settings)
    assert registry.learner() == a.lifecycle.owner
    registry.client.pexpire(registry.key("learner"), 1)  # the TTL running out, without the wait
    time.sleep(0.01)
    b = live(settings, checkpoint_every_labels=100, checkpoint_every_seconds=3600)
    assert b.lifecycle is not None and b.lifecycle.is_learner
    b.maintain()
    assert b.champion.labels_learned == 250 and sorted(b.models) == ["logreg", "logreg_under"]
    assert {n: probe_scores(b, n) for n in b.models} == before
    b.close()


@pytest.mark.services
def test_scorers_follow_versions_and_promotion(settings: Settings) -> None:
    learner = live(settings, checkpoint_every_labels=50, checkpoint_every_seconds=3600, challengers=("htree",))
    scorer = live(settings, model="htree")  # configured differently: the registry's champion wins
    assert scorer.lifecycle is not None and not scorer.lifecycle.is_learner
    assert scorer.champion_name == "logreg" and sorted(scorer.models) == ["htree", "logreg"]
    feed(learner, labels(120, seed=1))
    feed(scorer, labels(30, seed=2))  # the scorer's labels reach the learner through the stream
    poll_now(learner)
    learner.lifecycle.publish_due(learner, force=True)  # type: ignore[union-attr]
    assert learner.champion.labels_learned == 150 and learner.champion.local_labels == 0
    poll_now(scorer)
    assert scorer.champion.labels_learned == 150 and scorer.champion.version == learner.champion.version
    assert probe_scores(scorer) == probe_scores(learner)

    registry = registry_for(settings)
    assert registry.promote("htree") == "logreg"
    for s in (scorer, learner):
        poll_now(s)
        assert s.champion_name == "htree" and "logreg" in s.models
    assert registry.active() == ("htree", ["logreg"])
    perf = registry.labels.performance("logreg", threshold=0.5)
    assert perf.n_labels == 150 and 0 < perf.n_frauds < 150
    assert 0.9 < perf.auc_roc <= 1.0 and not math.isnan(perf.average_precision)
    learner.close()


@pytest.mark.services
def test_a_learner_restores_the_versions_redis_lost(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    """Redis restarted empty under running consumers: the learner publishes its model as the version
    after the one it learned on from (it warned at every batch that its version was "not the next one",
    and never published again), and a consumer that came up untrained meanwhile loads it."""
    learner = live(settings, checkpoint_every_labels=50, checkpoint_every_seconds=3600)
    feed(learner, labels(120, seed=3))
    learner.lifecycle.publish_due(learner, force=True)  # type: ignore[union-attr]
    before = learner.champion.info.version
    assert learner.champion.version == str(before) and learner.champion.labels_learned == 120
    registry = registry_for(settings)
    lost = [key for key in registry.client.scan_iter(match=f"{{{settings.redis_key_prefix}:models}}*")]
    assert registry.client.delete(*lost) >= 3  # the restart without persistence, for this test's keys
    poll_now(learner)  # takes the role again
    empty = live(settings)  # a consumer started now finds nothing to load: a fresh model
    assert empty.champion.labels_learned == 0 and not empty.lifecycle.is_learner  # type: ignore[union-attr]
    caplog.clear()  # (earlier records, of whatever level another test's logging set up)
    with caplog.at_level(logging.WARNING, logger="fraudstream.stream.publishing"):
        feed(learner, labels(60, seed=4))  # then its maintenance publishes (60 labels, due at 50): the restore
        learner.lifecycle.publish_due(learner, force=True)  # type: ignore[union-attr]
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING
              and r.name == "fraudstream.stream.publishing" and "built-in demo key" not in r.getMessage()]
    assert len(warned) == 1 and warned[0].startswith(f"Redis lost its state (restarted without persistence?): the "
                                                     f"registry's newest logreg is v0, this learner learned on from v{before}")
    assert registry.latest_version("logreg") == before + 1 and learner.champion.version == str(before + 1)
    poll_now(empty)
    assert empty.champion.labels_learned == 180 and probe_scores(empty) == probe_scores(learner)
    learner.close()


@pytest.mark.services
def test_an_unknown_model_name_is_refused_before_the_registry_is_written(settings: Settings) -> None:
    registry = registry_for(settings)
    with pytest.raises(ModelError, match="unknown model 'gbt_windw'"):
        live(settings, model="gbt_windw")
    with pytest.raises(ModelError, match=r"unknown model 'htre' \(a challenger, FRAUDSTREAM_CHALLENGERS\): "):
        live(settings, challengers=("htre",))
    assert registry.active() == (None, [])  # nothing was written: a consumer configured right starts
    scorer = live(settings, challengers=("htree",))
    assert registry.active() == ("logreg", ["htree"])

    # a bad name in the registry (written by an older version) stops neither a running consumer nor a
    # new one; `models retire` takes it away
    registry.client.sadd(registry.key("challengers"), "htre")
    poll_now(scorer)
    assert sorted(scorer.models) == ["htree", "logreg"] and scorer.champion_name == "logreg"
    assert sorted(live(settings).models) == ["htree", "logreg"]
    result = CliRunner().invoke(main, ["models", "retire", "htre"], env={
        "FRAUDSTREAM_REDIS_URL": settings.redis_url, "FRAUDSTREAM_REDIS_KEY_PREFIX": settings.redis_key_prefix})
    assert result.exit_code == 0 and "htre retired" in result.output, result.output
    assert registry.active() == ("logreg", ["htree"])
    with pytest.raises(ModelError, match="is the champion"):
        registry.retire("logreg")
    assert registry.retire("htree") and not registry.retire("htree")
    poll_now(scorer)
    assert list(scorer.models) == ["logreg"]


@pytest.mark.services
def test_tampered_checkpoint_is_refused_on_restore(settings: Settings, tmp_path: Path) -> None:
    a = live(settings, checkpoint_every_labels=40, checkpoint_every_seconds=3600)
    a.maintain()  # v1: fresh
    items = labels(90, seed=3)
    feed(a, items[:50])  # v2
    feed(a, items[50:])  # v3
    a.close()
    registry = registry_for(settings)
    latest = registry.latest_version("logreg")
    good = registry.load("logreg", latest - 1)
    assert (latest, good.info.labels_learned) == (3, 50)
    key = registry.key("ckpt", "logreg")
    blob = bytearray(registry.client.hget(key, str(latest)))
    blob[len(blob) // 2] ^= 0x40
    registry.client.hset(key, str(latest), bytes(blob))
    with pytest.raises(CheckpointError, match="signature"):
        registry.load("logreg")
    # restore falls back to the newest valid version (logged) and replays the label stream after it
    b = live(settings)
    assert b.champion.info.version == latest - 1
    assert (good.info.labels_learned, b.champion.labels_learned) == (50, 90)
    b.close()
    # every version foreign or tampered: refuse to start rather than silently start fresh
    wire = tmp_path / "wire"
    from tests.test_checkpoint import Tripwire

    for v in registry.client.hkeys(key):
        registry.client.hset(key, v, checkpoint.dumps(Tripwire(wire), CheckpointInfo(name="logreg", kind="logreg"),
                                                      b"attacker key"))
    with pytest.raises(CheckpointError, match="no valid checkpoint"):
        live(settings)
    assert not wire.exists()


@pytest.mark.services
def test_import_export_round_trip(settings: Settings, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from fraudstream.cli import main
    from fraudstream.models import zoo

    model = zoo.make_model("logreg", seed=5)
    for x, y in labels(300, seed=5):
        model.learn_one(x, y)
    path = checkpoint.save_file(tmp_path / "bt.fsmodel", model,
                                CheckpointInfo(name="logreg", kind="logreg", labels_learned=300, source="backtest"),
                                settings.model_signing_key.get_secret_value())
    env = {"FRAUDSTREAM_REDIS_URL": settings.redis_url, "FRAUDSTREAM_REDIS_KEY_PREFIX": settings.redis_key_prefix}
    runner = CliRunner()
    result = runner.invoke(main, ["models", "import", str(path), "--name", "bt"], env=env)
    assert result.exit_code == 0, result.output
    assert "bt v1" in result.output
    scorer = live(settings, challengers=("bt",))
    assert [zoo.score_one(scorer.models["bt"].model, x) for x in PROBES] == [zoo.score_one(model, x) for x in PROBES]
    scorer.close()
    out = tmp_path / "out.fsmodel"
    result = runner.invoke(main, ["models", "export", "bt", str(out)], env=env)
    assert result.exit_code == 0, result.output
    for args in (["export", "nosuch", str(tmp_path / "n.fsmodel")], ["retire", "nosuch"]):
        result = runner.invoke(main, ["models", *args], env=env)
        assert result.exit_code == 1, result.output
        assert "named 'nosuch' in the registry; known models: bt, logreg\n" in result.output, result.output
    result = runner.invoke(main, ["models", "export", "bt", str(tmp_path / "n.fsmodel"), "--version", "7"], env=env)
    assert result.exit_code == 1 and "'bt' has no version 7 in the registry: it keeps v1 (the newest 3) and no " \
        "pinned version" in result.output
    assert not (tmp_path / "n.fsmodel").exists()
    again = checkpoint.load_file(out, settings.model_signing_key.get_secret_value())
    assert [zoo.score_one(again.model, x) for x in PROBES] == [zoo.score_one(model, x) for x in PROBES]
    result = runner.invoke(main, ["models", "import", str(path)], env=env)  # a new version of the champion
    assert result.exit_code == 0 and "as logreg v" in result.stdout and result.stdout.strip().endswith(", champion")
    listing = runner.invoke(main, ["models", "list", "--json"], env=env)
    assert listing.exit_code == 0, listing.output
    assert {"bt", "logreg"} <= {row["name"] for row in __import__("json").loads(listing.stdout)["models"]}
    from fraudstream.constants import DEV_SIGNING_KEY

    for key, warned in ((DEV_SIGNING_KEY, True), ("a secret of our own", False)):  # the README's promise
        listed = runner.invoke(main, ["models", "list"], env={**env, "FRAUDSTREAM_MODEL_SIGNING_KEY": key})
        warning = "model checkpoints are signed with the built-in demo key"  # the log's, not a version's hint
        assert listed.exit_code == 0 and (warning in listed.output) is warned, listed.output
        # this test's models were signed with the demo key: with our own, each listed version says so
        assert ("it was signed with the built-in demo key" in listed.output) is not warned, listed.output
    # a model whose checkpoint does not verify with the key in use is not promoted: the consumers would refuse it
    result = runner.invoke(main, ["models", "promote", "bt"], env={**env, "FRAUDSTREAM_MODEL_SIGNING_KEY": "another key"})
    assert result.exit_code == 1 and "bt not promoted: its newest checkpoint (v1) does not verify" in result.output
    result = runner.invoke(main, ["models", "promote", "logreg"], env=env)
    assert result.exit_code == 0 and result.output.strip().endswith("logreg is the champion already"), result.output
    # a checkpoint of another kind of model is not a new version of bt (its versions and live figures would mix)
    other = checkpoint.save_file(tmp_path / "ht.fsmodel", zoo.make_model("htree"), CheckpointInfo(name="ht", kind="htree"),
                                 settings.model_signing_key.get_secret_value())
    result = runner.invoke(main, ["models", "import", str(other), "--name", "bt"], env=env)
    assert result.exit_code == 1 and "bt is a logreg model (v1) and this checkpoint is htree" in result.output
    # a file signed with another key is refused with a clear error
    foreign = checkpoint.save_file(tmp_path / "foreign.fsmodel", model, CheckpointInfo(name="x", kind="logreg"), b"other")
    result = runner.invoke(main, ["models", "import", str(foreign)], env=env)
    assert result.exit_code != 0 and "signature does not match" in result.output


@pytest.mark.services
def test_backtest_model_imported_live_scores_as_in_the_backtest(settings: Settings, tmp_path: Path) -> None:
    """`backtest --save-model` → `models import --promote` → the live scorer gives the last transaction
    of the file the score the backtest gave it (after it, the backtest learned nothing more)."""
    import csv
    from datetime import timedelta

    from click.testing import CliRunner

    from fraudstream.cli import main
    from fraudstream.models import zoo
    from fraudstream.producer.files import read_recorded
    from fraudstream.producer.recorded import labels_for
    from fraudstream.stream.backtest import replay
    from fraudstream.stream.features import FeatureEngine
    from fraudstream.stream.state import MemoryStore
    from tests.test_backtest import write_handbook_csv

    path = write_handbook_csv(tmp_path / "hb.csv", days=20, customers=30)
    key = settings.model_signing_key.get_secret_value()
    env = {"FRAUDSTREAM_REDIS_URL": settings.redis_url, "FRAUDSTREAM_REDIS_KEY_PREFIX": settings.redis_key_prefix,
           "FRAUDSTREAM_MODEL_SIGNING_KEY": key}
    runner = CliRunner()
    result = runner.invoke(main, ["backtest", str(path), "--eval-start", "2018-04-10", "--label-delay", "3d",
                                  "--model", "logreg", "--no-progress", "--scores", str(tmp_path / "s.csv"),
                                  "--save-model", str(tmp_path / "bt.fsmodel")], env=env)
    assert result.exit_code == 0, result.output
    with (tmp_path / "s.csv").open() as f:
        backtest_scores = {row["transaction_id"]: float(row["score"]) for row in csv.DictReader(f)}

    # the features the backtest scored the file's last transaction with (same replay, memory state)
    engine = FeatureEngine(MemoryStore())
    records = list(read_recorded(path))
    replay(records, engine, zoo.make_model("logreg"), "logreg", timedelta(days=3))
    last = records[-1]
    scored = engine.apply_labels([labels_for(last, timedelta(days=3))])[0]
    assert scored is not None and scored.scores["logreg"] == backtest_scores[last.transaction.transaction_id]

    result = runner.invoke(main, ["models", "import", str(tmp_path / "bt.fsmodel"), "--name", "bt", "--promote"],
                           env=env)
    assert result.exit_code == 0, result.output
    scorer = live(settings)
    assert scorer.champion_name == "bt" and scorer.champion.version == "1"
    champion_scores, _ = scorer.score_all([scored.features])
    assert champion_scores == [backtest_scores[last.transaction.transaction_id]]
    assert 0.0 < champion_scores[0] < 1.0
    scorer.close()


@pytest.mark.services
def test_a_model_that_changes_only_when_it_refits_is_published_after_its_refits(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """`gbt_window` holds its kept labels (MBs): after `checkpoint_every_labels` labels the learner
    publishes it only if it refitted since; while its warm-up model scores (every label changes it),
    as any model. A new version gives a scorer the trees the learner scores with."""
    # A clock that stands still: the fits' share of the time (`max_fit_share`, tested in
    # test_boosted) never holds a refit back here, so the refits come at the same labels every run.
    monkeypatch.setattr(boosted, "_clock", lambda: 0.0)
    learner = live(settings, model="gbt_window", checkpoint_every_labels=100, checkpoint_every_seconds=3600)
    learner.maintain()  # v1, fresh
    m = learner.champion
    rounds = []  # (warming up before, fits before, fits after, published)
    items = labels(2600, seed=5)
    for start in range(0, len(items), 100):
        warming, fits = m.model.warming_up is not None, m.model.n_fits
        version = m.base
        feed(learner, items[start:start + 100], maintain=False)
        m.model.wait_for_fit()  # a fit started in the background is done before the loop's maintenance
        learner.maintain()
        rounds.append((warming, fits, m.model.n_fits, m.base > version))
    assert rounds[0] == (True, 0, 0, True)  # the warm-up model learned: published
    after = [(fits_after > fits_before, published) for warming, fits_before, fits_after, published in rounds
             if not warming]
    assert all(refitted == published for refitted, published in after), rounds
    assert sum(p for _, p in after) >= 2 and sum(not p for _, p in after) >= 5, rounds
    assert m.local_labels > 0  # labels since the last refit stay unpublished
    scorer = live(settings, model="gbt_window")
    assert not scorer.lifecycle.is_learner  # type: ignore[union-attr]
    assert scorer.champion.base == m.base and scorer.champion.model.n_fits == m.model.n_fits
    assert probe_scores(scorer) == probe_scores(learner)
    learner.close()


@pytest.mark.services
def test_label_stream_entries_carry_values_and_a_names_id(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    """An entry holds the values and the id of its names' list, stored once in Redis: another
    process reads it back; entries written as maps (before) are still read; an entry whose names
    are gone is passed over with an error logged, and the learner goes on after it."""
    import msgpack

    from fraudstream.stream.label_stream import LabelEntry
    from fraudstream.stream.schema import FEATURE_NAMES

    writer = registry_for(settings)
    x = {name: float(i) + 0.5 for i, name in enumerate(FEATURE_NAMES)}
    other = {"TX_AMOUNT": 7.25, "N": 2.0}
    writer.labels.append([LabelEntry(x, True, {}), LabelEntry(other, False, {}), LabelEntry(x, False, {})])
    writer.client.xadd(writer.key("labels"), {"x": msgpack.packb(other), "y": "1"})  # the format before
    rows = registry_for(settings).labels.read("0-0")
    assert [(features, fraud) for _, features, fraud in rows] == [(x, True), (other, False), (x, False), (other, True)]
    entry = writer.client.xrange(writer.key("labels"), count=1)[0][1][b"x"]
    assert len(entry) < 400 < len(msgpack.packb(x))  # the names are not in the entry
    for key in writer.client.keys(writer.key("feature_names", "*")):
        writer.client.delete(key)
    reader = registry_for(settings)
    asked: list[int] = []
    load = reader.labels._features.load
    reader.labels._features.load = lambda names_id: asked.append(names_id) or load(names_id)  # type: ignore[method-assign]
    with caplog.at_level("ERROR", logger="fraudstream.stream.label_codec"):
        rows = reader.labels.read("0-0")
    assert [(features, fraud) for _, features, fraud in rows] == [(None, True), (None, False), (None, False), (other, True)]
    assert len([r for r in caplog.records if "not in Redis" in r.getMessage()]) == 2  # once per names' list
    assert len(asked) == 2  # Redis asked once per missing names' list in a read, not once per entry

    # a learner passes over unreadable entries and goes on after them
    learner = live(settings)
    assert learner.lifecycle is not None and learner.lifecycle.is_learner
    writer.labels.append([LabelEntry(x, True, {}), LabelEntry(x, False, {})])
    writer.client.xadd(writer.key("labels"), {"x": msgpack.packb(other), "y": "1"})
    for key in writer.client.keys(writer.key("feature_names", "*")):
        writer.client.delete(key)
    feed(learner, [(other, False)])
    assert learner.champion.labels_learned == 2  # the map and the new label, not the two unreadable entries
    assert learner.champion.position == writer.client.xrevrange(writer.key("labels"), count=1)[0][0].decode()
    learner.close()


@pytest.mark.services
def test_a_learner_learns_its_own_appends_without_reading_them_back(settings: Settings) -> None:
    """Labels the learner appended itself, right after the entries it has learned, are learned from
    memory; when another consumer's entries came first they are read from the stream instead. Either
    way every entry is learned once, in stream order, and the model is the one reading would make."""
    from fraudstream.stream.label_stream import LabelEntry

    items = labels(300, seed=3)
    entries = [LabelEntry(x, y, {}, f"c:{i}") for i, (x, y) in enumerate(items)]

    def counted(scorer: Scorer) -> list[int]:
        lifecycle = scorer.lifecycle
        assert lifecycle is not None and lifecycle.is_learner
        reads: list[int] = []
        read = lifecycle.registry.labels.read
        lifecycle.registry.labels.read = lambda *a, **k: reads.append(1) or read(*a, **k)  # type: ignore[method-assign]
        return reads

    a = live(settings)
    a.maintain()
    reads = counted(a)
    a.submit_labels(entries[:100])
    a.maintain()
    assert reads == [] and a.champion.labels_learned == 100
    other = registry_for(settings)  # another consumer's labels land first
    other.labels.append(entries[100:150])
    a.submit_labels(entries[150:])
    a.maintain()
    assert reads and a.champion.labels_learned == 300
    assert a.champion.position == other.labels.end()
    a.submit_labels(entries[:10])  # delivered again: nothing appended, nothing learned twice
    a.maintain()
    assert a.champion.labels_learned == 300

    # the same entries learned by reading them all back
    b = live(settings.model_copy(update={"redis_key_prefix": settings.redis_key_prefix + "-read"}))
    b.maintain()
    for part in (entries[:100], entries[100:150], entries[150:]):
        b.submit_labels(part)
        b.lifecycle.appended.clear()  # type: ignore[union-attr]
        b.maintain()
    assert b.champion.labels_learned == 300
    assert probe_scores(b) == probe_scores(a)
    a.close()
    b.close()


@pytest.mark.services
def test_a_registry_champion_of_an_older_default_is_kept_and_the_warning_says_what_to_do(
        settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    """A registry first used by consumers of an older default champion (gam_under before 2026-12-03)
    keeps it when the consumers are upgraded to a version whose default is another: the warning does
    not call it promoted, and names the setting that keeps it and the way to change it."""
    old = live(settings)  # the first consumers: their default champion, logreg here
    old.close()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="fraudstream.stream.lifecycle"):
        upgraded = live(settings, model="htree")  # the new version's default
    assert upgraded.champion_name == "logreg" and sorted(upgraded.models) == ["logreg"]
    [warning] = [r.getMessage() for r in caplog.records if "not the configured" in r.getMessage()]
    assert "champion is logreg" in warning and "configured htree" in warning
    assert "FRAUDSTREAM_MODEL=logreg" in warning and "make htree a challenger" in warning
    assert "models promote" in warning
    upgraded.close()
