"""Wiring: build a ready `ScoringConsumer` from settings (Kafka clients, Redis store, model)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Any

from kafka import ConsumerRebalanceListener, TopicPartition

from fraudstream.config import Settings
from fraudstream.kafka_io import close_group_consumer, close_producer, make_consumer, make_producer
from fraudstream.stream.consumer import AlertCallback, ScoringConsumer
from fraudstream.stream.features import FeatureConfig, FeatureEngine
from fraudstream.stream.scoring import Scorer
from fraudstream.stream.state import open_redis_store
from fraudstream.stream.state.eviction import warn_if_evicting

log = logging.getLogger(__name__)


class _Rebalance(ConsumerRebalanceListener):
    """Batches are processed and their commits sent between polls, so a revocation never interrupts one
    (a commit still unanswered normally lands, ahead of the group join on the same connection; if it is
    refused, the new owner processes the batch again: see `AsyncCommits`);
    the revoked partitions' watermarks and buffered (unprocessed, uncommitted) records are dropped,
    also those of the batches taken ahead (`AlignedBatches.prepare_ahead`): the new owner starts from
    the last commit.

    The consumer's position of a dropped partition is moved back to the first dropped record:
    kafka-python (like the Java client) keeps the position of a partition that is revoked and
    assigned again in the same rebalance (paused flag included), so without the seek this consumer
    would carry on after the records it dropped and never score them, and a partition paused for
    backpressure would stay paused.
    """

    def __init__(self) -> None:
        self.app: ScoringConsumer | None = None

    def on_partitions_revoked(self, revoked):  # type: ignore[no-untyped-def]
        log.info("partitions revoked: %s", sorted(f"{tp.topic}[{tp.partition}]" for tp in revoked))
        if self.app is not None:
            self.app.rebalance_since = time.monotonic()  # until the new assignment: no records, but not idle
            for tp in revoked:
                self.app.watermarks.pop(tp, None)
                self.app.unrestored.discard(tp)
            self.app.commits.forget(revoked)
            dropped = self.app.batches.drop_partitions((tp.topic, tp.partition) for tp in revoked)
            for (topic, partition), offset in dropped.items():
                self.app.consumer.seek(TopicPartition(topic, partition), offset)
            # a partition paused for backpressure and assigned again would stay paused with nothing buffered
            self.app.consumer.resume(*revoked)

    def on_partitions_assigned(self, assigned):  # type: ignore[no-untyped-def]
        log.info("partitions assigned: %s", sorted(f"{tp.topic}[{tp.partition}]" for tp in assigned))
        if self.app is not None:
            self.app.rebalance_since = None
            self.app.assigned_at = time.monotonic()  # the join may have happened inside one long poll
            # their newest event times are read back by the loop, after this poll (not here, on
            # kafka-python's network thread, which the read would need)
            self.app.unrestored.update(tp for tp in assigned if tp.topic != self.app.settings.topic_labels)
        if self.app is not None and assigned:
            # the alignment safety net counts from here, not from before the group join (which
            # can take longer than its wait): nothing could be released while nothing was assigned
            self.app.batches.released()
            self.app.assigned.set()


@contextlib.contextmanager
def scoring_consumer(settings: Settings, on_alert: AlertCallback | None = None,
                     **consumer_overrides: Any) -> Iterator[ScoringConsumer]:
    """A consumer subscribed to the transactions and labels topics; clients closed on exit (the
    group is left once a rebalance in progress is complete, see `close_group_consumer`).
    `consumer_overrides` go to `KafkaConsumer` (e.g. smaller fetch sizes in tests)."""
    store = open_redis_store(settings)
    warn_if_evicting(store.client)  # before anything is written: an evicting server would lose state
    engine = FeatureEngine(store, FeatureConfig.from_settings(settings))
    scorer = Scorer.from_settings(settings)  # models restored from the registry (stream/lifecycle.py)
    listener = _Rebalance()
    consumer = make_consumer(settings, **consumer_overrides)
    consumer.subscribe([settings.topic_transactions, settings.topic_labels], listener=listener)
    log.info("consuming %s and %s from %s as group %s; state in %s (key prefix %s)", settings.topic_transactions,
             settings.topic_labels, settings.kafka_bootstrap, settings.group_id, settings.redis_url_masked(),
             settings.redis_key_prefix)
    producer = make_producer(settings, linger_ms=1)
    app = ScoringConsumer(settings, engine, scorer, consumer, producer, on_alert=on_alert)
    listener.app = app
    try:
        yield app
    finally:
        scorer.close()
        with contextlib.suppress(Exception):
            producer.flush(timeout=10)
        close_producer(producer, 5.0)
        close_group_consumer(consumer)
