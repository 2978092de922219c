"""What `models promote` and `models import` tell about the models the consumers switch to: a new
champion that has not learned enough to alert, a version an import replaces."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from fraudstream.cli import main
from fraudstream.config import Settings
from fraudstream.models import checkpoint, zoo
from fraudstream.models.checkpoint import CheckpointInfo
from tests.test_lifecycle import labels

WARNING = "the consumers send no alert until the champion has learned 100 with a fraud among them"


def saved(settings: Settings, path: Path, n_labels: int) -> Path:
    """A logreg checkpoint that learned `n_labels` labels (a tenth of them frauds)."""
    model = zoo.make_model("logreg", seed=1)
    items = labels(n_labels, seed=1)
    for x, y in items:
        model.learn_one(x, y)
    info = CheckpointInfo(name="logreg", kind="logreg", labels_learned=n_labels,
                          frauds_learned=sum(y for _, y in items), source="backtest")
    return checkpoint.save_file(path, model, info, settings.model_signing_key.get_secret_value())


def _setup(settings: Settings, tmp_path: Path) -> tuple[dict[str, str], CliRunner, Path, Path]:
    """The CLI's environment for this registry, a runner, and checkpoints of 300 and of 0 labels."""
    env = {"FRAUDSTREAM_REDIS_URL": settings.redis_url, "FRAUDSTREAM_REDIS_KEY_PREFIX": settings.redis_key_prefix}
    learned, fresh = saved(settings, tmp_path / "learned.fsmodel", 300), saved(settings, tmp_path / "fresh.fsmodel", 0)
    return env, CliRunner(), learned, fresh


@pytest.mark.services
def test_promoting_a_model_still_warming_up_warns(settings: Settings, tmp_path: Path) -> None:
    env, runner, learned, fresh = _setup(settings, tmp_path)
    result = runner.invoke(main, ["models", "import", str(learned), "--name", "old", "--promote"], env=env)
    assert result.exit_code == 0 and "champion" in result.output and WARNING not in result.output, result.output
    for args in (["import", str(fresh), "--name", "new"], ["promote", "new"]):
        result = runner.invoke(main, ["models", *args], env=env)
        assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "champion: new (was old" in said and f"new v1 has learned 0 labels (0 frauds): {WARNING}" in said, said
    assert "to undo: `fraudstream models promote old`" in said, said
    result = runner.invoke(main, ["models", "promote", "old"], env=env)  # learned: promoted without a word
    assert result.exit_code == 0 and WARNING not in result.output, result.output
    result = runner.invoke(main, ["models", "import", str(fresh), "--name", "newer", "--promote"], env=env)
    said = " ".join(result.output.split())
    assert result.exit_code == 0 and f"newer v1 has learned 0 labels (0 frauds): {WARNING}" in said, said
    result = runner.invoke(main, ["models", "promote", "new"], env={**env, "FRAUDSTREAM_ALERT_WARMUP_LABELS": "0"})
    assert result.exit_code == 0 and WARNING not in result.output, result.output


@pytest.mark.services
def test_an_import_says_which_version_it_replaces(settings: Settings, tmp_path: Path) -> None:
    env, runner, learned, fresh = _setup(settings, tmp_path)
    first = runner.invoke(main, ["models", "import", str(learned), "--name", "m", "--inactive"], env=env)
    assert first.exit_code == 0 and "replaces" not in first.output, first.output  # a new name: nothing replaced
    second = runner.invoke(main, ["models", "import", str(fresh), "--name", "m", "--inactive"], env=env)
    said = " ".join(second.output.split())
    assert second.exit_code == 0 and "as m v2 (logreg, 0 labels)" in said, said
    assert "note: m v2 replaces v1 (300 labels learned, import)" in said, said
    assert "`fraudstream models rollback m 1` undoes it" in said, said
