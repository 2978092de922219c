"""The issue's checks with a running consumer on the real broker and Redis: SIGKILL and restart give
the same score; a consumer refuses checkpoints signed with another key; `models promote` switches the
model named in alerts within 5 seconds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydantic import SecretStr

from fraudstream.config import Settings
from fraudstream.kafka_io import ensure_topics
from fraudstream.models.events import Alert, Label, Transaction
from fraudstream.stream.registry import registry_for
from tests.kafka_helpers import produce_raw, read_topic

CLI = [str(Path(sys.executable).parent / "fraudstream")]
T0 = datetime(2024, 5, 1, tzinfo=timezone.utc)


def history(n: int) -> tuple[list[Transaction], list[Label]]:
    txs, labels = [], []
    for i in range(n):
        fraud = i % 10 == 9
        tx = Transaction(transaction_id=f"h-{i:04d}", customer_id=f"c{i % 13}", terminal_id=f"m{i % 7}",
                         amount=700.0 + i if fraud else 5.0 + i % 60, event_time=T0 + timedelta(minutes=5 * i))
        txs.append(tx)
        labels.append(Label(transaction_id=tx.transaction_id, customer_id=tx.customer_id, terminal_id=tx.terminal_id,
                            is_fraud=fraud, event_time=tx.event_time, reported_at=tx.event_time + timedelta(days=1)))
    return txs, labels


def probe(tag: str, when: datetime) -> Transaction:
    """A transaction of a new customer at a new terminal: its features depend only on its own fields."""
    return Transaction(transaction_id=f"probe-{tag}", customer_id=f"pc-{tag}", terminal_id=f"pt-{tag}",
                       amount=420.0, event_time=when)


def send(settings: Settings, txs: list[Transaction] = (), labels: list[Label] = ()) -> None:  # type: ignore[assignment]
    produce_raw(settings, settings.topic_transactions, ((t.customer_id.encode(), t.to_json_bytes()) for t in txs))
    produce_raw(settings, settings.topic_labels, ((lb.customer_id.encode(), lb.to_json_bytes()) for lb in labels))


DEFAULT = Settings.model_fields["model"].default  # the champion of a consumer started without FRAUDSTREAM_MODEL


def env_of(settings: Settings) -> dict[str, str]:
    return {**os.environ, "FRAUDSTREAM_KAFKA_BOOTSTRAP": settings.kafka_bootstrap or "",
            "FRAUDSTREAM_REDIS_URL": settings.redis_url or "",
            "FRAUDSTREAM_TOPIC_TRANSACTIONS": settings.topic_transactions,
            "FRAUDSTREAM_TOPIC_LABELS": settings.topic_labels, "FRAUDSTREAM_TOPIC_ALERTS": settings.topic_alerts,
            "FRAUDSTREAM_TOPIC_DLQ": settings.topic_dlq, "FRAUDSTREAM_TOPIC_LABELS_DLQ": settings.topic_labels_dlq,
            "FRAUDSTREAM_GROUP_ID": settings.group_id, "FRAUDSTREAM_REDIS_KEY_PREFIX": settings.redis_key_prefix,
            "FRAUDSTREAM_ALERT_THRESHOLD": "0", "FRAUDSTREAM_ALERT_WARMUP_LABELS": "0",
            "FRAUDSTREAM_CHECKPOINT_EVERY_SECONDS": "0.5", "FRAUDSTREAM_MODEL_SIGNING_KEY": "live-test-key",
            # the fixture's shorter group session: the consumer started after the SIGKILL joins once the
            # killed one's session expired (see tests/conftest.py)
            "FRAUDSTREAM_SESSION_TIMEOUT_MS": str(settings.session_timeout_ms),
            "FRAUDSTREAM_HEARTBEAT_INTERVAL_MS": str(settings.heartbeat_interval_ms)}


def wait_for(condition, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def alert_of(settings: Settings, transaction_id: str) -> Alert | None:
    for record in read_topic(settings, settings.topic_alerts, timeout=3):
        alert = Alert.model_validate_json(record.value)
        if alert.transaction_id == transaction_id:
            return alert
    return None


@pytest.mark.services
def test_sigkill_restart_scores_the_same(settings: Settings) -> None:
    ensure_topics(settings)
    txs, labels = history(150)
    send(settings, txs, labels)
    env = env_of(settings)
    registry = registry_for(settings.model_copy(update={"model_signing_key": SecretStr("live-test-key")}))
    first = subprocess.Popen([*CLI, "consume"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             start_new_session=True)
    second = None
    try:
        wait_for(lambda: registry.latest_version(DEFAULT) and registry.info(DEFAULT).labels_learned == 150,
                 40, "a checkpoint holding all 150 labels")
        when = txs[-1].event_time + timedelta(minutes=1)
        send(settings, [probe("a", when)])
        before = wait_for(lambda: alert_of(settings, "probe-a"), 30, "the first probe's alert")
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)

        second = subprocess.Popen([*CLI, "consume"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  start_new_session=True)
        send(settings, [probe("b", when)])
        after = wait_for(lambda: alert_of(settings, "probe-b"), 30, "the second probe's alert")
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
    assert after.features == before.features
    assert after.score == before.score and after.model_version == before.model_version
    assert before.model_name == DEFAULT and before.score not in (0.0, 0.5)  # untrained models score 0 or 0.5

    # a consumer whose key signed none of the stored checkpoints refuses to start
    refused = subprocess.run([*CLI, "consume", "--idle-timeout", "1"], env={**env, "FRAUDSTREAM_MODEL_SIGNING_KEY": "k2"},
                             capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode != 0
    assert "signature does not match" in refused.stderr


@pytest.mark.services
def test_promote_switches_alerts_within_5_seconds(settings: Settings) -> None:
    from click.testing import CliRunner

    from fraudstream.cli import main
    from fraudstream.stream.app import scoring_consumer

    settings = settings.model_copy(update={"alert_threshold": 0.0, "alert_warmup_labels": 0,
                                           "challengers": ("hst",)})
    ensure_topics(settings)
    seen: list[tuple[float, str]] = []
    with scoring_consumer(settings, on_alert=lambda a: seen.append((time.monotonic(), a.model_name))) as app:
        worker = threading.Thread(target=app.run, daemon=True)
        worker.start()
        stop_feeding = threading.Event()

        def feed() -> None:
            i = 0
            while not stop_feeding.is_set():
                tx = probe(f"f{i}", T0 + timedelta(seconds=i))
                send(settings, [tx])
                i += 1
                stop_feeding.wait(0.1)

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        try:
            wait_for(lambda: seen and registry_for(settings).latest_version("hst") > 0, 30, "alerts and hst v1")
            env = {"FRAUDSTREAM_REDIS_URL": settings.redis_url, "FRAUDSTREAM_REDIS_KEY_PREFIX": settings.redis_key_prefix}
            promoted_at = time.monotonic()
            result = CliRunner().invoke(main, ["models", "promote", "hst"], env=env)
            assert result.exit_code == 0, result.output
            switched = wait_for(lambda: next((t for t, name in seen if t > promoted_at and name == "hst"), None),
                                10, "an alert from hst")
            time.sleep(1.0)
        finally:
            stop_feeding.set()
            feeder.join(5)
            app.stop.set()
            worker.join(15)
    assert switched - promoted_at < 5.0, f"switched after {switched - promoted_at:.2f} s"
    assert {name for t, name in seen if t < promoted_at} == {DEFAULT}
    assert {name for t, name in seen if t > switched} == {"hst"}
    published = [Alert.model_validate_json(r.value) for r in read_topic(settings, settings.topic_alerts)]
    assert {a.model_name for a in published} == {DEFAULT, "hst"}
    print(f"promote -> first hst alert: {switched - promoted_at:.2f} s")
