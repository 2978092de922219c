"""`fraudstream demo`, the README's main job, as a user runs it: its own embedded servers, the
simulated producer and the scoring consumer in one command, a summary, and the servers stopped."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from fraudstream.constants import EMBEDDED_PRODUCER_LINGER_MS

CLI = Path(sys.executable).with_name("fraudstream")
SERVER_UP = re.compile(r"(tansu|valkey) is up on \S+ \(pid (\d+)\)")


def alive(pid: int, name: str) -> bool:
    """`pid` runs the server `name` (not a recycled PID; a zombie counts as stopped)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return name.encode() in cmdline and state != "Z"


@pytest.mark.services
def test_demo_scores_the_simulated_stream_and_stops_its_servers() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUDSTREAM_")}  # the embedded default
    proc = subprocess.Popen([str(CLI), "demo", "--transactions", "6000", "--rate", "2000", "--plain"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    output = ""
    left: list[str] = []
    try:
        output, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:  # a hung demo: SIGTERM lets it stop its servers, SIGKILL if that fails
            proc.terminate()
            try:
                output += proc.communicate(timeout=20)[0]
            except subprocess.TimeoutExpired:
                proc.kill()
                output += proc.communicate()[0]
        for name, pid in SERVER_UP.findall(output):  # servers the demo left running: the test stops them
            if alive(int(pid), name):
                left.append(name)
                os.kill(int(pid), signal.SIGKILL)
    assert proc.returncode == 0, output[-3000:]
    summary = json.loads(next(line for line in reversed(output.splitlines()) if line.startswith("{")))  # among the logs
    assert summary["processed"] == 6000 and summary["dead_lettered"] == 0
    # every transaction's label is sent a simulated day after it: the demo reads the last ones before it stops
    assert summary["labels_sent"] == 6000 and summary["labels_learned"] == 6000, summary
    assert summary["labels_dead_lettered"] == 0 and summary["labels_duplicate"] == 0
    servers = dict(SERVER_UP.findall(output))
    assert sorted(servers) == ["tansu", "valkey"]
    assert all(f"{name} stopped (pid {pid})" in output for name, pid in servers.items())
    assert left == []  # the demo stopped both itself
    assert "the embedded broker keeps every record" not in output  # 3 s of transactions: no such note
    # alerts carry the simulation's event times (from 2024-01-01), not the wall clock's
    alert_days = re.findall(r"^(\d{4}-\d\d-\d\d) \S+ ALERT", output, flags=re.M)
    assert alert_days and all(day.startswith("2024-01-0") for day in alert_days), output[-3000:]


@pytest.mark.services
@pytest.mark.parametrize("pasted_before", [False, True])
def test_up_prints_export_lines_to_paste_and_ctrl_c_stops_its_servers(pasted_before: bool) -> None:
    """Also in a shell holding the lines of an earlier `up` (its servers gone): new servers, and a note."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUDSTREAM_")}  # the embedded default
    if pasted_before:
        env.update(FRAUDSTREAM_KAFKA_BOOTSTRAP="127.0.0.1:1", FRAUDSTREAM_REDIS_URL="redis://:secret@127.0.0.1:1/0")
    proc = subprocess.Popen([str(CLI), "up", "--partitions", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    lines: list[str] = []
    try:
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout.readline() for _ in range(3)),  # type: ignore[union-attr]
                                  daemon=True)
        reader.start()
        reader.join(timeout=120)
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        _, errors = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert [line.split("=")[0] for line in lines] == ["export FRAUDSTREAM_KAFKA_BOOTSTRAP", "export FRAUDSTREAM_REDIS_URL",
                                                      "export FRAUDSTREAM_PRODUCER_LINGER_MS"], (lines, errors[-3000:])
    pasted = subprocess.run(["bash", "-c", "".join(lines) + 'echo "$FRAUDSTREAM_KAFKA_BOOTSTRAP $FRAUDSTREAM_REDIS_URL '
                             '$FRAUDSTREAM_PRODUCER_LINGER_MS"'],
                            capture_output=True, text=True, check=True, env=env).stdout.split()
    servers = dict(SERVER_UP.findall(errors))
    assert pasted[0].startswith("127.0.0.1:") and pasted[1].startswith("redis://127.0.0.1:") and pasted[2] == str(EMBEDDED_PRODUCER_LINGER_MS), pasted
    assert sorted(servers) == ["tansu", "valkey"] and proc.returncode == 0, errors[-3000:]
    assert not any(alive(int(pid), name) for name, pid in servers.items())
    assert ("kafka_bootstrap is set (127.0.0.1:1, from FRAUDSTREAM_KAFKA_BOOTSTRAP); not used" in errors) is pasted_before
    assert "secret" not in errors and ("redis_url is set (redis://:***@127.0.0.1:1/0" in errors) is pasted_before, errors[-3000:]
    assert pasted[0] != "127.0.0.1:1"


@pytest.mark.services
def test_up_says_when_one_of_its_servers_dies_and_stops_the_other() -> None:
    """It went on running without a word, and at Ctrl-C named only the server still alive (an
    operator's walk-through killed its Valkey)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUDSTREAM_")}
    proc = subprocess.Popen([str(CLI), "up", "--partitions", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    first: list[str] = []  # its stderr until both servers are up (each logs its pid)
    try:
        def read_until_up() -> None:
            while len(SERVER_UP.findall("".join(first))) < 2 and (line := proc.stderr.readline()):  # type: ignore[union-attr]
                first.append(line)
        reader = threading.Thread(target=read_until_up, daemon=True)
        reader.start()
        reader.join(timeout=120)
        valkey = int(dict(SERVER_UP.findall("".join(first)))["valkey"])
        os.kill(valkey, signal.SIGKILL)
        _, rest = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    errors = "".join(first) + rest
    servers = dict(SERVER_UP.findall(errors))
    assert proc.returncode == 1, errors[-3000:]
    assert f"error: valkey (pid {valkey}) exited with code -9; stopping the other servers" in errors, errors[-3000:]
    assert not alive(int(servers["tansu"]), "tansu")


def test_a_producer_that_fails_stops_the_demo_with_its_error() -> None:
    """The consumer would otherwise wait for transactions that never come (until Ctrl-C)."""
    import threading

    from fraudstream.cli.demo import _ProducerThread
    from fraudstream.config import Settings

    ready, stop = threading.Event(), threading.Event()
    ready.set()
    producer = _ProducerThread(settings=Settings(), count=10, rate=-1.0, seed=1, label_delay=None, stop=stop,
                               clock="simulated", ready=ready)
    producer.start()
    producer.join(timeout=30)
    assert stop.is_set() and "rate must be positive" in str(producer.error)


class FakeProducer:
    """A producer thread as the drain sees it: alive until `finish(labels)`."""

    def __init__(self) -> None:
        self.alive, self.result = True, None

    def is_alive(self) -> bool:
        return self.alive

    def finish(self, labels: int) -> None:
        from types import SimpleNamespace

        self.result, self.alive = SimpleNamespace(labels=labels), False


def test_the_drain_stops_once_every_label_sent_is_read_or_none_comes() -> None:
    import threading
    import time

    from fraudstream.cli.demo import _stop_when_labels_read
    from fraudstream.stream.stats import RunStats

    stats, producer, stop = RunStats(), FakeProducer(), threading.Event()
    drain = threading.Thread(target=_stop_when_labels_read, args=(stats, producer, stop, 2.0))
    drain.start()
    stats.labels_learned, stats.labels_duplicate = 5, 3  # duplicates are labels read again, not more labels
    producer.finish(labels=8)
    time.sleep(0.5)
    assert not stop.is_set()  # 5 of the 8 read
    stats.labels_learned, stats.labels_dead_lettered = 7, 1
    drain.join(timeout=2)
    assert stop.is_set() and not drain.is_alive()

    stats, producer, stop = RunStats(), FakeProducer(), threading.Event()  # the producer waits for a late label
    began = time.monotonic()
    _stop_when_labels_read(stats, producer, stop, 0.5)
    assert stop.is_set() and 0.5 <= time.monotonic() - began < 2.0
    stop = threading.Event()
    stop.set()  # Ctrl-C, or the producer failed: at once
    began = time.monotonic()
    _stop_when_labels_read(stats, FakeProducer(), stop, 60.0)
    assert time.monotonic() - began < 1.0


def test_without_a_terminal_the_last_frame_ends_with_a_newline() -> None:
    """Piped, rich ends the dashboard's last frame without one: the summary was glued to its border."""
    import contextlib
    import io
    import threading
    from types import SimpleNamespace

    from fraudstream.cli.demo import live_dashboard

    class Frame:
        app, status = None, ""

        def __rich__(self) -> str:
            return "╰──╯"

    out = io.StringIO()
    app = SimpleNamespace(stop=threading.Event(), assigned=threading.Event())
    with contextlib.redirect_stdout(out):
        with live_dashboard(Frame(), app):  # type: ignore[arg-type]
            pass
        print("{}")
    app.stop.set()
    assert out.getvalue().endswith("╰──╯\n{}\n"), repr(out.getvalue())


def test_rates_speeds_and_scales_must_be_finite_numbers() -> None:
    from click.testing import CliRunner

    from fraudstream.cli import main

    for args, message in ((["demo", "--rate", "0"], "'0' is not a finite number > 0"),
                          (["produce", "--rate", "nan"], "'nan' is not a finite number > 0"),
                          (["replay", "x.csv", "--speed", "inf"], "'inf' is not a finite number > 0"),
                          (["record", "--out", "x.csv", "--days", "1", "--fraud-scale", "-1"], "'-1' is not a finite number >= 0"),
                          (["record", "--out", "x.csv", "--days", "1", "--seed", "-1"], "seed: Input should be greater than or equal to 0")):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2 and message in result.output, (args, result.output)


@pytest.mark.services
def test_a_demo_on_servers_from_the_environment_says_so_and_why_a_second_one_is_dead_lettered(settings) -> None:  # type: ignore[no-untyped-def]
    """A second demo into the same servers restarts its simulated clock at 2024-01-01, behind the
    first one's event times: its transactions are too late. It says which servers it used and why."""
    from tests.consumer_procs import env_for

    env = env_for(settings)
    runs = []
    for _ in range(2):
        result = subprocess.run([str(CLI), "demo", "--transactions", "1000", "--rate", "2000", "--plain"], env=env,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr[-3000:]
        runs.append((json.loads(result.stdout.strip().splitlines()[-1]), result.stderr))
    (first, first_err), (second, second_err) = runs
    using = f"using the Kafka broker at {settings.kafka_bootstrap} (FRAUDSTREAM_KAFKA_BOOTSTRAP) and Redis at "
    assert using in first_err and using in second_err
    assert first["dead_lettered"] == 0 and "were dead-lettered" not in first_err
    assert second["dead_lettered"] > second["processed"]
    assert f"Warning: {second['dead_lettered']:,} of 1,000 transactions were dead-lettered" in second_err
