"""End-to-end on the real broker and Redis: transactions in, alerts and dead letters out, offsets committed."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import redis
from kafka import KafkaProducer

from fraudstream import constants
from fraudstream.config import Settings
from fraudstream.kafka_io import ensure_topics
from fraudstream.models.events import Alert, Label, Transaction
from fraudstream.stream.app import scoring_consumer
from fraudstream.stream.features import FEATURE_NAMES
from fraudstream.stream.registry import registry_for
from tests.consumer_procs import run_until_committed
from tests.test_features_cli import new_york_feed, run_command, write_jsonl
from tests.kafka_helpers import committed_and_end, produce_raw, read_topic

T0 = datetime(2024, 3, 1, tzinfo=timezone.utc)

GARBAGE = [
    b"\x00\x01\x02 not json at all \xff",
    b'{"transaction_id": "bad-1", "customer_id": "c1"}',
    b'{"transaction_id": "bad-2", "customer_id": "c1", "terminal_id": "m1", "amount": "lots",'
    b' "event_time": "2024-03-01T00:00:00Z"}',
    b'{"transaction_id": "bad-3", "customer_id": "c1", "terminal_id": "m1", "amount": -5,'
    b' "event_time": "2024-03-01T00:00:00Z"}',
    b'[1, 2, 3]',
]


def scripted_transactions(n: int) -> list[Transaction]:
    txs = []
    for i in range(n):
        fraud = i % 25 == 24
        txs.append(Transaction(
            transaction_id=f"tx-{i:05d}", customer_id=f"c{i % 17}", terminal_id=f"m{i % 11}",
            amount=900.0 + i if fraud else 10.0 + (i % 40), event_time=T0 + timedelta(minutes=7 * i),
        ))
    return txs


def publish(settings: Settings, txs: list[Transaction]) -> None:
    produce_raw(settings, settings.topic_transactions,
                ((tx.customer_id.encode(), tx.to_json_bytes()) for tx in txs))


@pytest.mark.services
def test_alerts_dead_letters_and_offsets(settings: Settings) -> None:
    # every scored transaction alerts, from the first one
    settings = settings.model_copy(update={"alert_threshold": 0.0, "alert_warmup_labels": 0})
    ensure_topics(settings)
    txs = scripted_transactions(400)
    publish(settings, txs[:200])
    produce_raw(settings, settings.topic_transactions, ((b"junk", g) for g in GARBAGE))
    publish(settings, txs[200:])

    with scoring_consumer(settings) as app:
        stats = app.run(max_transactions=len(txs) + len(GARBAGE), idle_timeout=30)
    assert stats.processed == len(txs)
    assert stats.dead_lettered == len(GARBAGE)

    alerts = [Alert.model_validate_json(r.value) for r in read_topic(settings, settings.topic_alerts, expect=len(txs))]
    assert sorted(a.transaction_id for a in alerts) == sorted(tx.transaction_id for tx in txs)
    by_id = {tx.transaction_id: tx for tx in txs}
    for alert in alerts:
        assert alert.amount == by_id[alert.transaction_id].amount
        assert alert.features and alert.model_name == settings.model
        assert 0.0 <= alert.score <= 1.0

    dead = read_topic(settings, settings.topic_dlq, expect=len(GARBAGE))
    assert sorted(r.value for r in dead) == sorted(GARBAGE)
    source = {r.offset: r.value for r in read_topic(settings, settings.topic_transactions) if r.key == b"junk"}
    for record in dead:
        headers = {k: v.decode() for k, v in record.headers}
        assert headers[constants.DLQ_HEADER_TOPIC] == settings.topic_transactions
        assert headers[constants.DLQ_HEADER_REASON] in {"invalid_json", "invalid_fields"}
        assert source[int(headers[constants.DLQ_HEADER_OFFSET])] == record.value

    committed, ends = committed_and_end(settings, settings.topic_transactions)
    assert committed == ends


@pytest.mark.services
def test_a_transaction_id_used_again_for_another_payment_is_dead_lettered(settings: Settings) -> None:
    """The same id with another amount, published after the first: dead-lettered with its reason and
    the ids named; the first is scored."""
    ensure_topics(settings)
    txs = scripted_transactions(50)
    reused = txs[10].model_copy(update={"amount": txs[10].amount + 1, "event_time": txs[-1].event_time})
    publish(settings, [*txs, reused])
    with scoring_consumer(settings) as app:
        stats = app.run(max_transactions=len(txs) + 1, idle_timeout=30)
    assert (stats.processed, stats.delivered_again, stats.dead_lettered) == (len(txs), 0, 1)
    dead = read_topic(settings, settings.topic_dlq, expect=1)
    assert [r.value for r in dead] == [reused.to_json_bytes()]
    headers = {k: v.decode() for k, v in dead[0].headers}
    assert headers[constants.DLQ_HEADER_REASON] == "transaction_id_reused"
    assert headers[constants.DLQ_HEADER_ERROR] == (
        f"transaction id {reused.transaction_id} was already used by customer {reused.customer_id} for a "
        "transaction with another time, amount or terminal")


@pytest.mark.services
def test_events_keyed_other_than_by_customer_are_handled_counted_and_warned_about(
        settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    """Keyed by transaction id or without a key (a feed's mistake): scored and learned all the same,
    counted, and one warning names the first of them."""
    ensure_topics(settings)
    txs = scripted_transactions(40)
    produce_raw(settings, settings.topic_transactions,
                [(tx.customer_id.encode(), tx.to_json_bytes()) for tx in txs[:30]]
                + [(tx.transaction_id.encode(), tx.to_json_bytes()) for tx in txs[30:35]]
                + [(None, tx.to_json_bytes()) for tx in txs[35:]])
    labels = [Label(transaction_id=tx.transaction_id, customer_id=tx.customer_id, is_fraud=False,
                    event_time=tx.event_time, reported_at=tx.event_time + timedelta(days=7)) for tx in txs[:4]]
    produce_raw(settings, settings.topic_labels, [(lb.transaction_id.encode(), lb.to_json_bytes()) for lb in labels])
    with caplog.at_level(logging.WARNING, logger="fraudstream.stream.keying"), scoring_consumer(settings) as app:
        stats = run_until_committed(app, settings)
    assert (stats.processed, stats.dead_lettered, stats.labels_learned) == (40, 0, 4)
    assert stats.mis_keyed == 10 + 4 and stats.summary()["mis_keyed"] == 14
    warnings = [r.getMessage() for r in caplog.records
                if r.name == "fraudstream.stream.keying" and r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings  # the first; the others within 5 minutes are counted
    assert "not its customer id" in warnings[0] and "keyed by customer_id" in warnings[0]


@pytest.mark.services
def test_labels_train_the_model_on_scored_features(settings: Settings) -> None:
    """Each label is learned with the features its transaction was scored with (those its alert
    carries), paired with its own verdict, and bad labels are dead-lettered."""
    settings = settings.model_copy(update={"alert_threshold": 0.0, "alert_warmup_labels": 0})  # every one alerts
    ensure_topics(settings)
    txs = scripted_transactions(300)
    publish(settings, txs)
    with scoring_consumer(settings) as app:
        app.run(max_transactions=len(txs), idle_timeout=30)
    scored_with = {a.transaction_id: a.features for a in
                   (Alert.model_validate_json(r.value) for r in read_topic(settings, settings.topic_alerts, expect=len(txs)))}

    labels = [Label(transaction_id=tx.transaction_id, customer_id=tx.customer_id, terminal_id=tx.terminal_id,
                    is_fraud=tx.amount >= 900, event_time=tx.event_time, reported_at=tx.event_time + timedelta(days=7))
              for tx in txs]
    labels.append(Label(transaction_id="never-seen", customer_id="c1", is_fraud=True,
                        event_time=T0, reported_at=T0 + timedelta(days=7)))
    produce_raw(settings, settings.topic_labels, ((lb.customer_id.encode(), lb.to_json_bytes()) for lb in labels))
    # a label reported before its transaction (a label feed's swapped columns), with a header of its producer's
    early = json.loads(labels[0].to_json_bytes()) | {"reported_at": (txs[0].event_time - timedelta(days=1)).isoformat()}
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    producer.send(settings.topic_labels, key=b"c-early", value=json.dumps(early).encode(), headers=[("trace", b"t-1")])
    producer.flush()
    producer.close()
    with scoring_consumer(settings) as app:
        stats = run_until_committed(app, settings)
        assert app.scorer.champion.labels_learned == len(txs)
    assert stats.labels_learned == len(txs)
    assert stats.labels_dead_lettered == 2
    client = redis.Redis.from_url(settings.redis_url or "")
    learned = registry_for(settings, client).labels.read("0-0", count=10 * len(txs))  # the shared label stream
    client.close()

    def pairs(rows: Iterable[tuple[dict[str, float], bool]]) -> list[tuple[tuple[tuple[str, float], ...], bool]]:
        return sorted((tuple(sorted(features.items())), is_fraud) for features, is_fraud in rows)

    assert len(learned) == len(txs)
    assert pairs((features or {}, y) for _, features, y in learned) == pairs(
        (scored_with[lb.transaction_id], lb.is_fraud) for lb in labels[:len(txs)])
    dead = {json.loads(r.value)["transaction_id"]: dict(r.headers) for r in
            read_topic(settings, settings.topic_labels_dlq, expect=2)}
    assert dead.keys() == {"never-seen", txs[0].transaction_id}
    assert dead["never-seen"][constants.DLQ_HEADER_REASON] == b"unknown_transaction"
    early_dead = dead[txs[0].transaction_id]
    assert early_dead[constants.DLQ_HEADER_REASON] == b"invalid_fields"
    assert b"is before event_time" in early_dead[constants.DLQ_HEADER_ERROR]
    assert early_dead["trace"] == b"t-1"  # the record's own headers are kept
    committed, ends = committed_and_end(settings, settings.topic_labels)
    assert committed == ends


class _NotUtf8(str):
    """A header name whose bytes on the wire are not UTF-8 (as some producers send them)."""

    def encode(self, *args: object, **kwargs: object) -> bytes:  # type: ignore[override]
        return b"\xff\xfe"


@pytest.mark.services
def test_a_header_name_that_is_not_utf8_does_not_stop_the_consumer(settings: Settings) -> None:
    """kafka-python fails the whole fetch on it as a corrupt batch (so a consumer stopped at that record
    after every restart); fraudstream's record reader reads the name escaped and goes on."""
    ensure_topics(settings)
    txs = scripted_transactions(5)
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    for i, tx in enumerate(txs):
        producer.send(settings.topic_transactions, key=tx.customer_id.encode(), value=tx.to_json_bytes(),
                      headers=[(_NotUtf8("x"), b"v")] if i == 2 else [])
        producer.flush()
    producer.send(settings.topic_transactions, key=b"junk", value=b"{", headers=[(_NotUtf8("x"), b"w")])
    producer.close()
    with scoring_consumer(settings) as app:
        stats = app.run(max_transactions=6, idle_timeout=20)
    assert (stats.processed, stats.dead_lettered) == (5, 1)
    [dead] = read_topic(settings, settings.topic_dlq, expect=1)
    assert ("\\xff\\xfe", b"w") in dead.headers  # the name as read, escaped: sendable again


@pytest.mark.services
def test_the_consumer_scores_with_the_local_time_flags_that_features_computes(settings: Settings, tmp_path: Path) -> None:
    """With FRAUDSTREAM_LOCAL_TIMEZONE set, each alert carries the feature vector `fraudstream features`
    gives for the same rows with the same setting: night and weekend of New York's clock (DST included)."""
    settings = settings.model_copy(update={"alert_threshold": 0.0, "alert_warmup_labels": 0,
                                           "local_timezone": "America/New_York"})
    ensure_topics(settings)
    rows = new_york_feed()
    txs = [Transaction.model_validate(row) for row in rows]
    publish(settings, txs)
    with scoring_consumer(settings) as app:
        stats = app.run(max_transactions=len(txs), idle_timeout=30)
    assert stats.processed == len(txs)
    scored = {a.transaction_id: a.features for a in
              (Alert.model_validate_json(r.value) for r in read_topic(settings, settings.topic_alerts, expect=len(txs)))}

    write_jsonl(rows, tmp_path / "ny.jsonl")
    computed = run_command(tmp_path / "ny.jsonl", tmp_path / "f.csv", env={"FRAUDSTREAM_LOCAL_TIMEZONE": "America/New_York"})
    assert sorted(scored) == sorted(computed.index)
    for transaction_id, features in scored.items():
        assert features == computed.loc[transaction_id, list(FEATURE_NAMES)].to_dict(), transaction_id
    local = {str(row["transaction_id"]): datetime.fromisoformat(str(row["event_time"])) for row in rows}
    assert [scored[i]["TX_DURING_NIGHT"] for i in local] == [float(t.hour <= 6) for t in local.values()]
    assert [scored[i]["TX_DURING_WEEKEND"] for i in local] == [float(t.weekday() >= 5) for t in local.values()]
