"""Only a label the label stream took marks its transaction in terminal risk, and the transaction
marked is the scored record's: a conflicting label, a label of a transaction never scored, and a
label's own `terminal_id` or an `event_time` off by seconds change nothing else (real servers)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from fraudstream.config import Settings
from fraudstream.kafka_io import ensure_topics
from fraudstream.models.events import Alert, Label, Transaction
from fraudstream.stream.app import scoring_consumer
from tests.consumer_procs import run_until_committed
from tests.kafka_helpers import read_topic
from tests.test_exactly_once import Crash, send_labels
from tests.test_pipeline import T0, publish

pytestmark = pytest.mark.services
RISK = "TERMINAL_ID_RISK_30DAY_WINDOW"


def tx(txid: str, terminal: str, when: timedelta = timedelta(0)) -> Transaction:
    return Transaction(transaction_id=txid, customer_id=f"c-{txid}", terminal_id=terminal, amount=50.0,
                       event_time=T0 + when)


def label(t: Transaction, is_fraud: bool, **changes: object) -> Label:
    fields = {"transaction_id": t.transaction_id, "customer_id": t.customer_id, "terminal_id": t.terminal_id,
              "is_fraud": is_fraud, "event_time": t.event_time, "reported_at": t.event_time + timedelta(days=7),
              **changes}
    return Label(**fields)  # type: ignore[arg-type]


def consumed(settings: Settings, transactions: int | None = None) -> dict[str, dict[str, int]]:
    """Until `transactions` were scored, else (labels only) until all is committed; the dead letters by reason."""
    with scoring_consumer(settings) as app:
        stats = (app.run(max_transactions=transactions, idle_timeout=30) if transactions
                 else run_until_committed(app, settings))
    return stats.summary()["dead_letter_reasons"]


def risks(settings: Settings, terminals: list[str], before: tuple[Transaction, ...] = ()) -> dict[str, float]:
    """Each terminal's 30-day risk as a transaction 8 days after T0 sees it (its window: up to 7 days
    back), scored after the transactions `before`."""
    probes = [tx(f"probe-{terminal}", terminal, timedelta(days=8)) for terminal in terminals]
    publish(settings, [*before, *probes])
    consumed(settings, len(before) + len(probes))
    alerts = [Alert.model_validate_json(r.value) for r in read_topic(settings, settings.topic_alerts, timeout=3)]
    seen = {a.terminal_id: a.features[RISK] for a in alerts if a.transaction_id.startswith("probe-")}
    assert sorted(seen) == sorted(terminals), seen
    return seen


@pytest.fixture
def alerting(settings: Settings) -> Settings:
    """Every transaction alerts (its features readable on the alerts topic)."""
    ensure_topics(settings)
    return settings.model_copy(update={"alert_threshold": 0.0, "alert_warmup_labels": 0})


def test_only_labels_the_stream_took_mark_the_scored_transaction(alerting: Settings) -> None:
    settings = alerting
    conflicting, marked, moved = tx("t-conflict", "m-conflict"), tx("t-fraud", "m-fraud"), tx("t-moved", "m-real")
    never = tx("t-never", "m-never")
    publish(settings, [conflicting, marked, moved])
    consumed(settings, 3)
    # a fraud label after a genuine one (dead-lettered: the first stands); one of a transaction not
    # scored yet (dead-lettered: unknown); one taken, with another terminal and a time 30 s off
    send_labels(settings, [label(conflicting, False), label(conflicting, True), label(never, True), label(marked, True),
                           label(moved, True, terminal_id="m-elsewhere", event_time=moved.event_time + timedelta(seconds=30))])
    assert consumed(settings) == {"labels": {"label_conflict": 1, "unknown_transaction": 1}, "transactions": {}}
    dead = read_topic(settings, settings.topic_labels_dlq, expect=2)
    assert sorted(dict(r.headers)["fraudstream.reason"] for r in dead) == [b"label_conflict", b"unknown_transaction"]
    # the transaction whose label was refused is scored now, before the probes
    assert risks(settings, ["m-conflict", "m-never", "m-fraud", "m-real"], before=(never,)) == {
        "m-conflict": 0.0, "m-never": 0.0, "m-fraud": 1.0, "m-real": 1.0}  # (m-elsewhere holds no transaction)


def test_a_process_dying_before_it_marked_a_fraud_marks_it_when_the_label_comes_again(alerting: Settings) -> None:
    """The label is in the label stream, its record kept: delivered again it is a duplicate, and marked."""
    settings = alerting
    fraud = tx("t-fraud", "m-fraud")
    publish(settings, [fraud])
    consumed(settings, 1)
    send_labels(settings, [label(fraud, True)])
    with scoring_consumer(settings) as app:
        def die(*args: object, **kwargs: object) -> None:
            raise Crash("mark_frauds")

        app.engine.mark_frauds = die  # type: ignore[method-assign]
        with pytest.raises(Crash):
            app.run(idle_timeout=3)
    with scoring_consumer(settings) as app:
        stats = run_until_committed(app, settings)
    assert (stats.labels_learned, stats.labels_duplicate) == (0, 1)
    assert risks(settings, ["m-fraud"]) == {"m-fraud": 1.0}
