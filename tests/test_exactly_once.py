"""Effects are exactly once per transaction: a process that dies while applying a batch of labels
loses none of them and learns none twice when the batch is delivered again; a label delivered twice
is skipped, a second label that contradicts the first is dead-lettered; a transaction delivered
again sends its alert again byte for byte."""

from __future__ import annotations

from datetime import timedelta

import pytest
import redis

from fraudstream import constants
from fraudstream.config import Settings
from fraudstream.kafka_io import ensure_topics
from fraudstream.models.events import Label, Transaction
from fraudstream.stream.app import scoring_consumer
from fraudstream.stream.registry import registry_for
from tests.consumer_procs import run_until_committed
from tests.kafka_helpers import committed_and_end, produce_raw, read_topic
from tests.test_pipeline import publish, scripted_transactions

pytestmark = pytest.mark.services


class Crash(Exception):
    """Stands for the process dying at this step (nothing after it runs, nothing is committed)."""


def label_of(tx: Transaction, is_fraud: bool | None = None) -> Label:
    return Label(transaction_id=tx.transaction_id, customer_id=tx.customer_id, terminal_id=tx.terminal_id,
                 is_fraud=tx.amount >= 900 if is_fraud is None else is_fraud, event_time=tx.event_time,
                 reported_at=tx.event_time + timedelta(days=7))


def send_labels(settings: Settings, labels: list[Label]) -> None:
    produce_raw(settings, settings.topic_labels, ((lb.customer_id.encode(), lb.to_json_bytes()) for lb in labels))


def appended(settings: Settings) -> int:
    """Labels appended to the label stream so far (one score each in the champion's score list)."""
    client = redis.Redis.from_url(settings.redis_url or "")
    return int(client.llen(registry_for(settings, client).key("perf", settings.model)))


def scored(settings: Settings, txs: list[Transaction]) -> None:
    ensure_topics(settings)
    publish(settings, txs)
    with scoring_consumer(settings) as app:
        app.run(max_transactions=len(txs), idle_timeout=30)


@pytest.mark.parametrize("dies_before", ["submit_labels", "release_records"])
def test_a_process_dying_while_learning_loses_no_label_and_learns_none_twice(settings: Settings,
                                                                             dies_before: str) -> None:
    """`submit_labels`: the records were read, nothing appended. `release_records`: the labels are in
    the label stream, their records not yet deleted, the offsets not committed."""
    txs = scripted_transactions(300)
    scored(settings, txs)
    send_labels(settings, [label_of(tx) for tx in txs])
    with scoring_consumer(settings) as app:
        owner = app.scorer if dies_before == "submit_labels" else app.engine

        def die(*args: object, **kwargs: object) -> None:
            raise Crash(dies_before)

        setattr(owner, dies_before, die)
        with pytest.raises(Crash):
            app.run(idle_timeout=15)
    first = appended(settings)  # the batch that was being applied when the process died
    assert first == 0 if dies_before == "submit_labels" else 0 < first <= len(txs)
    with scoring_consumer(settings) as app:
        stats = run_until_committed(app, settings)
    assert appended(settings) == len(txs)
    assert stats.labels_dead_lettered == 0
    assert stats.labels_learned == len(txs) - first and stats.labels_duplicate == first
    committed, ends = committed_and_end(settings, settings.topic_labels)
    assert committed == ends


def test_a_label_delivered_again_is_skipped_and_a_contradicting_one_dead_lettered(settings: Settings) -> None:
    txs = scripted_transactions(100)
    scored(settings, txs)
    send_labels(settings, [label_of(tx) for tx in txs])
    with scoring_consumer(settings) as app:
        first = run_until_committed(app, settings)
    assert first.labels_learned == len(txs)
    flipped = label_of(txs[5], is_fraud=not label_of(txs[5]).is_fraud)
    send_labels(settings, [label_of(tx) for tx in txs[:50]] + [flipped])
    with scoring_consumer(settings) as app:
        again = run_until_committed(app, settings)
    assert (again.labels_learned, again.labels_duplicate, again.labels_dead_lettered) == (0, 50, 1)
    assert appended(settings) == len(txs)
    dead = read_topic(settings, settings.topic_labels_dlq, expect=1)
    assert [dict(r.headers)[constants.DLQ_HEADER_REASON] for r in dead] == [b"label_conflict"]
    assert Label.model_validate_json(dead[0].value) == flipped


def test_transactions_delivered_again_send_the_same_alerts_byte_for_byte(settings: Settings) -> None:
    """A second group on the same topic and Redis stands for a redelivery of everything: nothing is
    scored again, and each alert is sent again unchanged (not rebuilt: its time would differ)."""
    settings = settings.model_copy(update={"alert_threshold": 0.0, "alert_warmup_labels": 0})  # every one alerts
    txs = scripted_transactions(300)
    scored(settings, txs)
    first = read_topic(settings, settings.topic_alerts, timeout=3)
    assert len(first) == len(txs)
    again = settings.model_copy(update={"group_id": settings.group_id + "-again"})
    with scoring_consumer(again) as app:
        stats = app.run(max_transactions=len(txs), idle_timeout=30)
    assert stats.processed == stats.delivered_again == len(txs) and stats.alerts == len(first)
    both = read_topic(settings, settings.topic_alerts, expect=2 * len(first))
    by_id: dict[bytes, list[bytes]] = {}
    for record in both:
        by_id.setdefault(record.key, []).append(record.value)
    assert len(by_id) == len(first) and all(len(v) == 2 and v[0] == v[1] for v in by_id.values())


def test_a_transaction_twice_in_one_batch_is_delivered_again_not_scored_again(settings: Settings) -> None:
    """A producer's retry (acks=1, no idempotence) can publish a transaction twice in a row: the
    second copy counts as delivered again and sends the first copy's alert again, byte for byte."""
    settings = settings.model_copy(update={"alert_threshold": 0.0, "alert_warmup_labels": 0})  # every one alerts
    txs = scripted_transactions(50)
    ensure_topics(settings)
    twice = txs[:20] + [txs[19]] + txs[20:]
    produce_raw(settings, settings.topic_transactions, ((txs[19].customer_id.encode(), t.to_json_bytes()) for t in twice))
    with scoring_consumer(settings) as app:  # one key, one partition: all in the first batch
        stats = app.run(max_transactions=len(twice), idle_timeout=30)
    assert (stats.processed, stats.delivered_again, stats.alerts) == (51, 1, 51)
    alerts = read_topic(settings, settings.topic_alerts, expect=51)
    of_19 = [r.value for r in alerts if r.key == txs[19].transaction_id.encode()]
    assert len(alerts) == 51 and len(of_19) == 2 and of_19[0] == of_19[1]
