"""Consumer subprocesses and Redis inspection for the reliability tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import redis

from fraudstream.config import Settings
from fraudstream.constants import CUSTOMER_EVENTS
from fraudstream.models.events import Transaction
from fraudstream.stream.consumer import ScoringConsumer
from fraudstream.stream.stats import RunStats

CLI = str(Path(sys.executable).parent / "fraudstream")


def env_for(settings: Settings, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        if isinstance(value, timedelta):
            value = f"{value.total_seconds()}s"
        if isinstance(value, (list, tuple)):
            if not value:
                continue
            value = ",".join(map(str, value))
        env["FRAUDSTREAM_" + name.upper()] = str(value)
    env.update(extra)
    return env


def start_consumer(settings: Settings, *args: str, **extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([CLI, "consume", *args], env=env_for(settings, **extra), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def progress_or_explain(settings: Settings, proc: subprocess.Popen[str], count: int, timeout: float) -> None:
    """Wait until `count` transactions are scored; on failure, fail with the consumer's stderr."""
    if wait_for(lambda: len(scored_ids(settings)) >= count or proc.poll() is not None, timeout) and proc.poll() is None:
        return
    kill(proc)
    _, err = proc.communicate(timeout=10)
    raise AssertionError(f"consumer made no progress (exit {proc.returncode}): {err[-3000:]}")


def finish(proc: subprocess.Popen[str], timeout: float) -> tuple[str, str]:
    """Wait for a consumer to exit by itself; if it does not within `timeout`, kill it and fail with
    its stderr (what it was waiting for), not with a bare TimeoutExpired."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill(proc)
        _, err = proc.communicate(timeout=10)
        raise AssertionError(f"consumer {proc.pid} did not exit within {timeout:.0f} s: {err[-3000:]}") from None


def all_committed(settings: Settings, *topics: str) -> bool:
    """The group has committed the end of every partition of `topics` that holds records."""
    from tests.kafka_helpers import committed_and_end

    for topic in topics:
        committed, ends = committed_and_end(settings, topic)
        if any(committed.get(partition) != end for partition, end in ends.items()):
            return False
    return True


def finish_when_committed(settings: Settings, procs: list[subprocess.Popen[str]], topics: list[str],
                          timeout: float) -> list[tuple[str, str]]:
    """Wait until the group has committed the end of `topics` (everything handled and durable), then
    stop `procs` with SIGTERM (a stop finishes the batch and commits) and return their output once
    they exit: what an idle timeout did, without its seconds of idleness. Their pipes are read all
    along (a consumer must not block on a full stderr). A process that exits before is left to the
    caller's checks (its return code); ends not committed within `timeout` fail with the stderr."""
    outputs: dict[int, tuple[str, str]] = {}
    readers = [threading.Thread(target=lambda p=p: outputs.__setitem__(p.pid, p.communicate()), daemon=True)
               for p in procs]
    for reader in readers:
        reader.start()
    committed = wait_for(lambda: any(p.poll() is not None for p in procs) or all_committed(settings, *topics),
                         timeout, interval=0.5)
    for proc in procs:
        kill(proc, signal.SIGTERM if committed else signal.SIGKILL)
    for proc, reader in zip(procs, readers):
        reader.join(30)
        if reader.is_alive():
            kill(proc)
            reader.join(10)
            raise AssertionError(f"consumer {proc.pid} did not exit within 30 s of SIGTERM: "
                                 f"{outputs.get(proc.pid, ('', ''))[1][-3000:]}")
    if not committed:
        errs = [outputs.get(p.pid, ("", ""))[1][-2000:] for p in procs]
        raise AssertionError(f"the group did not commit the ends of {topics} within {timeout:.0f} s: {errs}")
    return [outputs[p.pid] for p in procs]


def run_until_committed(app: ScoringConsumer, settings: Settings, timeout: float = 60) -> RunStats:
    """`app.run()` until its group has committed the end of the transactions and labels topics
    (everything handled, durable and committed), then stop: what `run(idle_timeout=3)` did for a
    backlog of records that no count stops at (labels), without the 3 s of idleness. After `timeout`
    it stops all the same, and the caller's checks of what it did tell what was missing."""
    done = threading.Event()

    def watch() -> None:
        wait_for(lambda: done.is_set() or all_committed(settings, settings.topic_transactions, settings.topic_labels),
                 timeout)
        app.stop.set()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        return app.run()
    finally:
        done.set()
        watcher.join(10)


def kill(proc: subprocess.Popen[str], sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, sig)


@contextlib.contextmanager
def reaped(*procs: subprocess.Popen[str]) -> Iterator[None]:
    """Make sure every consumer process is gone when the block exits (by PID)."""
    try:
        yield
    finally:
        for proc in procs:
            if proc.poll() is None:
                kill(proc)
                proc.wait(10)


def scripted_stream(n: int, customers: int = 500, terminals: int = 300) -> list[Transaction]:
    t0 = datetime(2024, 5, 1, tzinfo=timezone.utc)
    return [Transaction(transaction_id=f"tx-{i:06d}", customer_id=f"c{(i * 7919) % customers}",
                        terminal_id=f"m{(i * 104729) % terminals}", amount=float(1 + (i * 37) % 400),
                        event_time=t0 + timedelta(seconds=5 * i)) for i in range(n)]  # 50k: < 3 days,
    # inside the 9-day retention of scored records, so every scored transaction is still visible


def scored_ids(settings: Settings) -> set[str]:
    """Transaction ids with a scored record in Redis (nothing is labelled in these tests)."""
    client = redis.Redis.from_url(settings.redis_url or "")
    ids: set[str] = set()
    for key in client.scan_iter(match=f"{settings.redis_key_prefix}:{{r:*}}", count=1000):
        for field in client.hkeys(key):  # <len(customer id)>:<customer id><transaction id>
            length, rest = field.decode().split(":", 1)
            ids.add(rest[int(length):])
    return ids


def customer_state(settings: Settings) -> dict[str, bytes]:
    """Customer id -> the raw bytes of its event list."""
    client = redis.Redis.from_url(settings.redis_url or "")
    prefix = settings.redis_key_prefix
    out = {}
    suffix = f":{CUSTOMER_EVENTS}"
    for key in client.scan_iter(match=f"{prefix}:{{c:*}}{suffix}", count=1000):
        customer = key.decode()[len(prefix) + 4:-len(suffix) - 1]
        out[customer] = client.get(key) or b""
    return out


def wait_for(predicate, timeout: float, interval: float = 0.2) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def publish_trained_model(settings: Settings, txs: list[Transaction]) -> None:
    """Publish, as version 1 of the champion, a model trained beforehand on `txs` (fraud: amount of
    390 or more), so that a run without labels alerts on its features alone, whatever the timing."""
    from fraudstream.stream.feature_settings import of_settings
    from fraudstream.stream.features import FeatureConfig, FeatureEngine
    from fraudstream.stream.registry import registry_for
    from fraudstream.stream.scoring import LiveModel
    from fraudstream.stream.state import MemoryStore

    model = LiveModel.fresh(settings.model, settings.seed)
    for tx, x in zip(txs, FeatureEngine(MemoryStore(), FeatureConfig.from_settings(settings)).transform(txs)):
        if x is not None:
            model.learn(x, tx.amount >= 390)
    registry_for(settings).publish(model.model, model.published(of_settings(settings)))


def alerted_ids(settings: Settings) -> set[str]:
    from tests.kafka_helpers import read_topic

    return {record.key.decode() for record in read_topic(settings, settings.topic_alerts, timeout=5)}
