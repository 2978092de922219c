from __future__ import annotations

from datetime import timedelta

import pytest
from click.testing import CliRunner

from fraudstream.cli import main
from fraudstream.config import Settings


def test_env_vars_and_durations(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUDSTREAM_LABEL_DELAY", "36h")
    monkeypatch.setenv("FRAUDSTREAM_GROUP_ID", "g-env")
    settings = Settings()
    assert settings.label_delay == timedelta(hours=36)
    assert settings.group_id == "g-env"


def test_max_future_skew_none_means_no_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the future skew takes "none" (a simulated clock may run ahead of the wall clock)."""
    from fraudstream.errors import ConfigError

    monkeypatch.setenv("FRAUDSTREAM_MAX_FUTURE_SKEW", "None")
    assert Settings().max_future_skew is None
    monkeypatch.setenv("FRAUDSTREAM_MAX_FUTURE_SKEW", "2d")
    assert Settings().max_future_skew == timedelta(days=2)
    monkeypatch.setenv("FRAUDSTREAM_LABEL_DELAY", "none")
    with pytest.raises(ConfigError, match="not a duration"):
        Settings()


def test_secrets_never_in_repr() -> None:
    settings = Settings(redis_url="redis://:s3cret@h:1/0", kafka_sasl_password="pw-123", redis_password="rpw")
    text = repr(settings) + str(settings)
    for secret in ("s3cret", "pw-123", "rpw"):
        assert secret not in text


def test_help_shows_env_vars() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "[env: FRAUDSTREAM_KAFKA_BOOTSTRAP]" in result.output
    assert "[env: FRAUDSTREAM_REDIS_URL]" in result.output
