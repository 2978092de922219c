"""Dead letters: the original bytes, unchanged, with headers naming the error and the source; and
the flush that a batch's sends (alerts, dead letters) must pass before its offsets are committed."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from kafka import KafkaProducer
from kafka.consumer.fetcher import ConsumerRecord

from fraudstream import constants
from fraudstream.errors import FraudstreamError

log = logging.getLogger(__name__)


OWN_HEADERS = frozenset((constants.DLQ_HEADER_REASON, constants.DLQ_HEADER_ERROR, constants.DLQ_HEADER_TOPIC,
                         constants.DLQ_HEADER_PARTITION, constants.DLQ_HEADER_OFFSET))


def dead_letter_headers(record: ConsumerRecord, reason: str, error: str) -> list[tuple[str, bytes]]:
    """Headers of a dead letter: the record's own (a trace id, the producer's metadata), then the
    reason, error text and source topic/partition/offset. A record sent again from a dead-letter
    topic loses the names of its first dead letter: they would say two things at once. A header
    without a value (Kafka allows it; kafka-python's producer refuses to send one) gets an empty one.

    >>> from types import SimpleNamespace
    >>> record = SimpleNamespace(topic="transactions", partition=2, offset=41,
    ...                          headers=[("trace", b"ab12"), ("fraudstream.reason", b"too_late"), ("flag", None)])
    >>> [(k, v) for k, v in dead_letter_headers(record, "invalid_json", "bad") if k != "fraudstream.error"]
    [('trace', b'ab12'), ('flag', b''), ('fraudstream.reason', b'invalid_json'), ('fraudstream.source.topic', \
b'transactions'), ('fraudstream.source.partition', b'2'), ('fraudstream.source.offset', b'41')]
    """
    return record_headers(getattr(record, "headers", None)) + [
        (constants.DLQ_HEADER_REASON, reason.encode()),
        (constants.DLQ_HEADER_ERROR, error.encode("utf-8", "replace")[:2000]),
        (constants.DLQ_HEADER_TOPIC, record.topic.encode()),
        (constants.DLQ_HEADER_PARTITION, str(record.partition).encode()),
        (constants.DLQ_HEADER_OFFSET, str(record.offset).encode()),
    ]


def record_headers(headers: list[tuple[str, bytes | None]] | None,
                   drop: frozenset[str] = OWN_HEADERS) -> list[tuple[str, bytes]]:
    """A record's headers but those in `drop` (by default a dead letter's own), a missing value as b""."""
    return [(key, b"" if value is None else value) for key, value in (headers or []) if key not in drop]


def own_headers(headers: list[tuple[str, bytes | None]] | None) -> dict[str, str]:
    """A dead letter's own headers (`OWN_HEADERS`) as text, "" for one it lacks.

    >>> own = own_headers([("fraudstream.reason", b"too_late"), ("fraudstream.source.partition", b"2")])
    >>> own["fraudstream.reason"], header_int(own["fraudstream.source.partition"]), own["fraudstream.error"]
    ('too_late', 2, '')
    """
    by_key = dict(headers or [])
    return {key: (by_key.get(key) or b"").decode("utf-8", "replace") for key in OWN_HEADERS}


def header_int(text: str) -> int | None:
    """A header's number (a partition, an offset), None when it is none."""
    return int(text) if text.strip().lstrip("-").isdigit() else None


class ReasonLog:
    """Which dead letters are logged one by one: per reason, the first `burst` of each `window_s`
    seconds; the others are counted, and the count is logged as one line when the reason's window
    has passed (at its next dead letter, or at the consumer loop's next `tick`) or at `flush`. A replay
    into the wrong topic can dead-letter every record: one line each made 28,818 warnings of a single
    run (2026-12-05).

    >>> now = [0.0]
    >>> limiter = ReasonLog("tx.dlq", burst=2, window_s=60.0, clock=lambda: now[0])
    >>> [limiter.allow("too_late") for _ in range(5)], limiter.allow("invalid_json")
    ([True, True, False, False, False], True)
    >>> now[0] = 61.0
    >>> limiter.allow("too_late")  # logs "3 more dead letters (too_late) ..." first
    True
    >>> limiter.pending()
    {}
    >>> _ = [limiter.allow("too_late") for _ in range(4)]  # a flood that stops: reported once its window passed
    >>> limiter.tick(); limiter.pending()
    {'too_late': 3}
    >>> now[0] = 122.0
    >>> limiter.tick(); limiter.pending()  # logs "3 more dead letters (too_late) ..."
    {}
    """

    def __init__(self, dlq_topic: str, burst: int = 10, window_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.dlq_topic, self.burst, self.window_s, self.clock = dlq_topic, burst, window_s, clock
        self.windows: dict[str, list[float]] = {}  # reason: [window start, logged, not logged]

    def allow(self, reason: str) -> bool:
        """Whether to log this dead letter of `reason` one by one."""
        now = self.clock()
        window = self.windows.get(reason)
        if window is None or now - window[0] >= self.window_s:
            if window is not None:
                self._report(reason, window)
            window = self.windows[reason] = [now, 0, 0]
        if window[1] < self.burst:
            window[1] += 1
            return True
        window[2] += 1
        return False

    def pending(self) -> dict[str, int]:
        """Dead letters per reason counted but not logged yet."""
        return {reason: int(w[2]) for reason, w in self.windows.items() if w[2]}

    def tick(self) -> None:
        """Log the counts of the windows that have passed: a flood that stopped is reported then,
        not at its reason's next dead letter or when the consumer stops."""
        now = self.clock()
        for reason, window in self.windows.items():
            if window[2] and now - window[0] >= self.window_s:
                self._report(reason, window)
                window[2] = 0

    def flush(self) -> None:
        """Log the counts not logged yet."""
        for reason, window in self.windows.items():
            self._report(reason, window)
            window[2] = 0

    def _report(self, reason: str, window: list[float]) -> None:
        if window[2]:
            log.warning("%d more dead letters (%s) to %s in %.0f s, not logged one by one",
                        window[2], reason, self.dlq_topic, self.clock() - window[0],
                        extra={"reason": reason, "dlq_topic": self.dlq_topic, "dead_letters": int(window[2])})


class DeadLetterWriter:
    """Sends bad records to a dead-letter topic; the caller flushes the producer before committing.
    Each dead letter is logged, but for floods (`ReasonLog`): then a count per reason."""

    def __init__(self, producer: KafkaProducer, topic: str) -> None:
        self.producer = producer
        self.topic = topic
        self.count = 0
        self.logged = ReasonLog(topic)

    def send(self, record: ConsumerRecord, reason: str, error: str) -> Any:
        self.count += 1
        if self.logged.allow(reason):
            log.warning(
                "dead-lettered: %s", error[:300],
                extra={"reason": reason, "topic": record.topic, "partition": record.partition, "offset": record.offset,
                       "dlq_topic": self.topic},
            )
        return self.producer.send(
            self.topic, key=record.key, value=record.value if record.value is not None else b"",
            headers=dead_letter_headers(record, reason, error),
        )


DeadLetter = tuple[DeadLetterWriter, ConsumerRecord, str, str]  # writer, record, reason, error


class PublishFailed(FraudstreamError):
    """The broker did not acknowledge an alert or dead letter; the batch is not committed."""


def flush_acknowledged(producer: KafkaProducer, futures: list[Any], resend: list[DeadLetter] | None = None) -> None:
    """Flush the producer; raise `PublishFailed` unless every send of `futures` was acknowledged.
    `resend`: the dead letters the futures are of; the unacknowledged ones are sent again and their
    futures replaced in `futures`, for the caller's next try.

    >>> from types import SimpleNamespace as Sent
    >>> acked, lost = Sent(is_done=True, failed=lambda: False), Sent(is_done=False)
    >>> producer = Sent(flush=lambda timeout: None)
    >>> writer = Sent(send=lambda record, reason, error: acked)  # sends again, acknowledged this time
    >>> futures = [acked, lost]
    >>> try:
    ...     flush_acknowledged(producer, futures, resend=[(writer, "record 1", "too_late", "..."),
    ...                                                   (writer, "record 2", "too_late", "...")])
    ... except PublishFailed as exc:
    ...     print(exc)
    1 sends not acknowledged: timed out
    >>> futures == [acked, acked]  # only the lost one was sent again
    True
    """
    if not futures:
        return
    producer.flush(timeout=30)
    failed = [i for i, f in enumerate(futures) if not f.is_done or f.failed()]
    if failed:
        first = futures[failed[0]]
        if resend is not None:
            again = set(failed)
            futures[:] = [resend[i][0].send(*resend[i][1:]) if i in again else f for i, f in enumerate(futures)]
        raise PublishFailed(f"{len(failed)} sends not acknowledged: {first.exception if first.is_done else 'timed out'}")
