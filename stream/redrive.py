"""Dead letters sent back to the topic they came from ("redrive"), once what set them aside is fixed.

A dead letter keeps the original key, value and headers, and names its source topic and partition
(`fraudstream.stream.dlq`). `redrive` publishes the dead letters of one reason again there, as they
were, with one header more, ``fraudstream.redriven_from`` (``labels.dlq[1]@7``): a record that fails
again is dead-lettered again with it, so `fraudstream dead-letters` shows where it has been.

Each dead letter is sent back at least once per (dead-letter topic, reason), and normally once: the
offsets are committed, after every replica acknowledged the sends, in a consumer group of their own
(`redrive_group`), so a second run goes on after the first; a crash between the two sends a batch
again, which the consumers recognise (a transaction's scored record, a label's marker), as they do
when two runs of one reason overlap (do not start them together). A run ends at the end the log had
when it began: the records it sends and the consumers dead-letter again wait for the next run,
instead of going round. A dead letter whose source topic does not exist (any more) is not sent and
this group moves past it: it stays in the dead-letter topic, for `fraudstream dead-letters`. Offsets
of this group past the end of a log (a log lost under them) are reset to its start, and a run that
reads to the end commits each partition's end, leaving none past it. A run that hears nothing from
the broker for `END_WAIT_S` stops short, and says so (`RedriveStats.stopped_short`).

>>> redrive_group("fraudstream-scorer", "labels.dlq", "unknown_transaction")
'fraudstream-scorer.redrive.labels.dlq.unknown_transaction'
>>> sorted(redriven_headers([("trace", b"t1"), ("fraudstream.reason", b"too_late"),
...                          ("fraudstream.redriven_from", b"labels.dlq[0]@1")], "labels.dlq", 1, 7))
[('fraudstream.redriven_from', b'labels.dlq[1]@7'), ('trace', b't1')]
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fraudstream.stream.dlq import OWN_HEADERS, header_int, own_headers, record_headers
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from fraudstream import constants
from fraudstream.config import Settings
from fraudstream.errors import ConfigError, ServiceError
from fraudstream.kafka_io import (
    close_producer,
    fetch_position,
    make_consumer,
    make_producer,
    partitions_of,
)
from fraudstream.kafka_rewind import PastEndRewinder

log = logging.getLogger(__name__)

END_WAIT_S = 30.0  # stop short after this long without records or news of a partition's end
SEND_TIMEOUT_S = 30.0  # longest wait for a batch's sends to be acknowledged
OnSent = Callable[[Any, str], None]  # (the dead letter's record, the topic it went back to)


@dataclass
class RedriveStats:
    """What a redrive read and sent back."""

    read: int = 0  # dead letters read, of any reason
    redriven: int = 0
    by_topic: Counter[str] = field(default_factory=Counter)  # source topic -> sent back there
    no_source: int = 0  # of the reason, but naming no source topic that exists: left where they are
    other_reasons: Counter[str] = field(default_factory=Counter)
    stopped_short: list[str] = field(default_factory=list)  # partitions left before their end: nothing came
    stopped: bool = False  # by `stop` or `max_records`, before the end: the next run goes on

    def summary(self) -> dict[str, Any]:
        return {"read": self.read, "redriven": self.redriven, "to": dict(sorted(self.by_topic.items())),
                "no_source": self.no_source, "other_reasons": dict(sorted(self.other_reasons.items())),
                "stopped": self.stopped or bool(self.stopped_short)}


def redrive_group(group_id: str, topic: str, reason: str) -> str:
    """The consumer group whose offsets say which dead letters of `reason` in `topic` went back."""
    return f"{group_id}.redrive.{topic}.{reason}"


def redriven_headers(headers: list[tuple[str, bytes | None]] | None, topic: str, partition: int,
                     offset: int) -> list[tuple[str, bytes]]:
    """The original record's headers (not the dead letter's own, nor an earlier redrive's), and where
    this one was redriven from."""
    kept = record_headers(headers, drop=OWN_HEADERS | {constants.REDRIVEN_FROM_HEADER})
    return kept + [(constants.REDRIVEN_FROM_HEADER, f"{topic}[{partition}]@{offset}".encode())]


def redrive(settings: Settings, topic: str, reason: str, max_records: int | None = None,
            stop: threading.Event | None = None, on_sent: OnSent | None = None,
            end_wait_s: float = END_WAIT_S) -> RedriveStats:
    """Send the dead letters of `reason` in `topic` back to their source topics (see the module doc).

    Parameters
    ----------
    settings
        The broker, and the group id the redrive group is named after.
    topic, reason
        The dead-letter topic, and the ``fraudstream.reason`` of the dead letters to send back.
    max_records
        Stop after sending this many (None: up to the end the topic had at the start).
    stop
        Set to stop after the batch in hand (its sends acknowledged and committed).
    on_sent
        Called with (dead-letter record, source topic) for each sent, once its batch is acknowledged.
    end_wait_s
        Stop short after this long without records or news of a partition's end (a broker that stopped
        answering): `RedriveStats.stopped_short` names the partitions left before their end.

    Returns
    -------
    RedriveStats
        What was read and sent; `ServiceError` when the broker did not acknowledge a batch (nothing of
        it is committed), `ConfigError` when `topic` does not exist.
    """
    if not reason:
        raise ConfigError("a redrive needs the reason of the dead letters to send back")
    stop = stop or threading.Event()
    consumer = make_consumer(settings, group_id=redrive_group(settings.group_id, topic, reason))
    producer: KafkaProducer | None = None
    stats = RedriveStats()
    try:
        parts = partitions_of(consumer, topic)
        if not parts:
            raise ConfigError(f"topic {topic!r} does not exist (no consumer has run against this broker?)")
        consumer.assign(parts)  # no group join: the group only keeps the offsets
        producer = make_producer(settings, acks="all")  # acknowledged: durable, before the commit
        _run(consumer, producer, parts, topic, reason, max_records, stop, stats, on_sent, end_wait_s)
    finally:
        if producer is not None:
            close_producer(producer, 5.0)  # after a failed batch its close fails too: the first error is the one
        consumer.close(autocommit=False)
    return stats


def _run(consumer: KafkaConsumer, producer: KafkaProducer, parts: list[TopicPartition], topic: str, reason: str,
         max_records: int | None, stop: threading.Event, stats: RedriveStats, on_sent: OnSent | None,
         end_wait_s: float) -> None:
    ends: dict[TopicPartition, int] = {}  # each partition's end when first known: the run stops there
    sources: dict[str, list[int]] = {}  # source topic -> its partitions
    past_end = PastEndRewinder()
    last_progress = time.monotonic()
    uncommitted: dict[TopicPartition, OffsetAndMetadata] = {}
    while not stop.is_set():
        polled = consumer.poll(timeout_ms=200)
        past_end.check(consumer)
        if polled:
            last_progress = time.monotonic()
        for tp in parts:
            high = consumer.highwater(tp)
            if tp not in ends and high is not None:
                ends[tp], last_progress = high, time.monotonic()
                position = fetch_position(consumer, tp)
                if position > high:  # a log lost under the offsets: Tansu answers nothing from there
                    log.warning("%s[%d]: this redrive's offset %d is past the log's end %d (the log was lost?): "
                                "from its start", tp.topic, tp.partition, position, high)
                    consumer.seek_to_beginning(tp)
        sent: list[tuple[Any, str, Any]] = []
        done: dict[TopicPartition, OffsetAndMetadata] = {}
        for tp, records in polled.items():
            for record in records:
                if record.offset >= ends.get(tp, math.inf):
                    break
                if max_records is not None and stats.redriven + len(sent) >= max_records:
                    stats.stopped = True  # a dead letter left before the end: the next run goes on here
                    break
                done[tp] = OffsetAndMetadata(record.offset + 1, "", -1)
                stats.read += 1
                own = own_headers(record.headers)
                why = own[constants.DLQ_HEADER_REASON]
                if why != reason:
                    stats.other_reasons[why or "?"] += 1
                    continue
                source = own[constants.DLQ_HEADER_TOPIC]
                partitions = sources.get(source) if source else None
                if source and partitions is None:  # the consumer's metadata: it creates no topic
                    partitions = sources[source] = sorted(consumer.partitions_for_topic(source) or [])
                if not partitions:
                    stats.no_source += 1
                    log.warning("%s[%d]@%d names no source topic that exists (%r): not sent, left in %s",
                                tp.topic, tp.partition, record.offset, source, tp.topic)
                    continue
                partition = header_int(own[constants.DLQ_HEADER_PARTITION])
                future = producer.send(source, key=record.key, value=record.value,
                                       partition=partition if partition in partitions else None,
                                       headers=redriven_headers(record.headers, tp.topic, tp.partition, record.offset))
                sent.append((record, source, future))
        _acknowledge(producer, sent)
        stats.redriven += len(sent)
        for record, source, _ in sent:  # acknowledged: told before the commit, which a second Ctrl-C may cut
            stats.by_topic[source] += 1
            if on_sent is not None:
                on_sent(record, source)
        uncommitted.update(done)
        behind = [tp for tp in parts if tp not in ends or fetch_position(consumer, tp) < ends[tp]]
        if not behind and not stats.stopped:  # all read: each partition's end, even one no record came from,
            # whose offset may have been past its log's end (rewound here, or by kafka-python): kept, it would
            # skip the first records of a log that grows past it before the next run
            uncommitted.update((tp, OffsetAndMetadata(ends[tp], "", -1)) for tp in parts)
        if uncommitted and (stats.redriven or stats.no_source):  # after the sends are acknowledged, and not
            consumer.commit(uncommitted)  # before a dead letter of the reason was seen (a misspelt one keeps none)
            uncommitted = {}
        if stats.stopped or not behind:
            return
        if stop.is_set():
            stats.stopped = True
            return
        if time.monotonic() - last_progress > end_wait_s:
            stats.stopped_short = [f"{tp.topic}[{tp.partition}]" for tp in behind]
            return


def _acknowledge(producer: KafkaProducer, sent: list[tuple[Any, str, Any]]) -> None:
    if not sent:
        return
    try:
        producer.flush(timeout=SEND_TIMEOUT_S)
    except KafkaError as exc:
        raise ServiceError(f"could not send dead letters back within {SEND_TIMEOUT_S:.0f} s: {exc}") from exc
    failed = [future.exception for _, _, future in sent if future.failed()]
    if failed or not all(future.is_done for _, _, future in sent):
        first = failed[0] if failed else "no answer"
        raise ServiceError(f"{len(failed)} dead letter(s) could not be sent back: {first}; nothing of this batch "
                           "is marked as sent back, so the next run sends it again")

