"""A model the learner can no longer checkpoint (a model of your own that learned a lambda): the
label stream stays bounded behind it, the failure is retried, logged at each attempt and shown by
`fraudstream models`, on the real Redis. Before, the stream was never trimmed past its last
version again: 2,000 labels kept 2,000 entries, against ~200 with the same champion alone. And a
model whose position the stream was trimmed past is warned of when the learner loads it."""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner

from fraudstream.cli import main
from fraudstream.config import Settings
from fraudstream.models import checkpoint, zoo
from fraudstream.stream.label_stream import stream_id
from fraudstream.stream.registry import ModelRegistry, registry_for
from fraudstream.stream.scoring import Scorer
from tests import test_custom_model
from tests.test_lifecycle import feed, labels, live

own_module = test_custom_model.own_module  # the fixture: a module of the user's, by a name of this test's

KEEP = timedelta(seconds=0.3)  # the stream kept behind a failing model in these tests (1 hour by default)


def import_forgetful(settings: Settings, module: str, tmp_path: Path, *flags: str) -> str:
    """Import the user's model that pickles fresh but not once it has learned a label; its name."""
    spec, name = f"{module}:forgetful", f"{module}.forgetful"
    saved = checkpoint.save_file(tmp_path / "f.fsmodel", zoo.make_model(spec), checkpoint.CheckpointInfo(
        name=name, kind=spec, labels_learned=500, frauds_learned=50, source="backtest"),
        settings.model_signing_key.get_secret_value())
    result = CliRunner().invoke(main, ["models", "import", str(saved), *flags], env=cli_env(settings))
    assert result.exit_code == 0, result.output
    return name


def cli_env(settings: Settings) -> dict[str, str]:
    return {"FRAUDSTREAM_REDIS_URL": settings.redis_url or "",
            "FRAUDSTREAM_REDIS_KEY_PREFIX": settings.redis_key_prefix}


@contextmanager
def logged() -> Iterator[list[logging.LogRecord]]:
    """The records of `fraudstream.stream.publish_failures` (a handler of its own: the CLI's logging
    set up in this process does not propagate)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("fraudstream.stream.publish_failures")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def feed_slowly(scorer: Scorer, rounds: int) -> None:
    """`rounds` of 100 labels, 100 ms apart: the stream's ids are times, and `KEEP` spans 3 rounds."""
    for i in range(rounds):
        feed(scorer, labels(100, seed=i))
        time.sleep(0.1)


def scraped(scorer: Scorer) -> str:
    """The learner's Prometheus metrics (its stats aside)."""
    from types import SimpleNamespace

    from fraudstream.stream.metrics import ConsumerCollector, exposition, model_view
    from fraudstream.stream.stats import RunStats

    app = SimpleNamespace(scorer=scorer)  # what `model_view` reads of a consumer
    return exposition(ConsumerCollector(RunStats, lambda: model_view(app)))  # type: ignore[arg-type]


def stream_length(registry: ModelRegistry) -> int:
    return int(registry.client.xlen(registry.key("labels")))


@pytest.mark.services
def test_the_label_stream_is_trimmed_past_a_challenger_that_cannot_be_checkpointed(
        own_module: str, settings: Settings, tmp_path: Path) -> None:
    name = import_forgetful(settings, own_module, tmp_path)
    scorer = live(settings, checkpoint_every_labels=100, checkpoint_every_seconds=3600,
                  label_stream_kept_for_unpublishable=KEEP)
    registry = registry_for(settings)
    try:
        assert sorted(scorer.models) == sorted(["logreg", name]) and scorer.lifecycle is not None
        with logged() as records:
            feed_slowly(scorer, 20)
        # 2,000 labels: the champion's 3 kept versions need ~200 entries, and the failing model's
        # versions no longer hold the rest back (before: 2,000 entries)
        assert stream_length(registry) <= 300, stream_length(registry)
        first = registry.client.xrange(registry.key("labels"), count=1)[0][0]
        kept = [p.decode() for p in registry.client.hvals(registry.key("pos", "logreg"))]
        assert stream_id(first) <= min(map(stream_id, kept))  # logreg's oldest kept version still replays
        messages = [r.getMessage() for r in records]
        errors = [m for m in messages if "can no longer be checkpointed" in m]
        assert len(errors) == 1 and "(attempt 1," in errors[0] and "stays v1 (a challenger; a restart loads v1)" in \
            errors[0] and "cannot be pickled" in errors[0] and "tries again in 3600 s" in errors[0], errors
        trimmed = [m for m in messages if "trimmed past" in m]
        assert trimmed == [f"the label stream is trimmed past what {name} v1 learned (it could not be checkpointed "
                           "for 0.3 s of labels): a restart, which loads v1, will not learn the labels in between"]
        listed = CliRunner().invoke(main, ["models", "list", "--json"], env=cli_env(settings))
        row = {r["name"]: r for r in json.loads(listed.stdout)["models"]}[name]
        assert row["not_checkpointed"]["attempts"] == 1 and row["not_checkpointed"]["version"] == 1
        assert row["not_checkpointed"]["label_stream_trimmed_past"] is True
        assert "logreg" in {r["name"] for r in json.loads(listed.stdout)["models"]}
        table = CliRunner().invoke(main, ["models"], env=cli_env(settings)).stdout
        assert f"{name}: cannot be checkpointed for " in table and "so its newest version stays v1 (a restart loads " \
            "it); the label stream is trimmed past v1: a restart will not learn the labels since" in table, table
        assert "import (cannot be checkpointed: below)" in table, table
    finally:
        scorer.close()
    with logged() as records:  # a restart loads v1, and says what it cannot replay
        again = live(settings, checkpoint_every_labels=100, checkpoint_every_seconds=3600)
        again.close()
    assert any(r.getMessage().startswith(f"model {name} v1 learned the label stream up to entry 0-0, but the stream "
                                         "was trimmed") for r in records), [r.getMessage() for r in records]
    assert registry.publish_failures.get(name) is not None
    assert CliRunner().invoke(main, ["models", "retire", name], env=cli_env(settings)).exit_code == 0
    assert registry.publish_failures.get(name) is None  # no learner tries it any more


@pytest.mark.services
def test_within_the_kept_span_a_restart_replays_what_the_failing_model_learned(
        own_module: str, settings: Settings, tmp_path: Path) -> None:
    name = import_forgetful(settings, own_module, tmp_path)
    first = live(settings, checkpoint_every_labels=100, checkpoint_every_seconds=3600)
    feed_slowly(first, 10)  # the default span, 1 hour: nothing trimmed past it
    first.close()
    registry = registry_for(settings)
    assert stream_length(registry) == 1000 and registry.latest_version(name) == 1
    assert registry.publish_failures.get(name) is not None
    table = CliRunner().invoke(main, ["models"], env=cli_env(settings)).stdout
    assert "the label stream is kept after v1 for up to 1h00m of labels, then trimmed" in table, table
    with logged() as records:
        second = live(settings, checkpoint_every_labels=100, checkpoint_every_seconds=3600)
    assert not [r for r in records if "was trimmed" in r.getMessage()]  # v1 learned up to 0-0: nothing was trimmed
    try:
        model = second.models[name]
        assert model.base == 1 and model.local_labels == 1000  # v1 restored, the 1,000 labels replayed
    finally:
        second.close()


@pytest.mark.services
def test_a_champion_alone_that_cannot_be_checkpointed_still_lets_the_stream_be_trimmed(
        own_module: str, settings: Settings, tmp_path: Path) -> None:
    """Nothing is published at all: the trim that followed publications never ran."""
    name = import_forgetful(settings, own_module, tmp_path, "--promote")
    scorer = live(settings, checkpoint_every_labels=100, checkpoint_every_seconds=3600,
                  label_stream_kept_for_unpublishable=KEEP)
    registry = registry_for(settings)
    try:
        assert list(scorer.models) == [name] and scorer.lifecycle is not None
        with logged() as records:
            feed_slowly(scorer, 20)
            scorer.lifecycle.publisher.next_trim = 0  # the last trim was up to a second ago
            assert scorer.lifecycle.publish_due(scorer) == 0
        # of 2,000: those of the last 3 rounds (the ids of 300 ms) and the entry before (before: all of them)
        assert stream_length(registry) <= 400, stream_length(registry)
        assert any("stays v1 (the champion: the other consumers go on scoring with v1; a restart loads v1)" in
                   r.getMessage() for r in records), [r.getMessage() for r in records]
    finally:
        scorer.close()


@pytest.mark.services
def test_a_failing_model_is_tried_again_with_a_backoff_and_published_once_it_can_be(
        own_module: str, settings: Settings, tmp_path: Path) -> None:
    name = import_forgetful(settings, own_module, tmp_path)
    scorer = live(settings, checkpoint_every_labels=100)  # retried after 30 s, 60 s, ...
    registry = registry_for(settings)
    try:
        assert scorer.lifecycle is not None
        with logged() as records:
            feed(scorer, labels(100))
            now = time.monotonic()
            assert scorer.lifecycle.publish_due(scorer, now=now + 10) == 0  # not due again yet
            assert scorer.lifecycle.publish_due(scorer, now=now + 31) == 0  # due, and fails again
            assert "fraudstream_models_not_checkpointed 1.0" in scraped(scorer)
            assert registry.publish_failures.get(name).attempts == 2  # type: ignore[union-attr]
            scorer.models[name].model.last = None  # its lambda gone: it pickles again
            assert scorer.lifecycle.publish_due(scorer, now=now + 60) == 0  # the next attempt after 60 s
            assert scorer.lifecycle.publish_due(scorer, now=now + 95) >= 1
        messages = [r.getMessage() for r in records]
        assert [m.split(" (attempt ")[1][:2] for m in messages if "can no longer be checkpointed" in m] == ["1,", "2,"]
        assert any("tries again in 60 s" in m for m in messages), messages
        assert f"model {name} is checkpointed again (v2)" in messages, messages
        assert registry.latest_version(name) == 2 and registry.publish_failures.get(name) is None
        assert scorer.lifecycle.failing.positions(scorer) == {}
        assert "fraudstream_models_not_checkpointed 0.0" in scraped(scorer)
    finally:
        scorer.close()


@pytest.mark.services
def test_a_challenger_added_again_after_the_stream_was_trimmed_past_it_is_warned_of(settings: Settings) -> None:
    """Retired, its versions no longer count in the trim; added again, it learns on from the oldest
    entry kept. That gap was silent."""
    from tests.test_lifecycle import poll_now

    scorer = live(settings, checkpoint_every_labels=100, checkpoint_every_seconds=3600, challengers=("logreg_under",))
    registry = registry_for(settings)
    try:
        scorer.maintain()
        feed(scorer, labels(300))
        learned = scorer.models["logreg_under"].position
        registry.retire("logreg_under")
        poll_now(scorer)
        assert list(scorer.models) == ["logreg"]
        for i in range(5):
            feed(scorer, labels(100, seed=i + 1))
        first = registry.labels.trimmed_start()
        assert first is not None and stream_id(first) > stream_id(learned)  # trimmed past what it learned
        version = registry.latest_version("logreg_under")  # what adding it again loads
        registry.add_challengers(["logreg_under"])
        with logged() as records:
            poll_now(scorer)
            poll_now(scorer)  # once
        assert [r.getMessage() for r in records if r.levelno >= logging.WARNING] == [
            f"model logreg_under v{version} learned the label stream up to entry {learned}, but the stream was "
            f"trimmed and now starts at {first} (the model was retired meanwhile, or could not be checkpointed): "
            "it learns on from there, without the labels in between"]
    finally:
        scorer.close()


@pytest.mark.services
def test_a_consumer_that_loses_the_learner_role_forgets_the_models_it_could_not_checkpoint(
        own_module: str, settings: Settings, tmp_path: Path) -> None:
    """Its models are reloaded from the registry and another consumer learns and publishes: it no
    longer counts a model as not checkpointed (the gauge is of "this consumer, as the learner"), and
    on taking the role again it tries each model at once, not after the old backoff."""
    name = import_forgetful(settings, own_module, tmp_path)
    scorer = live(settings, checkpoint_every_labels=100, checkpoint_every_seconds=3600)
    registry = registry_for(settings)
    try:
        assert scorer.lifecycle is not None
        feed(scorer, labels(100))
        assert "fraudstream_models_not_checkpointed 1.0" in scraped(scorer)
        registry.release_learner(scorer.lifecycle.owner)
        assert registry.hold_learner("another consumer", 60_000) == 2
        scorer.lifecycle._next_poll = 0
        scorer.maintain()
        assert not scorer.lifecycle.is_learner and scorer.models[name].base == 1
        assert scorer.lifecycle.failing.positions(scorer) == {}
        assert "fraudstream_models_not_checkpointed 0.0" in scraped(scorer)
        assert scorer.lifecycle.failing.due(name, time.monotonic())
    finally:
        registry.release_learner("another consumer")
        scorer.close()


@pytest.mark.services
def test_a_failing_challenger_retired_and_added_again_is_tried_at_once(
        own_module: str, settings: Settings, tmp_path: Path) -> None:
    """Retired, its failures are forgotten (the registry's record too): added again, it is loaded
    afresh and tried at the next publication, not held back by the old backoff (an hour here). It
    learns the stream again, and with it its lambda: it fails again, recorded as a first attempt."""
    from tests.test_lifecycle import poll_now

    name = import_forgetful(settings, own_module, tmp_path)
    scorer = live(settings, checkpoint_every_labels=100, checkpoint_every_seconds=3600)
    registry = registry_for(settings)
    try:
        assert scorer.lifecycle is not None
        feed(scorer, labels(100))
        assert name in scorer.lifecycle.failing.positions(scorer)
        registry.retire(name)
        poll_now(scorer)
        assert registry.publish_failures.get(name) is None
        registry.add_challengers([name])
        poll_now(scorer)
        assert name in scorer.models
        failure = registry.publish_failures.get(name)
        assert failure is not None and failure.attempts == 1, failure  # tried again at once
    finally:
        scorer.close()
