"""`fraudstream demo`, the README's main job, as a user runs it: its own embedded servers, the
simulated producer and the scoring consumer in one command, a summary, and the servers stopped."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

CLI = Path(sys.executable).with_name("fraudstream")
SERVER_UP = re.compile(r"(tansu|valkey) is up on \S+ \(pid (\d+)\)")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.services
def test_demo_scores_the_simulated_stream_and_stops_its_servers() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUDSTREAM_")}  # the embedded default
    proc = subprocess.Popen([str(CLI), "demo", "--transactions", "6000", "--rate", "2000", "--plain"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    output = ""
    try:
        output, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            output += proc.communicate()[0]
        servers = {name: int(pid) for name, pid in SERVER_UP.findall(output)}
        for pid in servers.values():  # a demo that failed to stop them: the test does, by PID
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert proc.returncode == 0, output[-3000:]
    summary = json.loads(output.split("summary ", 1)[1].splitlines()[0])
    assert summary["processed"] == 6000 and summary["dead_lettered"] == 0
    # one simulated day of label delay (~2,200 transactions): the labels of the first ~3,800 arrive
    assert summary["labels_learned"] > 1000 and summary["labels_dead_lettered"] == 0
    assert sorted(servers) == ["tansu", "valkey"]
    assert all(f"{name} stopped (pid {pid})" in output for name, pid in servers.items())
    assert not any(alive(pid) for pid in servers.values())
    # alerts carry the simulation's event times (from 2024-01-01), not the wall clock's
    alert_days = re.findall(r"^(\d{4}-\d\d-\d\d) \S+ ALERT", output, flags=re.M)
    assert all(day.startswith("2024-01-0") for day in alert_days)
