"""Checkpoints record the feature settings (FRAUDSTREAM_LOCAL_TIMEZONE) their model learned with, an
older checkpoint reads as UTC, and a model used with another zone is loaded with a warning (once a
load: not per batch, nor for each of a learner's versions), still scoring; `models import` refuses it."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import pickle
import struct
from dataclasses import asdict
from pathlib import Path

import pytest
from click.testing import CliRunner

from fraudstream.cli import main
from fraudstream.config import Settings
from fraudstream.errors import CheckpointError
from fraudstream.models import checkpoint, zoo
from fraudstream.models.checkpoint import CheckpointInfo
from fraudstream.stream.feature_settings import mismatch, trained_with
from fraudstream.stream.registry import registry_for
from fraudstream.stream.scoring import LiveModel
from tests.test_backtest import write_handbook_csv
from tests.test_lifecycle import feed, labels, live, poll_now, probe_scores
from tests.test_pipeline import publish, scripted_transactions

KEY = b"test-key"
NEW_YORK = {"local_timezone": "America/New_York"}


def signed_with_header(model: object, header: dict[str, object], key: bytes) -> bytes:
    """A checkpoint with exactly `header` (as an older fraudstream wrote it, or a broken one), signed."""
    head = json.dumps(header).encode()
    payload = pickle.dumps(model)
    signed = checkpoint.MAGIC + struct.pack(">I", len(head)) + head
    return signed + hmac.new(key, signed + payload, hashlib.sha256).digest() + payload


def old_blob(model: object, info: CheckpointInfo, key: bytes) -> bytes:
    """`info` as a checkpoint of a fraudstream from before the feature settings were recorded."""
    header = asdict(info)
    del header["feature_settings"]
    return signed_with_header(model, header, key)


def trained_logreg(n: int = 300) -> object:
    model = zoo.make_model("logreg", seed=5)
    for x, y in labels(n, seed=5):
        model.learn_one(x, y)
    return model


def warnings_naming(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and text in r.getMessage()]


def test_the_header_round_trips_the_feature_settings(tmp_path: Path) -> None:
    info = CheckpointInfo("m", "logreg", version=2, feature_settings=dict(NEW_YORK))
    loaded = checkpoint.load_file(checkpoint.save_file(tmp_path / "m.fsmodel", None, info, KEY), KEY)
    assert loaded.info == info and trained_with(loaded.info) == NEW_YORK
    assert mismatch(loaded.info, NEW_YORK) is None
    assert "America/New_York, and this consumer computes its features with UTC" in mismatch(loaded.info, {})


def test_a_checkpoint_from_before_the_record_reads_as_utc() -> None:
    blob = old_blob([1], CheckpointInfo("gbt_window", "gbt_window", version=7, source="backtest"), KEY)
    assert b"feature_settings" not in blob
    info = checkpoint.loads(blob, KEY).info
    assert info.feature_settings == {} and trained_with(info) == {"local_timezone": "UTC"}
    for utc in ("UTC", "Etc/UTC", "GMT"):  # any name of UTC computes the same features
        assert mismatch(info, {"local_timezone": utc}) is None
    problem = mismatch(info, NEW_YORK)
    assert problem is not None
    for part in ("model gbt_window v7 learned with FRAUDSTREAM_LOCAL_TIMEZONE=UTC (its checkpoint does not "
                 "record the zone", "computes its features with America/New_York", "TX_DURING_NIGHT",
                 "backtest it again with FRAUDSTREAM_LOCAL_TIMEZONE=America/New_York",
                 "or set FRAUDSTREAM_LOCAL_TIMEZONE back to UTC"):
        assert part in problem, problem


def test_a_header_whose_feature_settings_are_not_strings_is_refused() -> None:
    header = {**asdict(CheckpointInfo("m", "logreg")), "feature_settings": {"local_timezone": 5}}
    with pytest.raises(CheckpointError, match="feature_settings is not an object of strings"):
        checkpoint.loads(signed_with_header(None, header, KEY), KEY)


def test_a_live_version_records_the_learners_settings_and_says_so_once(caplog: pytest.LogCaptureFixture) -> None:
    loaded = LiveModel(CheckpointInfo("m", "logreg", 3, source="backtest"), zoo.make_model("logreg"), base=3)
    loaded.learn({"TX_AMOUNT": 3.0}, False)
    with caplog.at_level(logging.WARNING, logger="fraudstream.stream"):
        first = loaded.published(NEW_YORK)
        loaded.mark_published(first)
        loaded.learn({"TX_AMOUNT": 4.0}, False)
        second = loaded.published(NEW_YORK)
        loaded.mark_published(second)
    assert first.feature_settings == second.feature_settings == NEW_YORK
    warned = warnings_naming(caplog, "records FRAUDSTREAM_LOCAL_TIMEZONE=America/New_York")
    assert warned == ["model m v4 records FRAUDSTREAM_LOCAL_TIMEZONE=America/New_York, this learner's settings, as "
                      "those it learned with, but v3 and those before it learned with UTC: its scores mix the two "
                      "until it is replaced by one backtested with America/New_York"]
    fresh = LiveModel.fresh("logreg", seed=1)  # a fresh model learned nothing before: nothing to say
    with caplog.at_level(logging.WARNING, logger="fraudstream.stream"):
        caplog.clear()
        fresh.mark_published(fresh.published(NEW_YORK))
    assert not warnings_naming(caplog, "records FRAUDSTREAM_LOCAL_TIMEZONE")


def test_backtest_records_its_zone_and_warns_from_a_model_of_another(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUDSTREAM_MODEL_SIGNING_KEY", KEY.decode())
    path = write_handbook_csv(tmp_path / "hb.csv", days=16, customers=10)
    common = ["--label-delay", "3d", "--no-progress", "--eval-start", "2018-04-10"]
    monkeypatch.setenv("FRAUDSTREAM_LOCAL_TIMEZONE", "Europe/Paris")
    saved = CliRunner().invoke(main, ["backtest", str(path), "--model", "logreg", *common,
                                      "--save-model", str(tmp_path / "paris.fsmodel")])
    assert saved.exit_code == 0, saved.output
    assert "learned with" not in saved.output
    assert checkpoint.load_file(tmp_path / "paris.fsmodel", KEY).info.feature_settings == {"local_timezone": "Europe/Paris"}
    monkeypatch.delenv("FRAUDSTREAM_LOCAL_TIMEZONE")
    again = CliRunner().invoke(main, ["backtest", str(path), "--from-model", str(tmp_path / "paris.fsmodel"), *common,
                                      "--save-model", str(tmp_path / "utc.fsmodel")])
    assert again.exit_code == 0, again.output
    assert "model logreg v1 learned with FRAUDSTREAM_LOCAL_TIMEZONE=Europe/Paris, and this backtest computes its " \
           "features with UTC" in again.output, again.output
    assert checkpoint.load_file(tmp_path / "utc.fsmodel", KEY).info.feature_settings == {"local_timezone": "UTC"}


@pytest.mark.services
def test_a_consumer_of_another_zone_than_its_champion_warns_once_and_scores(
        settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    """An old champion checkpoint (UTC by default) and a consumer set to America/New_York: one warning
    as the champion is loaded, none per batch, every transaction scored and alerted by it."""
    from fraudstream.kafka_io import ensure_topics
    from fraudstream.stream.app import scoring_consumer

    registry = registry_for(settings)
    info = CheckpointInfo("logreg", "logreg", version=1, labels_learned=300, frauds_learned=30, source="backtest")
    registry.publish_blob("logreg", 1, old_blob(trained_logreg(), info, settings.model_signing_key.get_secret_value().encode()),
                          registry.labels.end())
    settings = settings.model_copy(update={"model": "logreg", "local_timezone": "America/New_York", "alert_threshold": 0.0,
                                           "alert_warmup_labels": 0, "max_poll_records": 40})
    ensure_topics(settings)
    txs = scripted_transactions(200)
    publish(settings, txs)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="fraudstream"):
        with scoring_consumer(settings) as app:
            stats = app.run(max_transactions=len(txs), idle_timeout=30)
    assert stats.processed == len(txs) and stats.alerts == len(txs)
    warned = warnings_naming(caplog, "learned with FRAUDSTREAM_LOCAL_TIMEZONE")
    assert len(warned) == 1, warned
    assert warned[0].startswith("model logreg v1 learned with FRAUDSTREAM_LOCAL_TIMEZONE=UTC (its checkpoint "
                                "does not record the zone") and "America/New_York" in warned[0], warned


@pytest.mark.services
def test_scorers_warn_once_per_load_of_a_version_of_another_zone(settings: Settings,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    """A learner in New York publishes versions that record its zone; a scorer in UTC warns as it
    loads the first, not as it loads each next one of the same zone, and again for an import."""
    learner = live(settings.model_copy(update={"local_timezone": "America/New_York"}), checkpoint_every_labels=50,
                   checkpoint_every_seconds=3600)
    learner.maintain()  # v1, fresh
    assert registry_for(settings).info("logreg").feature_settings == NEW_YORK
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="fraudstream"):
        scorer = live(settings)
        for seed in (1, 2):
            feed(learner, labels(120, seed=seed))
            learner.lifecycle.publish_due(learner, force=True)  # type: ignore[union-attr]
            poll_now(scorer)
    assert scorer.champion.info.version == learner.champion.info.version >= 3
    assert probe_scores(scorer) == probe_scores(learner)  # it scores with them
    warned = warnings_naming(caplog, "learned with FRAUDSTREAM_LOCAL_TIMEZONE=America/New_York")
    assert len(warned) == 1 and warned[0].startswith("model logreg v1 learned with") and \
        "this consumer computes its features with UTC" in warned[0], warned
    learner.close()
    scorer.close()


@pytest.mark.services
def test_a_scorer_started_before_the_first_version_warns_as_it_loads_one_of_another_zone(
        settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    """A scorer in New York started with the learner (UTC) on an empty registry scores a fresh model,
    which was never checked: the learner's first version it loads (UTC, as the fresh model's header
    reads) is warned about, once."""
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="fraudstream"):
        learner = live(settings, checkpoint_every_labels=50, checkpoint_every_seconds=3600)
        scorer = live(settings.model_copy(update={"local_timezone": "America/New_York"}))
        assert scorer.champion.info.version == 0
        learner.maintain()  # v1, fresh
        poll_now(scorer)
        feed(learner, labels(120, seed=1))
        learner.lifecycle.publish_due(learner, force=True)  # type: ignore[union-attr]
        poll_now(scorer)
    assert scorer.champion.info.version == learner.champion.info.version >= 2
    warned = warnings_naming(caplog, "learned with FRAUDSTREAM_LOCAL_TIMEZONE=UTC")
    assert len(warned) == 1 and warned[0].startswith("model logreg v1 learned with") and \
        "this consumer computes its features with America/New_York" in warned[0], warned
    learner.close()
    scorer.close()


@pytest.mark.services
def test_models_import_refuses_another_zone_unless_told_and_the_listings_show_it(settings: Settings,
                                                                                 tmp_path: Path) -> None:
    key = settings.model_signing_key.get_secret_value()
    path = checkpoint.save_file(tmp_path / "ny.fsmodel", trained_logreg(),
                                CheckpointInfo("ny", "logreg", version=1, labels_learned=300, source="backtest",
                                               feature_settings=dict(NEW_YORK)), key)
    (tmp_path / "old.fsmodel").write_bytes(old_blob(trained_logreg(), CheckpointInfo("old", "logreg", 1, source="backtest"),
                                                    key.encode()))
    env = {"FRAUDSTREAM_REDIS_URL": settings.redis_url, "FRAUDSTREAM_REDIS_KEY_PREFIX": settings.redis_key_prefix}
    runner = CliRunner()
    refused = runner.invoke(main, ["models", "import", str(path)], env=env)
    assert refused.exit_code == 1 and "not imported: model ny v1 learned with FRAUDSTREAM_LOCAL_TIMEZONE=" \
        "America/New_York, and a consumer with this command's settings computes its features with UTC" in refused.output
    assert "--other-features imports it anyway" in refused.output and registry_for(settings).names() == []
    forced = runner.invoke(main, ["models", "import", str(path), "--other-features"], env=env)
    assert forced.exit_code == 0 and "imported" in forced.stdout and "warning: model ny v1 learned with" in forced.output
    in_new_york = {**env, "FRAUDSTREAM_LOCAL_TIMEZONE": "America/New_York"}
    old = runner.invoke(main, ["models", "import", str(tmp_path / "old.fsmodel")], env=in_new_york)
    assert old.exit_code == 1 and "model old v1 learned with FRAUDSTREAM_LOCAL_TIMEZONE=UTC (its checkpoint does not" in old.output
    assert runner.invoke(main, ["models", "import", str(path)], env=in_new_york).exit_code == 0  # ny v2, same zone
    versions = runner.invoke(main, ["models", "versions", "ny"], env=env)
    assert versions.exit_code == 0 and " ZONE " in versions.stdout.splitlines()[0]
    assert [line.split()[4] for line in versions.stdout.splitlines()[1:3]] == ["America/New_York"] * 2, versions.stdout
    listing = runner.invoke(main, ["models", "list", "--json"], env=env)
    rows = {row["name"]: row for row in json.loads(listing.stdout)["models"]}
    assert rows["ny"]["feature_settings"] == NEW_YORK
    table = runner.invoke(main, ["models", "list"], env=env)
    assert "America/New_York" in table.stdout and "warning: ny learned with another FRAUDSTREAM_LOCAL_TIMEZONE" \
        in table.output, table.output
    promoted = runner.invoke(main, ["models", "promote", "ny"], env=env)
    assert promoted.exit_code == 0 and "warning: model ny v2 learned with FRAUDSTREAM_LOCAL_TIMEZONE=America/New_York" \
        in promoted.output, promoted.output


@pytest.mark.services
def test_models_versions_keeps_its_columns_with_a_long_zone_name(settings: Settings, tmp_path: Path) -> None:
    zone = "America/Argentina/Buenos_Aires"  # 30 characters
    path = checkpoint.save_file(tmp_path / "ba.fsmodel", trained_logreg(),
                                CheckpointInfo("ba", "logreg", version=1, labels_learned=300, source="backtest",
                                               feature_settings={"local_timezone": zone}),
                                settings.model_signing_key.get_secret_value())
    env = {"FRAUDSTREAM_REDIS_URL": settings.redis_url, "FRAUDSTREAM_REDIS_KEY_PREFIX": settings.redis_key_prefix,
           "FRAUDSTREAM_LOCAL_TIMEZONE": zone}
    assert CliRunner().invoke(main, ["models", "import", str(path)], env=env).exit_code == 0
    listed = CliRunner().invoke(main, ["models", "versions", "ba"], env=env)
    header, row = listed.stdout.splitlines()[:2]
    assert f" {zone} import" in row and row.index(f"{zone} ") == header.index("ZONE") and \
        row.index("import") == header.index("SOURCE"), listed.stdout


def test_names_of_one_zone_are_the_same_features_and_other_zones_are_not() -> None:
    """A link (US/Eastern -> America/New_York) is the same zone: no warning, no refusal."""
    info = CheckpointInfo("m", "logreg", version=2, feature_settings={"local_timezone": "US/Eastern"})
    assert mismatch(info, {"local_timezone": "America/New_York"}) is None
    assert mismatch(info, {"local_timezone": "America/Chicago"}) is not None
    linked = CheckpointInfo("m", "logreg", version=2, feature_settings={"local_timezone": "Asia/Calcutta"})
    assert mismatch(linked, {"local_timezone": "Asia/Kolkata"}) is None
    assert mismatch(linked, {"local_timezone": "Asia/Colombo"}) is not None


@pytest.mark.services
def test_models_import_says_when_the_command_is_not_set_as_the_consumers_learner(settings: Settings,
                                                                                tmp_path: Path) -> None:
    """The zone a command checks a file with is its own: when the champion's newest version, which
    a learner published, records another, the import says to set it as the consumers'."""
    registry = registry_for(settings)
    registry.set_champion_if_absent("ny")
    registry.publish(trained_logreg(), CheckpointInfo("ny", "logreg", version=1, labels_learned=50, source="live",
                                                      feature_settings=dict(NEW_YORK)))
    key = settings.model_signing_key.get_secret_value()
    path = checkpoint.save_file(tmp_path / "utc.fsmodel", trained_logreg(),
                                CheckpointInfo("cand", "logreg", version=1, labels_learned=300, source="backtest"), key)
    env = {"FRAUDSTREAM_REDIS_URL": settings.redis_url, "FRAUDSTREAM_REDIS_KEY_PREFIX": settings.redis_key_prefix}
    laptop = CliRunner().invoke(main, ["models", "import", str(path), "--inactive"], env=env)
    assert laptop.exit_code == 0, laptop.output  # a UTC model, checked with UTC: imported, but not the consumers' zone
    assert "warning: the consumers' learner published ny v1 with FRAUDSTREAM_LOCAL_TIMEZONE=America/New_York, and " \
        "this command checks with UTC" in laptop.output, laptop.output
    in_new_york = {**env, "FRAUDSTREAM_LOCAL_TIMEZONE": "US/Eastern"}  # a name of the same zone
    again = CliRunner().invoke(main, ["models", "import", str(path), "--inactive"], env=in_new_york)
    assert again.exit_code == 1 and "the consumers' learner" not in again.output, again.output
