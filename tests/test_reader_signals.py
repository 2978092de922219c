"""`alerts` and `dead-letters --follow` stop cleanly on SIGTERM (docker stop), as on Ctrl-C: run as a
container's PID 1 without a handler, they ignored it and were killed 10 s later."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from fraudstream.config import Settings
from fraudstream.kafka_io import ensure_topics
from tests.consumer_procs import CLI, env_for, finish, kill, reaped

pytestmark = pytest.mark.services


@pytest.mark.parametrize("args", [["alerts"], ["dead-letters", "--follow"]])
def test_a_reader_that_waits_for_records_stops_on_sigterm(settings: Settings, args: list[str]) -> None:
    ensure_topics(settings)
    proc = subprocess.Popen([CLI, *args], env=env_for(settings), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    with reaped(proc):
        time.sleep(4)  # connected and waiting (the broker answers in milliseconds)
        assert proc.poll() is None, proc.communicate()
        kill(proc, signal.SIGTERM)
        _, err = finish(proc, timeout=10)
    assert proc.returncode == 0, err  # the signal's default action would end it with -15
    assert "Traceback" not in err
