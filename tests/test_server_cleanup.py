"""The embedded servers do not outlive a `demo` or `up` killed with -9, nor do their files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fraudstream.services import remove_stale_files

STARTER = """
import sys, time
from fraudstream.services import valkey_process
server = valkey_process()
server.start()
print(server.pid, server.workdir, server.log_path, flush=True)
time.sleep(600)
"""


def gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux's")
def test_a_server_stops_when_the_process_that_started_it_is_killed(tmp_path: Path) -> None:
    # its files in a directory of the test's own: other fraudstream processes' starts sweep /tmp
    starter = subprocess.Popen([sys.executable, "-c", STARTER], stdout=subprocess.PIPE, text=True,
                               start_new_session=True, env={**os.environ, "TMPDIR": str(tmp_path)})
    server_pid = None
    try:
        line = starter.stdout.readline().split()  # type: ignore[union-attr]
        assert len(line) == 3, "the starter printed no server"
        server_pid, workdir, log_path = int(line[0]), Path(line[1]), Path(line[2])
        assert not gone(server_pid, 0.2) and workdir.is_dir() and log_path.exists()
        assert workdir.parent == log_path.parent == tmp_path
        os.kill(starter.pid, signal.SIGKILL)
        starter.wait(10)
        assert gone(server_pid, 10), f"valkey {server_pid} outlived the process that started it"
        server_pid = None
        # its files are left (nothing ran in the killed process) until the next start removes them
        assert workdir.is_dir() and log_path.exists()
        removed = remove_stale_files(log_path.parent)
        assert workdir in removed and log_path in removed and not workdir.exists() and not log_path.exists()
    finally:
        if starter.poll() is None:
            starter.kill()
            starter.wait(10)
        if server_pid is not None and not gone(server_pid, 0):
            os.kill(server_pid, signal.SIGKILL)


def test_only_files_of_processes_that_no_longer_run_are_removed(tmp_path: Path) -> None:
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    mine = tmp_path / f"fraudstream-tansu-{os.getpid()}-abc.log"
    stale_log = tmp_path / f"fraudstream-tansu-{ended.pid}-abc.log"
    stale_dir = tmp_path / f"fraudstream-valkey-{ended.pid}-xyz"
    other = tmp_path / "fraudstream-report-1-x.html"  # not a server's
    for path in (mine, stale_log, other):
        path.write_text("x")
    stale_dir.mkdir()
    (stale_dir / "dump.rdb").write_text("x")
    theirs = tmp_path / f"fraudstream-valkey-{ended.pid}-abc.log"  # another user's: not ours to remove
    theirs.write_text("x")
    if os.getuid() == 0:
        os.chown(theirs, 65534, 65534)
    else:
        theirs.unlink()
    assert sorted(remove_stale_files(tmp_path)) == sorted([stale_log, stale_dir])
    assert mine.exists() and other.exists() and not stale_log.exists() and not stale_dir.exists()
    assert theirs.exists() == (os.getuid() == 0)
