"""The consumer runs the garbage collector's collections in idle rounds of its loop (real broker and Redis)."""

from __future__ import annotations

import gc

import pytest

from fraudstream.config import Settings
from fraudstream.kafka_io import ensure_topics
from fraudstream.stream import consumer as consumer_module
from fraudstream.stream.app import scoring_consumer
from fraudstream.stream.gc_tuning import IDLE_COLLECT_MIN, THRESHOLDS
from tests.test_pipeline import publish, scripted_transactions


@pytest.mark.services
def test_an_idle_consumer_collects_the_clients_garbage_between_polls(settings: Settings,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """kafka-python 3.0.12 leaves ~74 objects in reference cycles behind every poll that times out
    with a fetch in flight; collected in idle rounds, they never pile up towards the loop's raised
    generation-0 threshold (where freeing them took one 17-75 ms pause)."""
    ensure_topics(settings)
    publish(settings, scripted_transactions(50))
    counts: list[int] = []  # generation 0's count at each idle round, before its collection
    original = consumer_module.collect_garbage_when_idle

    def observed() -> int:
        counts.append(gc.get_count()[0])
        return original()

    monkeypatch.setattr(consumer_module, "collect_garbage_when_idle", observed)
    with scoring_consumer(settings) as app:
        stats = app.run(idle_timeout=3)
    assert stats.processed == 50
    assert len(counts) > 50  # the group join and 3 s of idle polls: a round every ~20 ms
    # seen: at most ~1,500 with the idle collections, 49,960 without (the count reaches the threshold)
    assert max(counts) < 5 * IDLE_COLLECT_MIN < THRESHOLDS[0], max(counts)
