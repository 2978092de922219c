"""Kafka clients built from settings, topic creation, and end-of-log lookup.

Tansu workarounds (kept here, and the rewinder in `fraudstream.kafka_rewind`):

- Tansu answers ListOffsets(latest) with the base offset of the last record batch instead of the
  high watermark, so `end_offsets()` and `seek_to_end()` fall short by the last batch there.
  `end_of_log()` therefore prefers the high watermark that every fetch response carries
  (`consumer.highwater(tp)`), which is right on both Tansu and Apache Kafka, and falls back to
  `end_offsets()` only before the first fetch.
- Tansu 0.6 keeps a group leader that leaves while its group re-forms as the leader, so the group
  never forms again; `close_group_consumer()` leaves only a formed group (see there).
- Tansu answers a fetch from past the end of a log with no records and no error, where Apache Kafka
  answers OFFSET_OUT_OF_RANGE and kafka-python resets the position: `fraudstream.kafka_rewind`'s
  `PastEndRewinder` does that reset (see there; its own module for its size only).

kafka-python 3.0.12 throws away a group join that completes between two polls: `make_consumer`
mends each consumer's coordinator with `fraudstream.kafka_join.keep_completed_joins`. It also gives
each consumer's fetcher the faster record reader of `fraudstream.kafka_records` (same records).
Its producers and consumers read sockets with `fraudstream.kafka_transport.quiet_closed_reads`: a
read that races a client's close is not logged as an error with a traceback.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

try:
    from kafka.structs import MemberState
except ImportError:  # pragma: no cover - kafka-python 2.x
    from kafka.coordinator.base import MemberState  # type: ignore[no-redef]

from fraudstream.config import Settings
from fraudstream.errors import ConfigError
from fraudstream.kafka_auth import check_sasl
from fraudstream.kafka_join import keep_completed_joins
from fraudstream.kafka_reach import await_bootstrap, check_tls
from fraudstream.kafka_records import read_records_inline
from fraudstream.kafka_transport import quiet_closed_reads
from fraudstream.logs import hide_client_secrets
from fraudstream.topic_names import near_misses

log = logging.getLogger(__name__)

LEAVE_TIMEOUT_S = 8.0  # longest wait to complete a rebalance before leaving (Tansu holds a JoinGroup 3 s)
UNREACHABLE_S = 1.0  # a group coordinator unreachable this long while leaving: the broker is gone, no wait
CLOSE_TIMEOUT_MS = 3000  # longest wait for the LeaveGroup's answer (kafka-python's default: the 30 s request timeout)


def client_config(settings: Settings) -> dict[str, Any]:
    """Connection settings shared by producers, consumers and admin clients (incl. SASL/SSL)."""
    if not settings.kafka_bootstrap:
        raise ConfigError("no Kafka bootstrap servers: set FRAUDSTREAM_KAFKA_BOOTSTRAP or run `fraudstream up`")
    config: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap.split(","),
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_sasl_mechanism:
        config["sasl_mechanism"] = settings.kafka_sasl_mechanism
        config["sasl_plain_username"] = settings.kafka_sasl_username
        if settings.kafka_sasl_password is not None:
            config["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    if settings.kafka_ssl_cafile:
        config["ssl_cafile"] = settings.kafka_ssl_cafile
    return config


def _reachable(settings: Settings) -> dict[str, Any]:
    """`client_config(settings)` once a bootstrap server answers (`await_bootstrap`), for TLS
    completes a handshake (`check_tls`) and, for SASL, takes the login (`check_sasl`), with reads
    racing a client's close kept quiet (`quiet_closed_reads`: kafka-python 3.0.12 logs them as errors)."""
    config = client_config(settings)
    await_bootstrap(config["bootstrap_servers"])
    if config["security_protocol"].endswith("SSL"):
        check_tls(config["bootstrap_servers"])
    check_sasl(config)
    quiet_closed_reads()
    return config


def make_producer(settings: Settings, **overrides: Any) -> KafkaProducer:
    """A producer that waits for the leader's acknowledgement and batches briefly."""
    # acks=1 with idempotence off: the embedded Tansu broker is memory-only anyway; duplicates from
    # retries are harmless because every effect downstream is keyed by transaction id.
    config = {"acks": 1, "enable_idempotence": False, "linger_ms": settings.producer_linger_ms,
              "batch_size": 256 * 1024, "max_request_size": 4 * 1024 * 1024}
    config.update(overrides)
    return KafkaProducer(**_reachable(settings), **config)


def close_producer(producer: KafkaProducer, timeout: float) -> bool:
    """Close `producer`, waiting at most `timeout` s for what it holds; False when records were left
    undelivered (a broker gone). kafka-python's `close` raises from its flush before it stops the
    sender thread, which would then retry the broker for ever in the background (logging each time):
    that thread is stopped here too (kafka-python 3.0's `_sender.force_close`, as `close` itself does
    after a timeout)."""
    try:
        producer.close(timeout=timeout)
        return True
    except KafkaError as exc:
        log.debug("producer closed with records undelivered: %s", exc)
        sender = getattr(producer, "_sender", None)
        if sender is not None and sender.is_alive():
            sender.force_close()
            sender.join(1.0)
        producer._closed = True  # type: ignore[attr-defined]  # (its __del__ would flush again)
        return False


METADATA_MAX_AGE_MS = 10_000  # a metadata request per 10 s and consumer: nothing next to its fetches


def make_consumer(settings: Settings, topics: Iterable[str] | None = None, **overrides: Any) -> KafkaConsumer:
    """A consumer with manual commits and group settings that make joins take seconds."""
    config: dict[str, Any] = {
        "group_id": settings.group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": settings.session_timeout_ms,
        "heartbeat_interval_ms": settings.heartbeat_interval_ms,
        "max_poll_records": settings.max_poll_records,
        "fetch_max_wait_ms": settings.fetch_max_wait_ms,
        "fetch_max_bytes": 16 * 1024 * 1024,
        # at most 1 MB per partition, so that a fetch answer (16 MB) has room for every partition:
        # with 4 MB, four partitions filled it and the others went unfetched for seconds, which
        # held up the timestamp alignment (its 5 s safety net fired in 2 of 4 benchmark runs; in
        # 2 of 6 after this change, so not the only cause: see stream/batching.py)
        "max_partition_fetch_bytes": 1024 * 1024,
        # the metadata (topic ids) asked for at least this often: a topic deleted and created again
        # is seen by `PastEndRewinder` within it (kafka-python's default: 5 min)
        "metadata_max_age_ms": METADATA_MAX_AGE_MS,
        # the topics are created with their partition count by `ensure_topics`; a consumer's metadata
        # request would create a topic deleted under it with the broker's default count (Tansu: 4)
        "allow_auto_create_topics": False,
    }
    config.update(overrides)
    consumer = KafkaConsumer(**_reachable(settings), **config)
    keep_completed_joins(consumer)  # kafka-python 3.0.12 would throw some joins away (see there)
    read_records_inline(consumer)  # ~3 us less per record than kafka-python's own reader (see there)
    if topics:
        consumer.subscribe(list(topics))
    return consumer


def all_topics(settings: Settings) -> list[str]:
    return [settings.topic_transactions, settings.topic_labels, settings.topic_alerts,
            settings.topic_dlq, settings.topic_labels_dlq]


def ensure_topics(settings: Settings, topics: Iterable[str] | None = None, partitions: int | None = None) -> list[str]:
    """Create the topics that do not exist yet; return the names created."""
    wanted = list(topics) if topics is not None else all_topics(settings)
    hide_client_secrets()  # kafka-python logs the admin client's configuration at DEBUG
    admin = KafkaAdminClient(**_reachable(settings))
    try:
        existing = set(admin.list_topics())
        missing = [t for t in wanted if t not in existing]
        if missing:
            count = partitions or settings.topic_partitions
            try:
                admin.create_topics([NewTopic(t, count, 1) for t in missing])
            except TopicAlreadyExistsError:
                pass
            log.info("created topics %s with %d partitions", missing, count)
            fields = {getattr(settings, name): name for name in Settings.model_fields
                      if name.startswith("topic_") and name != "topic_partitions"}
            # only the settings' topics (a FRAUDSTREAM_TOPIC_* misspelt), not one a caller names on purpose
            for message in near_misses([t for t in missing if t in fields], existing, wanted, fields):
                log.warning(message)
        return missing
    finally:
        admin.close()


def partitions_of(consumer: KafkaConsumer, topic: str) -> list[TopicPartition]:
    parts = consumer.partitions_for_topic(topic) or set()
    return [TopicPartition(topic, p) for p in sorted(parts)]


def unfetched(consumer: Any, tp: TopicPartition) -> int | None:
    """Records of an assigned partition after the consumer's position, up to the high watermark its
    last fetch reported (see the module docstring for Tansu); None before the first fetch."""
    high = consumer.highwater(tp)
    return None if high is None else high - fetch_position(consumer, tp)


def fetch_position(consumer: Any, tp: TopicPartition) -> int:
    """`consumer.position(tp)` of an assigned partition that has a position, read where kafka-python
    2.2-3.0 keeps it; `position` itself otherwise. `position` first checks every assigned
    partition's committed offset, pending reset and leader epoch: ~20-40 us a call with six
    partitions, and the consumer asks for each partition's lag on every poll (0.4 ms of a live
    batch's ~4 ms of CPU)."""
    position = tracked_position(consumer, tp)
    if position is None:  # none yet (or kept elsewhere by another kafka-python): the public way
        return int(consumer.position(tp))
    return position


def tracked_position(consumer: Any, tp: TopicPartition) -> int | None:
    """The position kafka-python 2.2-3.0 keeps for an assigned partition, without asking the broker
    (None: none yet, a reset pending, or another kafka-python)."""
    state = getattr(getattr(consumer, "_subscription", None), "assignment", {}).get(tp)
    position = getattr(state, "position", None)
    return None if position is None else int(getattr(position, "offset", position))


def end_of_log(consumer: KafkaConsumer, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
    """The offset after the last record of each partition (see the module docstring for Tansu)."""
    partitions = list(partitions)
    result: dict[TopicPartition, int] = {}
    unknown: list[TopicPartition] = []
    for tp in partitions:
        high = consumer.highwater(tp) if tp in consumer.assignment() else None
        if high is None:
            unknown.append(tp)
        else:
            result[tp] = high
    if unknown:
        result.update(consumer.end_offsets(unknown))
    return result


def _membership(consumer: KafkaConsumer) -> tuple[bool, float] | None:
    """(whether this member still has to complete a rebalance, time of its last answered
    heartbeat), from kafka-python's coordinator; None where a kafka-python version lacks them."""
    coordinator = getattr(consumer, "_coordinator", None)
    try:
        pending = coordinator.state != MemberState.STABLE or bool(coordinator.need_rejoin())
        return pending, float(coordinator.heartbeat.last_receive)
    except AttributeError:
        return None


def coordinator_silent_s(consumer: Any) -> float | None:
    """Seconds since the group coordinator last answered a heartbeat (or since the member joined);
    None for a consumer without a group, or a kafka-python that keeps no such times."""
    try:
        heartbeat = consumer._coordinator.heartbeat
        if consumer._coordinator.group_id is None:
            return None
        return time.monotonic() - max(float(heartbeat.last_receive), float(heartbeat.last_reset))
    except AttributeError:
        return None


def _coordinator_unknown(consumer: KafkaConsumer) -> bool:
    """Whether kafka-python knows no reachable group coordinator (False where a version lacks it)."""
    try:
        return bool(consumer._coordinator.coordinator_unknown())
    except AttributeError:
        return False


def rebalance_pending(consumer: KafkaConsumer) -> bool:
    """Whether the group coordinator asked this member to re-join and it has not completed yet."""
    membership = _membership(consumer)
    return membership is not None and membership[0]


def close_group_consumer(consumer: KafkaConsumer, timeout: float = LEAVE_TIMEOUT_S) -> None:
    """Close a subscribed consumer without commits, leaving its group only once the group is
    formed: a rebalance in progress is completed first, for at most `timeout` seconds (records
    polled meanwhile are dropped unprocessed; their offsets stay uncommitted).

    Tansu workaround: when the group leader leaves (LeaveGroup) while the group re-forms (another
    member joined or left, and the leader has not re-joined yet), Tansu 0.6 keeps the departed
    member as the leader. Nobody sends the leader's SyncGroup again, so every member, present and
    future, loops on JoinGroup/SyncGroup without partitions until the broker restarts (the scale
    test hung on it). A member that dies instead is expired after the session timeout and loses
    the leadership as it should. A member learns of a rebalance from its heartbeats, so it also
    waits for one answered after the decision to leave. Apache Kafka needs none of this.

    A coordinator unreachable for `UNREACHABLE_S` (the broker is gone) ends the wait: no rebalance
    can complete and no LeaveGroup can be sent; the broker, if it comes back, expires the member.
    """
    membership = _membership(consumer)
    if membership is not None and consumer.subscription():
        heard = membership[1]
        deadline = time.monotonic() + timeout
        reachable = time.monotonic()
        while True:
            membership = _membership(consumer)
            if membership is not None and membership[1] != heard and not membership[0]:
                break
            now = time.monotonic()
            if not _coordinator_unknown(consumer):
                reachable = now
            elif now - reachable >= UNREACHABLE_S:  # no rebalance can complete, nor can the group be left
                log.warning("closing without leaving the consumer group: its coordinator is unreachable")
                break
            if now >= deadline:
                log.warning("leaving the consumer group without a completed rebalance after %.0f s", timeout)
                break
            consumer.poll(timeout_ms=100)  # drives a pending re-join
    try:  # a broker that hangs (connections open, no answers) made a SIGTERM wait ~30 s more here
        consumer.close(autocommit=False, timeout_ms=CLOSE_TIMEOUT_MS)
    except TypeError:  # pragma: no cover - a kafka-python whose close() has no bound
        consumer.close(autocommit=False)
