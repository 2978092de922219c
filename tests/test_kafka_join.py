"""The kafka-python 3.0.12 workaround of `fraudstream.kafka_join`, against the real broker: a group
join that completes between two polls is kept, not thrown away and started again."""

from __future__ import annotations

import logging
import time

import kafka
import pytest

from fraudstream.config import Settings
from fraudstream.kafka_io import ensure_topics, make_consumer
from fraudstream.kafka_join import MENDED_VERSIONS, keep_completed_joins

pytestmark = pytest.mark.services


@pytest.mark.skipif(kafka.__version__ not in MENDED_VERSIONS,
                    reason=f"kafka-python {kafka.__version__}: the workaround is for {sorted(MENDED_VERSIONS)} only")
def test_a_join_that_completes_between_polls_is_kept(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    """Short polls with long pauses between them: the join (~3 s with Tansu) completes in a pause,
    not in a poll. kafka-python 3.0.12 alone then sends a new JoinGroup at the next poll, and again
    each round (seen: no assignment in 20 s); mended, the first round's assignment is taken."""
    ensure_topics(settings)
    consumer = make_consumer(settings, [settings.topic_transactions])
    try:
        started = time.monotonic()
        # (the inner level is the capture handler's too)
        with caplog.at_level(logging.INFO, logger="kafka.coordinator"), \
                caplog.at_level(logging.DEBUG, logger="fraudstream.kafka_join"):
            while not consumer.assignment() and time.monotonic() - started < 20:
                consumer.poll(timeout_ms=10)
                time.sleep(0.5)
        assert consumer.assignment(), "no assignment in 20 s"
        messages = [r.getMessage() for r in caplog.records]
        assert sum(m.startswith("Successfully joined group") for m in messages) == 1
        assert any("keeping a join that completed between two polls" in m for m in messages)
    finally:
        consumer.close(autocommit=False)


def test_consumers_without_a_group_are_left_alone(settings: Settings) -> None:
    consumer = make_consumer(settings, group_id=None)
    try:
        assert not keep_completed_joins(consumer)
    finally:
        consumer.close()
