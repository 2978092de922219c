"""Versions of a live model on the real Redis: a pinned version outlives the registry's rotation, and a
rollback publishes it again, which the consumers (the learner too) switch to and learn on from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from fraudstream.cli import main
from fraudstream.config import Settings
from fraudstream.errors import ModelError
from fraudstream.models import checkpoint, zoo
from fraudstream.stream.registry import KEEP_VERSIONS, registry_for
from fraudstream.stream.signing_record import signing_key_matches
from tests.test_lifecycle import PROBES, feed, labels, live, poll_now, probe_scores


@pytest.mark.services
def test_a_pinned_version_outlives_the_rotation_and_a_rollback_brings_it_back(settings: Settings,
                                                                            tmp_path: Path) -> None:
    env = {"FRAUDSTREAM_REDIS_URL": settings.redis_url, "FRAUDSTREAM_REDIS_KEY_PREFIX": settings.redis_key_prefix}
    runner = CliRunner()

    def models(*args: str, code: int = 0) -> str:
        result = runner.invoke(main, ["models", *args], env=env)
        assert result.exit_code == code, result.output
        return result.stdout if code == 0 else result.output  # (stdout: without the demo key's warning)

    a = live(settings, checkpoint_every_labels=100, checkpoint_every_seconds=3600)
    assert a.lifecycle is not None and a.lifecycle.is_learner
    a.maintain()  # v1, fresh
    feed(a, labels(100, seed=1))  # v2
    assert a.champion.base == 2
    good = probe_scores(a)
    assert models("pin", "logreg", "v2").startswith("pinned logreg v2 (logreg, 100 labels)")
    flipped = [(x, not y) for x, y in labels(400, seed=2)]  # a bad run of labels
    for start in range(0, 400, 100):
        feed(a, flipped[start:start + 100])  # v3 .. v6
    registry = registry_for(settings)
    assert registry.latest_version("logreg") == 6 and registry.kept_versions("logreg") == [4, 5, 6]
    assert probe_scores(a) != good
    with pytest.raises(ModelError, match="no version 2"):
        registry.load("logreg", 2)  # a restore never reads a pinned copy: the label stream after it is not kept

    listing = models("versions", "logreg").splitlines()
    assert [line.split()[:3] for line in listing[1:5]] == [["v6", "yes", "500"], ["v5", "yes", "400"],
                                                          ["v4", "yes", "300"], ["v2", "yes", "100"]]
    assert listing[4][6:13].strip() == "" and listing[4][13:19].strip() == "yes"  # v2: pinned, not kept
    assert listing[1][6:13].strip() == "yes" and listing[1][13:19].strip() == ""  # v6: kept, not pinned
    rows = json.loads(models("list", "--json"))["models"]
    assert [row["pinned"] for row in rows if row["name"] == "logreg"] == [[2]]
    exported = tmp_path / "v2.fsmodel"
    assert "exported logreg v2" in models("export", "logreg", str(exported), "--version", "2")
    key = settings.model_signing_key.get_secret_value()
    assert [zoo.score_one(checkpoint.load_file(exported, key).model, x) for x in PROBES] == good

    assert models("rollback", "logreg", "v2").startswith("logreg v7 is v2 again (100 labels)")
    poll_now(a)  # the learner itself follows the new version, as every consumer does
    assert a.champion.base == 7 and probe_scores(a) == good
    assert registry.info("logreg").source == "rollback to v2"
    feed(a, labels(100, seed=3))  # learning goes on from the rolled-back model, without a conflict
    assert registry.latest_version("logreg") == 8 and registry.info("logreg").labels_learned == 200

    assert models("unpin", "logreg", "2") == "unpinned logreg v2\n"
    assert "logreg v2 is not pinned; pinned versions of logreg: none" in models("unpin", "logreg", "2", code=1)
    out = models("rollback", "logreg", "2", code=1)
    assert "'logreg' has no version 2 in the registry: it keeps v6, v7, v8 (the newest 3) and no pinned version" in out
    assert KEEP_VERSIONS == 3
    assert "'x2' is not a version (a number from 1, e.g. 12 or v12)" in models("rollback", "logreg", "x2", code=2)
    assert "no model named 'nosuch' in the registry; known models: logreg" in models("pin", "nosuch", code=1)
    assert "no model named 'nosuch'" in models("versions", "nosuch", code=1)
    a.close()


@pytest.mark.services
def test_a_version_that_does_not_verify_is_not_pinned(settings: Settings) -> None:
    a = live(settings)
    a.maintain()  # v1
    a.close()
    env = {"FRAUDSTREAM_REDIS_URL": settings.redis_url, "FRAUDSTREAM_REDIS_KEY_PREFIX": settings.redis_key_prefix,
           "FRAUDSTREAM_MODEL_SIGNING_KEY": "another key"}
    result = CliRunner().invoke(main, ["models", "pin", "logreg"], env=env)
    assert result.exit_code == 1 and "signature does not match" in result.output
    assert registry_for(settings).pinned.versions("logreg") == []


@pytest.mark.services
def test_import_is_refused_when_the_consumers_sign_with_another_key(settings: Settings, tmp_path: Path) -> None:
    """The CLI's key signs the file, but no published model verifies with it: the consumers use another
    key and would refuse the import (a challenger never loaded; a champion that stops new consumers)."""
    a = live(settings)  # the consumers' key: the settings' own
    a.maintain()  # logreg v1
    a.close()
    ours = "the CLI's key"
    path = checkpoint.save_file(tmp_path / "m.fsmodel", zoo.make_model("logreg_under"),
                                checkpoint.CheckpointInfo(name="cand", kind="logreg_under"), ours)
    env = {"FRAUDSTREAM_REDIS_URL": settings.redis_url, "FRAUDSTREAM_REDIS_KEY_PREFIX": settings.redis_key_prefix,
           "FRAUDSTREAM_MODEL_SIGNING_KEY": ours}
    refused = CliRunner().invoke(main, ["models", "import", str(path)], env=env)
    assert refused.exit_code == 1 and "were signed with another FRAUDSTREAM_MODEL_SIGNING_KEY" in refused.output
    registry = registry_for(settings)
    assert registry.latest_version("cand") == 0 and signing_key_matches(registry) is True  # with the consumers' key
    assert registry.hold_learner("a running consumer", 60_000) == 2
    forced = CliRunner().invoke(main, ["models", "import", str(path), "--force", "--pin", "--inactive"], env=env)
    assert forced.exit_code == 0 and forced.stdout.strip().endswith("cand v1 (logreg_under, 0 labels), inactive, pinned")
    assert registry.pinned.versions("cand") == [1]
    # with a consumer running, the forced import did not make its key look foreign: an import signed with it is taken
    theirs = settings.model_signing_key.get_secret_value()
    path = checkpoint.save_file(tmp_path / "theirs.fsmodel", zoo.make_model("logreg_under"),
                                checkpoint.CheckpointInfo(name="cand2", kind="logreg_under"), theirs)
    accepted = CliRunner().invoke(main, ["models", "import", str(path), "--inactive"],
                                  env={**env, "FRAUDSTREAM_MODEL_SIGNING_KEY": theirs})
    assert accepted.exit_code == 0, accepted.output
    assert signing_key_matches(registry) is True


@pytest.mark.services
def test_the_key_of_a_registry_without_models_is_the_first_consumers_or_imports(settings: Settings,
                                                                                tmp_path: Path) -> None:
    """Nothing published yet: a consumer that started has recorded its key (a fingerprint), so an
    import signed with another is refused; in a registry nobody used, the first import says that
    the consumers must use its key, and records it."""
    def import_signed_with(key: str, *args: str, prefix: str = settings.redis_key_prefix) -> object:
        path = checkpoint.save_file(tmp_path / f"{key}.fsmodel", zoo.make_model("logreg"),
                                    checkpoint.CheckpointInfo(name="cand", kind="logreg"), key)
        env = {"FRAUDSTREAM_REDIS_URL": settings.redis_url, "FRAUDSTREAM_REDIS_KEY_PREFIX": prefix,
               "FRAUDSTREAM_MODEL_SIGNING_KEY": key}
        return CliRunner().invoke(main, ["models", "import", str(path), "--inactive", *args], env=env)

    consumer = live(settings)  # a consumer records its key when it starts
    consumer.close()
    ours = settings.model_signing_key.get_secret_value()
    registry = registry_for(settings)
    assert registry.client.get(registry.key("signing_key")) == checkpoint.key_fingerprint(ours).encode()
    for name in registry.names():  # as if it had published nothing yet: only the recorded key tells
        registry.client.delete(registry.key("latest", name), registry.key("ckpt", name))
    assert signing_key_matches(registry) is True
    refused = import_signed_with("another key")
    assert refused.exit_code == 1 and "were signed with another FRAUDSTREAM_MODEL_SIGNING_KEY" in refused.output  # type: ignore[attr-defined]
    accepted = import_signed_with(ours)
    assert accepted.exit_code == 0 and "warning" not in accepted.output, accepted.output  # type: ignore[attr-defined]

    unused = f"{settings.redis_key_prefix}-unused"
    first = import_signed_with("key one", prefix=unused)
    assert first.exit_code == 0 and "warning: the first signed model in this registry: consumers must run with the same " \
        "FRAUDSTREAM_MODEL_SIGNING_KEY as this import (a key of your own)" in first.output, first.output  # type: ignore[attr-defined]
    second = import_signed_with("key two", prefix=unused)  # its models do not verify with it: refused
    assert second.exit_code == 1, second.output  # type: ignore[attr-defined]
    forced = import_signed_with("key two", "--force", prefix=unused)
    assert forced.exit_code == 0, forced.output  # type: ignore[attr-defined]
    again = import_signed_with("key two", prefix=unused)
    assert again.exit_code == 0 and "warning" not in again.output, again.output  # type: ignore[attr-defined]


@pytest.mark.services
def test_an_unloadable_challenger_is_logged_once_and_a_rollback_is_logged(settings: Settings,
                                                                           caplog: pytest.LogCaptureFixture) -> None:
    a = live(settings, checkpoint_every_labels=100, checkpoint_every_seconds=3600)
    a.maintain()  # v1
    feed(a, labels(100, seed=1))  # v2
    registry = registry_for(settings)
    foreign = checkpoint.dumps(zoo.make_model("htree"), checkpoint.CheckpointInfo(name="ht", kind="htree"), b"other")
    registry.publish_blob("ht", 1, foreign, "0-0")
    registry.add_challengers(["ht"])
    with caplog.at_level("INFO"):
        for _ in range(4):
            poll_now(a)
        registry.rollback("logreg", 1)
        poll_now(a)
    refusals = [r for r in caplog.records if r.getMessage().startswith("refused checkpoint ht")]
    assert len(refusals) == 1 and "ht" not in a.models
    assert sum("active model ht cannot be loaded" in r.getMessage() for r in caplog.records) == 1
    assert any(r.getMessage() == "loaded logreg v3 (rollback to v1)" for r in caplog.records)
    a.close()


@pytest.mark.services
def test_import_refuses_names_it_could_not_keep_apart(settings: Settings, tmp_path: Path) -> None:
    """A name FRAUDSTREAM_CHALLENGERS could not list, the zoo's name of another kind of model, and
    --promote with --inactive are refused; unpinning an unknown model says it is unknown."""
    key = settings.model_signing_key.get_secret_value()
    path = checkpoint.save_file(tmp_path / "lr.fsmodel", zoo.make_model("logreg"),
                                checkpoint.CheckpointInfo(name="lr", kind="logreg"), key)
    env = {"FRAUDSTREAM_REDIS_URL": settings.redis_url, "FRAUDSTREAM_REDIS_KEY_PREFIX": settings.redis_key_prefix,
           "FRAUDSTREAM_MODEL_SIGNING_KEY": key}

    def cli(*args: str) -> object:
        return CliRunner().invoke(main, ["models", *args], env=env)

    for bad in ("x,y", "with space", "a:b{c}", "-dash"):
        result = cli("import", str(path), "--name", bad)
        assert result.exit_code == 2 and "a model name is 1-64 letters" in result.output, result.output  # type: ignore[attr-defined]
    result = cli("import", str(path), "--name", "arf_under")
    assert result.exit_code == 1 and "arf_under is the name of a model of the zoo, and this checkpoint is of another " \
        "kind (logreg)" in result.output, result.output  # type: ignore[attr-defined]
    result = cli("import", str(path), "--inactive", "--promote")
    assert result.exit_code == 2 and "--promote makes it the champion" in result.output, result.output  # type: ignore[attr-defined]
    assert registry_for(settings).names() == []  # none of them imported anything
    result = cli("unpin", "nosuch", "1")
    assert result.exit_code == 1 and "no model named 'nosuch'" in result.output, result.output  # type: ignore[attr-defined]
    odd = checkpoint.save_file(tmp_path / "odd.fsmodel", zoo.make_model("logreg"),
                               checkpoint.CheckpointInfo(name="a,b", kind="logreg"), key)
    result = cli("import", str(odd))
    assert result.exit_code == 1 and "the name in the file, 'a,b', is not a model name" in result.output, result.output  # type: ignore[attr-defined]
    assert cli("import", str(odd), "--name", "lr.v2-b").exit_code == 0  # type: ignore[attr-defined]


@pytest.mark.services
def test_models_lists_a_checkpoint_that_does_not_verify_as_unknown(settings: Settings, tmp_path: Path) -> None:
    """Its learned labels are unknown ('?', not 0), the error is said under the table, and a long
    name keeps the columns aligned; `models --json` is `models list --json`."""
    path = checkpoint.save_file(tmp_path / "m.fsmodel", zoo.make_model("logreg"),
                                checkpoint.CheckpointInfo(name="a-rather-long-model-name", kind="logreg"), "key a")
    env = {"FRAUDSTREAM_REDIS_URL": settings.redis_url, "FRAUDSTREAM_REDIS_KEY_PREFIX": settings.redis_key_prefix}
    imported = CliRunner().invoke(main, ["models", "import", str(path)], env={**env, "FRAUDSTREAM_MODEL_SIGNING_KEY": "key a"})
    assert imported.exit_code == 0, imported.output
    listed = CliRunner().invoke(main, ["models"], env={**env, "FRAUDSTREAM_MODEL_SIGNING_KEY": "key b"})
    assert listed.exit_code == 0, listed.output
    header, row = listed.stdout.splitlines()[:2]
    assert row.split()[:6] == ["a-rather-long-model-name", "challenger", "1", "?", "?", "?"], row
    assert header.index("ROLE") == row.index("challenger") and row.endswith("unreadable (below)")
    assert "a-rather-long-model-name v1: checkpoint signature does not match" in listed.stdout
    assert "hint: the consumers sign with another FRAUDSTREAM_MODEL_SIGNING_KEY" in listed.stderr
    as_json = CliRunner().invoke(main, ["models", "--json"], env={**env, "FRAUDSTREAM_MODEL_SIGNING_KEY": "key a"})
    assert as_json.exit_code == 0, as_json.output
    assert [m["labels_learned"] for m in json.loads(as_json.stdout)["models"]] == [0]


@pytest.mark.services
def test_importing_a_backtests_checkpoint_says_up_to_when_it_learned(settings: Settings, tmp_path: Path) -> None:
    """Its live figures over transactions it learned the labels of would be optimistic: said, with the
    spans; a checkpoint that records none (live, imported) gets no such note."""
    key = settings.model_signing_key.get_secret_value()
    env = {"FRAUDSTREAM_REDIS_URL": settings.redis_url, "FRAUDSTREAM_REDIS_KEY_PREFIX": settings.redis_key_prefix,
           "FRAUDSTREAM_MODEL_SIGNING_KEY": key}
    spans = [["2018-04-01T00:00:31+00:00", "2018-05-07T23:59:40+00:00"]]
    outputs = []
    for source, extra in (("backtest", {"learned_spans": spans}), ("live", {"learned_spans": spans})):
        path = checkpoint.save_file(tmp_path / f"{source}.fsmodel", zoo.make_model("logreg"),
                                    checkpoint.CheckpointInfo(name="cand", kind="logreg", source=source, extra=extra), key)
        result = CliRunner().invoke(main, ["models", "import", str(path), "--name", f"from-{source}", "--inactive"],
                                    env=env)
        assert result.exit_code == 0, result.output
        outputs.append(result.stderr)
    assert "note: this checkpoint learned the labels of transactions up to 2018-05-07T23:59:40+00:00" in outputs[0]
    assert "learned the labels" not in outputs[1]  # a live version's header may carry an older backtest's spans
