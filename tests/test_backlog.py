"""A backlog of transactions and labels (a fast replay consumed later) is consumed in timestamp order.

The labels topic is far smaller than the transactions topic, so the consumer fetches it far ahead;
its records wait (bounded: the consumer pauses partitions that buffered too far ahead) until the
transactions before them are scored. Every label then finds its scored record: none is dead-lettered
as unknown, and the consumer never stalls with partitions paused.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from kafka import KafkaProducer

from fraudstream.config import Settings
from fraudstream.kafka_io import ensure_topics
from fraudstream.models.events import Label, Transaction
from fraudstream.stream.app import scoring_consumer
from fraudstream.stream.stats import RunStats
from tests.consumer_procs import run_until_committed

pytestmark = pytest.mark.services

T0 = datetime(2024, 6, 1, tzinfo=timezone.utc)
# small fetches, so that the consumer fetches each topic in many steps, as with a large backlog
SMALL_FETCHES: dict[str, Any] = {"max_partition_fetch_bytes": 16 * 1024, "fetch_max_bytes": 64 * 1024}


def publish_interleaved(settings: Settings, n: int, customers: int, terminals: int, label_lag: int,
                        fraud_every: int) -> int:
    """`n` transactions a minute apart and, published with transaction i, the label of transaction
    i - `label_lag` for every third one (reported then; with no lag, a minute later, right after
    its transaction). Returns how many labels were sent."""
    ensure_topics(settings)
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=5)
    labelled = 0
    for i in range(n):
        tx = Transaction(transaction_id=f"t{i}", customer_id=f"c{i % customers}", terminal_id=f"m{i % terminals}",
                         amount=float(5 + i % 90), event_time=T0 + timedelta(minutes=i))
        producer.send(settings.topic_transactions, key=tx.customer_id.encode(), value=tx.to_json_bytes())
        if i % 3 == 0 and i >= label_lag:
            j = i - label_lag
            label = Label(transaction_id=f"t{j}", customer_id=f"c{j % customers}", is_fraud=j % fraud_every == 0,
                          event_time=T0 + timedelta(minutes=j), reported_at=T0 + timedelta(minutes=j + max(label_lag, 1)))
            producer.send(settings.topic_labels, key=label.customer_id.encode(), value=label.to_json_bytes())
            labelled += 1
    producer.flush()
    producer.close()
    return labelled


def score_backlog(settings: Settings, n: int, idle_timeout: float) -> RunStats:
    """Score the `n` published transactions with small fetches, then drain the labels after the last."""
    with scoring_consumer(settings, **SMALL_FETCHES) as app:
        stats = app.run(max_transactions=n, idle_timeout=idle_timeout)
        run_until_committed(app, settings)
    return stats


def test_backlog_of_transactions_and_labels_learns_every_label(settings: Settings) -> None:
    settings = settings.model_copy(update={"max_poll_records": 100})  # pauses after 500 buffered records
    n = 6000
    labelled = publish_interleaved(settings, n, customers=50, terminals=40, label_lag=300, fraud_every=97)
    stats = score_backlog(settings, n, idle_timeout=20)
    assert stats.processed == n
    assert stats.labels_dead_lettered == 0
    assert stats.labels_learned == labelled


def test_a_partition_without_progress_lets_transactions_through_and_holds_labels(settings: Settings) -> None:
    """The alignment safety net: while a partition makes no progress, transactions of the others are
    scored after `MAX_ALIGN_WAIT_S`, but labels wait for their place (released early, a label whose
    transaction is still unfetched would be dead-lettered), and are learned once it moves again."""
    from fraudstream.stream.batching import MAX_ALIGN_WAIT_S

    ensure_topics(settings)
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=5)
    n = 300
    for i in range(n):
        tx = Transaction(transaction_id=f"t{i}", customer_id=f"c{i % 20}", terminal_id=f"m{i % 10}",
                         amount=float(5 + i % 90), event_time=T0 + timedelta(minutes=i))
        producer.send(settings.topic_transactions, key=tx.customer_id.encode(), value=tx.to_json_bytes())
    for i in range(0, n, 3):
        label = Label(transaction_id=f"t{i}", customer_id=f"c{i % 20}", is_fraud=i % 30 == 0,
                      event_time=T0 + timedelta(minutes=i), reported_at=T0 + timedelta(minutes=i + 1))
        producer.send(settings.topic_labels, key=label.customer_id.encode(), value=label.to_json_bytes())
    producer.flush()
    producer.close()
    with scoring_consumer(settings) as app:
        real_lagging = app.batches.lagging
        stuck = (settings.topic_transactions, 99)  # a partition that never delivers: the horizon cannot pass it
        app.batches.lagging = lambda: real_lagging() | {stuck}  # type: ignore[method-assign]
        started = time.monotonic()
        stats = app.run(max_transactions=n, idle_timeout=30)
        assert stats.processed == n
        assert time.monotonic() - started >= MAX_ALIGN_WAIT_S  # released by the safety net
        app.run(idle_timeout=2)  # the labels stay buffered: held, not learned, not dead-lettered
        assert stats.labels_learned == 0 and stats.labels_dead_lettered == 0
        assert app.aligner.buffered() == n // 3
        app.batches.lagging = real_lagging  # type: ignore[method-assign]
        run_until_committed(app, settings)
    assert stats.labels_learned == n // 3
    assert stats.labels_dead_lettered == 0


def test_a_slow_group_join_does_not_trip_the_alignment_safety_net(settings: Settings, caplog: pytest.LogCaptureFixture,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The safety net counts from the assignment: a join that takes longer than `MAX_ALIGN_WAIT_S`
    (seen: 6 s with 5 s on a busy machine) must not let the first batch past the timestamp horizon.
    The wait is raised to 8 s here, so that a slow fetch after the join does not trip it either."""
    from fraudstream.stream import batching

    monkeypatch.setattr(batching, "MAX_ALIGN_WAIT_S", 8.0)
    n = 3000
    labelled = publish_interleaved(settings, n, customers=20, terminals=10, label_lag=30, fraud_every=30)
    # small fetches: the partitions are fetched in many steps, so some lag right after the assignment
    with scoring_consumer(settings, **SMALL_FETCHES) as app:
        real_poll = app.consumer.poll
        joins_after = time.monotonic() + batching.MAX_ALIGN_WAIT_S + 1  # no poll, so no join, until then

        def slow_join_poll(**kwargs: Any) -> dict[Any, Any]:
            if time.monotonic() < joins_after:
                time.sleep(kwargs.get("timeout_ms", 0) / 1000)
                return {}
            return real_poll(**kwargs)

        app.consumer.poll = slow_join_poll  # type: ignore[method-assign]
        with caplog.at_level("WARNING", logger="fraudstream.stream.batching"):
            stats = app.run(max_transactions=n, idle_timeout=30)
            run_until_committed(app, settings)
    assert stats.processed == n
    assert not [r for r in caplog.records if "out of timestamp alignment" in r.getMessage()]
    assert labelled == (n - 30) // 3
    assert stats.labels_learned == labelled and stats.labels_dead_lettered == 0


def test_a_label_sent_right_after_its_transaction_finds_it(settings: Settings) -> None:
    """A producer that sends each label right after its transaction often gives both the same
    millisecond timestamp: the label must still come after it (seen: 3-14 of 1,000 such labels
    dead-lettered as unknown when labels went first at equal timestamps or at the horizon)."""
    n = 3000
    labelled = publish_interleaved(settings, n, customers=20, terminals=10, label_lag=0, fraud_every=30)
    stats = score_backlog(settings, n, idle_timeout=30)
    assert stats.processed == n
    assert labelled == n // 3
    assert (stats.labels_learned, stats.labels_dead_lettered) == (labelled, 0)
