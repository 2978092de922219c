"""The issue's own check, as a user runs it: separate servers, `produce`, garbage, `consume`, `alerts`."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest

from fraudstream.config import Settings
from fraudstream.models.events import Alert
from tests.kafka_helpers import committed_and_end, produce_raw, read_topic

CLI = [str(Path(sys.executable).parent / "fraudstream")]
GARBAGE = [b"\xde\xad\xbe\xef", b"{", b'{"transaction_id": 5}', b'"just a string"', b'{"amount": NaN}']


def run_cli(settings: Settings, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FRAUDSTREAM_KAFKA_BOOTSTRAP": settings.kafka_bootstrap or "",
           "FRAUDSTREAM_REDIS_URL": settings.redis_url or "",
           "FRAUDSTREAM_TOPIC_TRANSACTIONS": settings.topic_transactions,
           "FRAUDSTREAM_TOPIC_LABELS": settings.topic_labels, "FRAUDSTREAM_TOPIC_ALERTS": settings.topic_alerts,
           "FRAUDSTREAM_TOPIC_DLQ": settings.topic_dlq, "FRAUDSTREAM_TOPIC_LABELS_DLQ": settings.topic_labels_dlq,
           "FRAUDSTREAM_GROUP_ID": settings.group_id, "FRAUDSTREAM_REDIS_KEY_PREFIX": settings.redis_key_prefix,
           # the fixture's shorter group session (a join in 2.5 s, not 3.5; see tests/conftest.py)
           "FRAUDSTREAM_SESSION_TIMEOUT_MS": str(settings.session_timeout_ms),
           "FRAUDSTREAM_HEARTBEAT_INTERVAL_MS": str(settings.heartbeat_interval_ms)}
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.mark.services
@pytest.mark.slow
def test_produce_consume_alerts_as_a_user(settings: Settings) -> None:
    produced = run_cli(settings, "produce", "--count", "3000", "--rate", "1000", "--label-delay", "1s")
    assert produced.returncode == 0, produced.stderr[-2000:]
    produce_raw(settings, settings.topic_transactions, ((b"garbage", g) for g in GARBAGE))

    consumed = run_cli(settings, "consume", "--idle-timeout", "4")
    assert consumed.returncode == 0, consumed.stderr[-2000:]
    summary = json.loads(consumed.stdout.strip().splitlines()[-1])
    assert summary["processed"] == 3000 and summary["dead_lettered"] == 5
    assert (f"consuming {settings.topic_transactions} and {settings.topic_labels} from {settings.kafka_bootstrap} "
            f"as group {settings.group_id}; state in {settings.redis_url_masked()}") in consumed.stderr  # which servers

    alerts = [Alert.model_validate_json(r.value) for r in read_topic(settings, settings.topic_alerts)]
    assert len(alerts) >= 1 and summary["alerts"] == len(alerts), summary
    dead = read_topic(settings, settings.topic_dlq, expect=5)
    assert sorted(r.value for r in dead) == sorted(GARBAGE)
    committed, ends = committed_and_end(settings, settings.topic_transactions)
    assert committed == ends

    shown = run_cli(settings, "alerts", "--from-beginning", "--json", "--max", "1", "--timeout", "20")
    assert shown.returncode == 0, shown.stderr[-2000:]
    lines = shown.stdout.strip().splitlines()
    assert len(lines) == 1
    Alert.model_validate_json(lines[0])

    # what was dead-lettered, as a user reads it (kcat cannot talk to Tansu)
    listed = run_cli(settings, "dead-letters", "--json", timeout=60)
    assert listed.returncode == 0, listed.stderr[-2000:]
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    values = [row["value"].encode() if "value" in row else base64.b64decode(row["value_base64"]) for row in rows]
    assert sorted(values) == sorted(GARBAGE)
    assert {row["reason"] for row in rows} <= {"invalid_json", "invalid_fields"} and all(row["error"] for row in rows)
    assert {(row["source"]["topic"], row["key"]) for row in rows} == {(settings.topic_transactions, "garbage")}
    assert f"{settings.topic_dlq}: 5 dead letters read (" in listed.stderr
    fields = run_cli(settings, "dead-letters", "--reason", "invalid_fields", timeout=60)
    assert fields.returncode == 0 and fields.stdout.count(" invalid_fields from ") == sum(
        row["reason"] == "invalid_fields" for row in rows) >= 1, fields.stdout
    typo = run_cli(settings, "dead-letters", "--reason", "invalid_feilds", timeout=60)
    assert typo.returncode == 0 and typo.stdout == "", typo.stderr
    assert "no dead letter of" in typo.stderr and "has the reason 'invalid_feilds'; those it has: invalid_" in typo.stderr
    labels = run_cli(settings, "dead-letters", "--labels", timeout=60)  # none: says so, and exits
    assert labels.returncode == 0 and labels.stdout == "", labels.stderr
    assert f"{settings.topic_labels_dlq}: 0 dead letters read (none); 0 shown" in labels.stderr


@pytest.mark.services
def test_alerts_says_it_is_waiting_when_none_come(settings: Settings) -> None:
    from fraudstream.kafka_io import ensure_topics

    ensure_topics(settings)
    shown = run_cli(settings, "alerts", "--from-beginning", "--timeout", "7")
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert shown.stdout == ""
    assert f"no alert on {settings.topic_alerts!r} yet (none at all since its beginning)" in shown.stderr


@pytest.mark.services
def test_alerts_timeout_counts_only_the_alerts_its_filters_let_through(settings: Settings) -> None:
    """Alerts of other customers keep coming, one a second: `--customer nosuch --timeout 7` exits
    all the same, having said that none of the alerts it read matched."""
    from fraudstream.kafka_io import ensure_topics

    ensure_topics(settings)

    def alert(i: int) -> tuple[bytes, bytes]:
        now = datetime.now(timezone.utc)
        a = Alert(transaction_id=f"t{i}", customer_id="c1", terminal_id="m1", amount=10.0, event_time=now, score=0.9,
                  threshold=0.5, model_name="logreg", model_version="1", reasons=[], features={}, scored_at=now,
                  latency_ms=1.0)
        return f"t{i}".encode(), a.to_json_bytes()

    produce_raw(settings, settings.topic_alerts, (alert(i) for i in range(5)))
    stop = threading.Event()

    def keep_publishing() -> None:
        i = 5
        while not stop.wait(1.0) and i < 60:
            produce_raw(settings, settings.topic_alerts, [alert(i)])
            i += 1

    publisher = threading.Thread(target=keep_publishing, daemon=True)
    publisher.start()
    try:
        shown = run_cli(settings, "alerts", "--from-beginning", "--customer", "nosuch", "--timeout", "7", timeout=90)
        still_publishing = publisher.is_alive()
    finally:
        stop.set()
        publisher.join()
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert still_publishing, "the alerts stopped coming before the command exited: the check proves nothing"
    assert shown.stdout == ""
    assert re.search(rf"no alert on {settings.topic_alerts!r} matches --customer nosuch yet \(\d+ read since its "
                     r"beginning, none matched\)", shown.stderr), shown.stderr


@pytest.mark.services
def test_alerts_timeout_waits_until_the_alerts_on_the_topic_are_read(settings: Settings) -> None:
    """20,000 alerts of other customers, then the one asked for: a timeout shorter than reading them
    all does not end the command before it gets there."""
    from fraudstream.kafka_io import ensure_topics

    ensure_topics(settings)
    now = datetime.now(timezone.utc)

    def alert(i: int, customer: str) -> tuple[bytes, bytes]:
        a = Alert(transaction_id=f"t{i}", customer_id=customer, terminal_id="m1", amount=10.0, event_time=now,
                  score=0.9, threshold=0.5, model_name="logreg", model_version="1", reasons=[], features={},
                  scored_at=now, latency_ms=1.0)
        return b"same key", a.to_json_bytes()  # one partition: the one asked for comes last

    produce_raw(settings, settings.topic_alerts, [*(alert(i, "c1") for i in range(20_000)), alert(20_000, "wanted")])
    shown = run_cli(settings, "alerts", "--from-beginning", "--customer", "wanted", "--timeout", "0.2", "--json")
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert [json.loads(line)["transaction_id"] for line in shown.stdout.splitlines()] == ["t20000"], shown.stderr


@pytest.mark.services
def test_topics_says_how_many_partitions_each_has(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    first = run_cli(settings, "topics", "--partitions", "2")
    assert first.returncode == 0, first.stderr[-2000:]
    assert f"{settings.topic_transactions}\tcreated\t2 partitions\n" in first.stdout
    again = run_cli(settings, "topics", "--partitions", "4")
    assert again.returncode == 0, again.stderr[-2000:]
    assert (f"{settings.topic_transactions}\texists\t2 partitions (not 4: an existing topic keeps its partitions)\n"
            in again.stdout), again.stdout
    monkeypatch.setenv("FRAUDSTREAM_TOPIC_PARTITIONS", "6")  # asked for by the env var: said the same way
    by_env = run_cli(settings, "topics")
    assert f"{settings.topic_transactions}\texists\t2 partitions (not 6: an existing" in by_env.stdout, by_env.stdout
