"""Where the long commands draw their progress bars, run as a script runs them (pipes, not a terminal):
stdout holds only the command's summary line; with ``--log-format json`` every line of stderr is JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CLI = str(Path(sys.executable).parent / "fraudstream")


def run(*args: str, log_format: str = "text") -> tuple[str, str]:
    proc = subprocess.run([CLI, "--log-format", log_format, *args], capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("progress") / "small.jsonl"
    stdout, stderr = run("record", "--days", "12", "--customers", "60", "--terminals", "120", "--out", str(path))
    summary_only(stdout)
    assert "record day" in stderr  # the bar's last frame, on stderr
    return path


def summary_only(stdout: str) -> dict[str, object]:
    """stdout is one line, a JSON object (`fraudstream record ... | jq .transactions`)."""
    lines = stdout.splitlines()
    assert len(lines) == 1, stdout[-2000:]
    summary = json.loads(lines[0])
    assert isinstance(summary, dict), lines[0]
    return summary


def json_lines_only(stderr: str) -> None:
    for line in stderr.splitlines():
        if line.strip():
            assert isinstance(json.loads(line), dict), line


@pytest.mark.parametrize("command", ["features", "backtest"])
def test_the_bar_goes_to_stderr_and_stdout_keeps_the_summary(recorded: Path, tmp_path: Path, command: str) -> None:
    args = ["features", str(recorded), "--out", str(tmp_path / "f.csv")] if command == "features" else \
        ["backtest", str(recorded), "--eval-start", "2024-01-05", "--model", "logreg"]
    stdout, stderr = run(*args)
    if command == "features":
        assert summary_only(stdout)["transactions"]
        assert "event 2024-" in stderr  # the spinner's last frame: its progress, even for a small file
    else:
        assert "auc_roc" in stdout and "backtest" in stderr


@pytest.mark.parametrize("command", ["record", "features", "backtest"])
def test_no_bar_among_json_logs(recorded: Path, tmp_path: Path, command: str) -> None:
    args = {"record": ["record", "--days", "3", "--customers", "20", "--terminals", "40", "--out", str(tmp_path / "r.jsonl")],
            "features": ["features", str(recorded), "--out", str(tmp_path / "f.csv")],
            "backtest": ["backtest", str(recorded), "--eval-start", "2024-01-05", "--model", "logreg"]}[command]
    stdout, stderr = run(*args, log_format="json")
    json_lines_only(stderr)
    assert stderr.strip() or command != "backtest"  # the backtest logs its replay: JSON lines were written
    if command != "backtest":
        summary_only(stdout)


@pytest.mark.services
def test_with_json_logs_the_commands_notes_and_errors_are_json_lines_too(recorded: Path, settings) -> None:  # type: ignore[no-untyped-def]
    """`replay`'s warning that nothing is in its window, and a command's one-line error, were plain
    text among the JSON lines (a walk-through)."""
    from fraudstream.kafka_io import ensure_topics
    from tests.consumer_procs import env_for

    ensure_topics(settings)
    env = env_for(settings)
    late = subprocess.run([CLI, "--log-format", "json", "replay", str(recorded), "--start", "2030-01-01"], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert late.returncode == 0, late.stderr[-3000:]
    json_lines_only(late.stderr)
    assert any("no transaction" in json.loads(line)["message"] and json.loads(line)["level"] == "WARNING"
               for line in late.stderr.splitlines() if line.strip()), late.stderr
    # a note at INFO (dead-letters' count) is shown whatever the log level, as in text
    counted = subprocess.run([CLI, "--log-format", "json", "--log-level", "WARNING", "dead-letters"], env=env,
                             capture_output=True, text=True, timeout=120, check=False)
    assert counted.returncode == 0, counted.stderr[-3000:]
    json_lines_only(counted.stderr)
    assert any("dead letters read" in json.loads(line)["message"] for line in counted.stderr.splitlines()), counted.stderr
    failed = subprocess.run([CLI, "--log-format", "json", "models"], capture_output=True, text=True, timeout=60,
                            check=False, env={**env, "FRAUDSTREAM_REDIS_URL": "redis://127.0.0.1:1/0"})
    assert failed.returncode == 1, failed.stderr[-3000:]
    json_lines_only(failed.stderr)
    assert json.loads(failed.stderr.strip().splitlines()[-1])["message"].startswith("cannot reach Redis"), failed.stderr


def test_with_json_logs_a_usage_error_is_one_json_line_with_status_2(recorded: Path) -> None:
    """Click's usage text (Usage:, Try ..., Error: ...) would break a reader of JSON lines."""
    for args, message, env in (
            (["replay", str(recorded), "--bogus"], "No such option '--bogus'. (see `fraudstream replay --help`)", {}),
            (["models", "promote"], "Missing argument 'NAME'. (see `fraudstream models promote --help`)", {}),
            (["bogus"], "No such command 'bogus'. (see `fraudstream --help`)", {}),  # before any command
            (["--bogus", "record"], "No such option '--bogus'. (see `fraudstream --help`)", {}),  # the group's own
            # settings that did not load (here, one record does not use), so logging was not set up by them
            (["record", "--bogus"], "No such option '--bogus'. Did you mean '--out'? (see `fraudstream record --help`)",
             {"FRAUDSTREAM_REDIS_URL": "ftp://cache:6379"})):
        result = subprocess.run([CLI, "--log-format", "json", *args], capture_output=True, text=True, timeout=60,
                                check=False, env={**os.environ, **env})
        assert result.returncode == 2 and result.stdout == "", result
        json_lines_only(result.stderr)
        lines = [json.loads(line) for line in result.stderr.splitlines()]
        assert [(line["level"], line["message"]) for line in lines] == [("ERROR", message)], result.stderr
    text = subprocess.run([CLI, "replay", str(recorded), "--bogus"], capture_output=True, text=True, timeout=60, check=False)
    assert text.returncode == 2 and text.stderr.startswith("Usage: fraudstream replay"), text.stderr  # as before


def test_the_backtest_bar_ends_at_the_transactions_replayed(recorded: Path) -> None:
    """Reading stops after --eval-end (and starts at --start): the bar's last frame counts what was
    replayed, not the file's rows."""
    rows = sum(1 for line in recorded.read_text().splitlines() if line.strip())
    proc = subprocess.run([CLI, "backtest", str(recorded), "--start", "2024-01-02", "--eval-start", "2024-01-05",
                           "--eval-end", "2024-01-08", "--model", "logreg"], capture_output=True, text=True,
                          timeout=300, check=False, env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    replayed = summary_only(proc.stdout)["n_processed"]
    assert isinstance(replayed, int) and 0 < replayed < rows
    last_frame = proc.stderr.replace("\r", "\n").split("replayed ")[-1]
    assert f"{replayed}/{replayed}" in last_frame and f"/{rows}" not in proc.stderr, proc.stderr[-2000:]
