"""Independent kafka-python helpers for tests: raw produce, read a whole topic, committed offsets; a
broker of a test's own that it pauses."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterable

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from fraudstream.config import Settings
from fraudstream.kafka_io import end_of_log


def produce_raw(settings: Settings, topic: str, items: Iterable[tuple[bytes | None, bytes]],
                headers: list[tuple[str, bytes]] | None = None) -> int:
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=5)
    count = 0
    for key, value in items:
        producer.send(topic, key=key, value=value, headers=headers)
        count += 1
    producer.flush()
    producer.close()
    return count


def read_topic(settings: Settings, topic: str, timeout: float = 20.0, expect: int | None = None) -> list[ConsumerRecord]:
    """Every record of `topic`, read without a group, up to the fetch high watermark of each partition."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None, enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        records: list[ConsumerRecord] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=300)
            for recs in batch.values():
                records.extend(recs)
            done = all(
                consumer.highwater(tp) is not None and consumer.position(tp) >= consumer.highwater(tp) for tp in parts
            )
            if done and not batch and (expect is None or len(records) >= expect):
                break
        return records
    finally:
        consumer.close()


def committed_and_end(settings: Settings, topic: str) -> tuple[dict[int, int | None], dict[int, int]]:
    """The group's committed offsets and the end of each partition (fetch high watermark)."""
    reader = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=settings.group_id,
                           enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(reader.partitions_for_topic(topic) or [])]
        committed = {tp.partition: reader.committed(tp) for tp in parts}
    finally:
        reader.close(autocommit=False)
    return committed, ends_of(settings, topic)


def ends_of(settings: Settings, topic: str, timeout: float = 20.0) -> dict[int, int]:
    """The end (fetch high watermark) of each partition of `topic` that holds records, read from a fetch
    near the end: Tansu 0.6's ListOffsets (latest) answers the first offset of a partition's last
    batch (964 where the high watermark was 1,062), so the fetch starts there; reading the whole
    topic for it took ~5 s for 60,000 records."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None, enable_auto_commit=False,
                             fetch_max_wait_ms=50)  # an empty partition's high watermark comes with the fetch's answer
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(parts)
        for tp, offset in consumer.end_offsets(parts).items():
            consumer.seek(tp, offset)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            consumer.poll(timeout_ms=50)
            if all(consumer.highwater(tp) is not None and consumer.position(tp) >= consumer.highwater(tp)
                   for tp in parts):
                break
        # the product's end-of-log: the fetch's high watermark, ListOffsets for a partition whose fetch did not
        # answer in time (short by its last batch on Tansu: "not committed yet", never an end of 0 taken as empty)
        return {tp.partition: end for tp, end in end_of_log(consumer, parts).items() if end > 0}
    finally:
        consumer.close()


class PausedBroker:
    """A Tansu of a test's own (`settings`: pointing at it) that `pause_after(seconds)` stops with
    SIGSTOP (a broker that answers nothing), `pause` at once, `resume` continues; stopped by PID when the block ends."""

    def __init__(self, settings: Settings) -> None:
        from fraudstream.services import tansu_process

        self.broker = tansu_process()
        self.settings = settings
        self.timer: threading.Timer | None = None

    def __enter__(self) -> PausedBroker:
        from fraudstream.services import wait_for_kafka

        self.broker.start()
        self.settings = self.settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{self.broker.port}"})
        wait_for_kafka(self.settings.kafka_bootstrap or "")
        return self

    def pause_after(self, seconds: float) -> None:
        self.timer = threading.Timer(seconds, self._signal, (signal.SIGSTOP,))
        self.timer.start()

    def pause(self) -> None:
        """Stop the broker now."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer.join()
        self._signal(signal.SIGCONT)

    def _signal(self, signum: int) -> None:
        if self.broker.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.broker.pid, signum)

    def __exit__(self, *exc: object) -> None:
        try:
            self.resume()
        finally:
            self.broker.stop()
