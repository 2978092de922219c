"""Dead letters are logged one by one, but for a flood: then one count per reason."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from kafka import KafkaProducer

from fraudstream import constants
from fraudstream.config import Settings
from fraudstream.kafka_io import ensure_topics
from fraudstream.stream.dlq import DeadLetterWriter
from tests.kafka_helpers import read_topic


def test_a_flood_of_dead_letters_is_logged_as_a_count(caplog: pytest.LogCaptureFixture) -> None:
    sent = []
    writer = DeadLetterWriter(SimpleNamespace(send=lambda topic, **kw: sent.append((topic, kw))), "tx.dlq")
    records = [SimpleNamespace(topic="tx", partition=0, offset=i, key=b"k", value=b"v") for i in range(50)]
    with caplog.at_level(logging.WARNING, logger="fraudstream.stream.dlq"):
        for record in records:
            writer.send(record, "too_late", f"record {record.offset} is late")
        writer.send(records[0], "invalid_json", "not json")
        writer.logged.flush()
    lines = [r.getMessage() for r in caplog.records]
    assert len(sent) == 51 and writer.count == 51  # every one sent
    assert [m for m in lines if m.startswith("dead-lettered")] == (
        [f"dead-lettered: record {i} is late" for i in range(10)] + ["dead-lettered: not json"])
    assert [m for m in lines if not m.startswith("dead-lettered")] == [
        "40 more dead letters (too_late) to tx.dlq in 0 s, not logged one by one"]
    assert writer.logged.pending() == {}


@pytest.mark.services
def test_a_record_whose_header_has_no_value_is_dead_lettered_with_its_headers(settings: Settings) -> None:
    """Kafka allows a header without a value; kafka-python's producer refuses to send one, which made
    the dead letter raise (and the consumer stop on the same record after every restart)."""
    ensure_topics(settings)
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    try:
        writer = DeadLetterWriter(producer, settings.topic_dlq)
        record = SimpleNamespace(topic=settings.topic_transactions, partition=1, offset=7, key=b"c1", value=b"{",
                                 headers=[("trace", b"t-9"), ("flag", None)])
        writer.send(record, "invalid_json", "not JSON").get(timeout=10)
    finally:
        producer.close()
    [dead] = read_topic(settings, settings.topic_dlq, expect=1)
    headers = dict(dead.headers)
    assert (dead.key, dead.value, headers["trace"], headers["flag"]) == (b"c1", b"{", b"t-9", b"")
    assert headers[constants.DLQ_HEADER_REASON] == b"invalid_json"
