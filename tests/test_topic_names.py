"""A misspelt topic name: `consume` and `produce` create the topics they miss, so a typo in
FRAUDSTREAM_TOPIC_TRANSACTIONS had them read or write an empty new topic with only an INFO line."""

from __future__ import annotations

import logging

import pytest

from fraudstream.config import Settings
from fraudstream.kafka_io import ensure_topics


@pytest.mark.services
def test_a_topic_created_beside_one_of_a_close_name_is_a_warning_naming_its_variable(
        settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    ensure_topics(settings)
    misspelt = settings.model_copy(update={"topic_transactions": settings.topic_transactions[:-1] + "z"})
    with caplog.at_level(logging.INFO, logger="fraudstream.kafka_io"):
        assert ensure_topics(misspelt) == [misspelt.topic_transactions]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert (f"created topic {misspelt.topic_transactions!r} (FRAUDSTREAM_TOPIC_TRANSACTIONS), which did not exist, "
            f"while the broker has {settings.topic_transactions!r}: if that is the topic meant, fix the name"
            in " ".join(warnings)), warnings
    caplog.clear()
    fresh = settings.model_copy(update={"topic_alerts": "completely-other-alerts-" + settings.group_id})
    with caplog.at_level(logging.INFO, logger="fraudstream.kafka_io"):
        assert ensure_topics(fresh) == [fresh.topic_alerts]
    assert not [r for r in caplog.records if r.levelno == logging.WARNING and fresh.topic_alerts in r.getMessage()]
    caplog.clear()
    beside = settings.topic_transactions + "-raw"  # a topic a caller names on purpose (the benchmark's raw one)
    with caplog.at_level(logging.INFO, logger="fraudstream.kafka_io"):
        assert ensure_topics(settings, [beside]) == [beside]
    assert not [r for r in caplog.records if r.levelno == logging.WARNING], caplog.records
