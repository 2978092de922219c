"""The consumer as a user runs it: `fraudstream consume` in a process of its own, for the benchmarks.

`consumer_throughput.py` runs the consumer inside the benchmark's process, which also holds the
rows it publishes, so that process's RSS is more than a consumer's. This
runs the CLI on the same broker and Redis with default settings but for the group and the Redis key
prefix (fresh, so that it scores everything again instead of finding the first run's records), and
reads its peak RSS from /proc while it runs.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen
from typing import Any

from fraudstream.config import Settings


@dataclass(frozen=True)
class CliRun:
    summary: dict[str, Any]  # the JSON summary `fraudstream consume` prints on exit
    max_rss_mb: float  # the process's peak resident set (VmHWM, read every 50 ms while it ran)


def run_cli_consumer(settings: Settings, transactions: int, idle_timeout_s: float = 30.0) -> CliRun:
    """Run ``fraudstream consume --max-transactions N`` against `settings`' servers from the
    transactions topic's start (a group and key prefix of its own) and wait for it (it stops early
    after `idle_timeout_s` without records: see the summary's "processed")."""
    tag = uuid.uuid4().hex[:6]
    env = os.environ | {
        "FRAUDSTREAM_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "FRAUDSTREAM_REDIS_URL": settings.redis_url or "",
        "FRAUDSTREAM_REDIS_KEY_PREFIX": f"cli{tag}",
        "FRAUDSTREAM_GROUP_ID": f"cli-{tag}",
        "FRAUDSTREAM_LOG_LEVEL": "WARNING",
    }
    cli = Path(sys.executable).with_name("fraudstream")
    with tempfile.TemporaryFile("w+") as output:
        command = [str(cli), "consume", "--max-transactions", str(transactions), "--idle-timeout", str(idle_timeout_s)]
        proc = Popen(command, env=env, stdout=output, text=True)
        peak_kb = 0
        while proc.poll() is None:  # its peak from /proc while it runs: ru_maxrss would start from the
            peak_kb = max(peak_kb, _peak_rss_kb(proc.pid))  # forked benchmark's, kept through exec
            time.sleep(0.05)
        output.seek(0)
        out = output.read()
    if proc.returncode != 0:
        raise SystemExit(f"fraudstream consume exited with {proc.returncode}: {out[-500:]!r}")
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if not lines:
        raise SystemExit(f"fraudstream consume printed no summary: {out[-500:]!r}")
    return CliRun(json.loads(lines[-1]), peak_kb / 1024)


def _peak_rss_kb(pid: int) -> int:
    """The process's VmHWM (peak resident set since its exec), 0 once it has exited."""
    try:
        with open(f"/proc/{pid}/status") as status:
            return next((int(line.split()[1]) for line in status if line.startswith("VmHWM:")), 0)
    except (FileNotFoundError, ProcessLookupError):
        return 0
