"""Dead letters are logged one by one, but for a flood: then one count per reason."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from fraudstream.stream.dlq import DeadLetterWriter


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
