"""A scored record in Redis that cannot be read (written by another version, or damaged) costs
its label or its redelivered transaction's stored alert, never the consumer: it used to raise out
of the consumer's loop on the same batch after every restart."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import msgpack
import pytest
import redis

from fraudstream import constants
from fraudstream.config import Settings
from fraudstream.kafka_io import ensure_topics
from fraudstream.models.events import Label, Transaction
from fraudstream.stream.app import scoring_consumer
from fraudstream.stream.schema import FEATURE_NAMES, StoredRecord, read_record
from fraudstream.stream.state.redis_records import record_field
from tests.consumer_procs import run_until_committed
from tests.kafka_helpers import committed_and_end, produce_raw, read_topic
from tests.test_pipeline import publish, scripted_transactions

# bytes that are not msgpack, and a record of a version with one feature fewer
DAMAGED = [b"\xc1 not msgpack", msgpack.packb([0, "m1", [1] * (len(FEATURE_NAMES) - 1), {"gbt_window": 0.5}])]


def record_key(client: redis.Redis, settings: Settings, tx: Transaction) -> bytes:
    """The hour hash that holds `tx`'s scored record."""
    field = record_field(tx.customer_id, tx.transaction_id)
    keys = [k for k in client.scan_iter(match=f"{settings.redis_key_prefix}:{{r:*") if client.hexists(k, field)]
    assert len(keys) == 1
    return keys[0]


def scored(settings: Settings, n: int) -> tuple[list[Transaction], redis.Redis]:
    """`n` transactions published and scored (their records in Redis), and a client of that Redis."""
    ensure_topics(settings)
    txs = scripted_transactions(n)
    publish(settings, txs)
    with scoring_consumer(settings) as app:
        app.run(max_transactions=len(txs), idle_timeout=30)
    return txs, redis.Redis.from_url(settings.redis_url)


def labels_of(txs: list[Transaction]) -> list[Label]:
    return [Label(transaction_id=tx.transaction_id, customer_id=tx.customer_id, terminal_id=tx.terminal_id,
                  is_fraud=False, event_time=tx.event_time, reported_at=tx.event_time + timedelta(days=7))
            for tx in txs]


@pytest.mark.services
def test_unreadable_scored_records_dead_letter_their_labels(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    txs, client = scored(settings, 40)
    damaged = {txs[5].transaction_id: DAMAGED[0], txs[17].transaction_id: DAMAGED[1]}
    by_id = {tx.transaction_id: tx for tx in txs}
    for tx_id, payload in damaged.items():
        client.hset(record_key(client, settings, by_id[tx_id]), record_field(by_id[tx_id].customer_id, tx_id), payload)

    produce_raw(settings, settings.topic_labels, ((lb.customer_id.encode(), lb.to_json_bytes()) for lb in labels_of(txs)))
    with caplog.at_level(logging.ERROR), scoring_consumer(settings) as app:
        stats = run_until_committed(app, settings)
    assert stats.labels_learned == len(txs) - 2
    dead = read_topic(settings, settings.topic_labels_dlq, expect=2)
    assert sorted(json.loads(r.value)["transaction_id"] for r in dead) == sorted(damaged)
    for r in dead:
        headers = dict(r.headers)
        assert headers[constants.DLQ_HEADER_REASON] == b"unreadable_record"
        assert b"cannot be read" in headers[constants.DLQ_HEADER_ERROR]
    assert "34 feature values, not the 35" in caplog.text and "FormatError" in caplog.text
    committed, ends = committed_and_end(settings, settings.topic_labels)
    assert committed == ends
    for tx_id, payload in damaged.items():  # left where they were, to be looked at; the others learned and deleted
        tx = by_id[tx_id]
        assert client.hget(record_key(client, settings, tx), record_field(tx.customer_id, tx_id)) == payload
    left = {f for k in client.scan_iter(match=f"{settings.redis_key_prefix}:{{r:*") for f in client.hkeys(k)}
    assert left == {record_field(by_id[tx_id].customer_id, tx_id).encode() for tx_id in damaged}


@pytest.mark.services
def test_a_redelivered_transaction_whose_record_is_unreadable_is_scored_again(settings: Settings) -> None:
    settings = settings.model_copy(update={"alert_threshold": 0.0, "alert_warmup_labels": 0})  # every one alerts
    txs, client = scored(settings, 20)
    again = txs[-1]  # the newest: published again, it is not older than its partition's newest (lateness rule)
    key, field = record_key(client, settings, again), record_field(again.customer_id, again.transaction_id)
    client.hset(key, field, DAMAGED[0])

    publish(settings, [again])  # delivered again
    with scoring_consumer(settings) as app:
        stats = app.run(max_transactions=1, idle_timeout=30)
    assert stats.processed == 1 and stats.dead_lettered == 0
    rewritten = read_record(client.hget(key, field), int(again.event_time.timestamp() * 1000))
    assert isinstance(rewritten, StoredRecord) and rewritten.terminal_id == again.terminal_id
    alerts = [json.loads(r.value) for r in read_topic(settings, settings.topic_alerts, expect=len(txs) + 1)]
    assert [a["transaction_id"] for a in alerts].count(again.transaction_id) == 2
