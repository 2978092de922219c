"""Replay of a recorded file into Kafka, in event-time order, with labels after a delay.

Transactions go to the transactions topic (key = customer id). A transaction's label goes to the
labels topic once the replayed event time reaches its event time + `label_delay`: before the first
transaction at or after that moment, or — when pacing — when the scaled clock passes it. Labels
still pending when the input ends are published at the end (``final_labels=False`` drops them); with
an `end`, only those reported before `end`, so that a replay from ``start=end`` publishes the others
and consecutive ranges publish every label exactly once. Of those, labels reported more than the
settings' `max_future_skew` after now (a file of the last few days) are counted and not sent: the
consumers would dead-letter them. A transaction dated more than that after now stops the replay
with a `ConfigError` that says where to resume: the labels due before it are sent as far as the
consumers accept them now, and the resume point is the first one left (else that transaction).

Pacing: with ``speed=X`` a transaction is sent ``(event_time - origin) / X`` seconds after the start
(origin = `start` if given, else the first row's time); ``speed=None`` sends as fast as possible.

Delivery is confirmed (`Publisher.confirm_if_due`: a flush every `DELIVERED_EVERY_S`): a broker that
goes away stops the replay within `DELIVERY_WAIT_S` of that with `DeliveryFailed`, which says from
where to resume: the last moment confirmed.

Stopping (`stop` set, e.g. by Ctrl-C) finishes the transactions that share the current event time
(when pacing, a stop while waiting for the next event time sends nothing more of it),
publishes the labels due before the next one, flushes, and reports that next event time as
``resume_from``: replaying again with ``start=resume_from`` continues exactly, without duplicates,
because a resumed replay re-reads the preceding `label_delay` of the file for labels only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from fraudstream.config import Settings
from fraudstream.errors import ConfigError, InputError, ServiceError
from fraudstream.producer.files import read_recorded
from fraudstream.producer.recorded import Recorded, Span
from fraudstream.producer.publisher import Publisher
from fraudstream.producer.wire import label_json_for
from fraudstream.timeutil import format_duration, utcnow

log = logging.getLogger(__name__)
_TICK = 0.02  # longest sleep while pacing
#: A label waiting for its report time: (reported_at, key, JSON value). Plain tuples of immutable
#: values, which the garbage collector stops tracking: a week of pending labels costs it nothing.
PendingLabel = tuple[datetime, bytes, bytes]


@dataclass
class ReplayStats:
    """Progress and outcome of a replay."""

    transactions: int = 0
    labels: int = 0
    event_time: datetime | None = None  # event time of the last transaction sent
    seconds: float = 0.0
    stopped: bool = False
    resume_from: datetime | None = None  # set when stopped before the end of the input
    labels_not_sent: int = 0  # still pending at the end, reported later than the consumers accept (see `replay`)
    file_span: Span = field(default_factory=Span)  # what the replay read of the file (its window or not)

    @property
    def rate(self) -> float:
        """Transactions per second so far."""
        return self.transactions / self.seconds if self.seconds > 0 else 0.0


def replay(settings: Settings, path: str | Path, speed: float | None = None,
           label_delay: timedelta | None = None, start: datetime | None = None, end: datetime | None = None,
           stop: threading.Event | None = None, on_progress: Callable[[ReplayStats], None] | None = None,
           final_labels: bool = True, publisher: Publisher | None = None) -> ReplayStats:
    """Publish the transactions of `path` in ``[start, end)`` and their labels; see the module doc."""
    if speed is not None and speed <= 0:
        raise ConfigError(f"speed must be positive, got {speed}")
    delay = settings.label_delay if label_delay is None else label_delay
    if delay < timedelta(0):
        raise ConfigError("the label delay must not be negative")
    span = Span()
    # from the first row (the header is checked here): the rows before `start` pass through the loop below,
    # which takes the labels of the last `delay` of them and sees a stop (a Ctrl-C) while reading up to `start`
    rows = read_recorded(path, None, end, span)
    stop = stop or threading.Event()
    own_publisher = publisher is None
    publisher = publisher or Publisher(settings)
    stats = ReplayStats()
    pending: deque[PendingLabel] = deque()
    began = time.monotonic()
    origin = start
    last_progress = began
    stopping_at: datetime | None = None
    skew = settings.max_future_skew
    latest = None if skew is None else utcnow() + skew  # the consumers dead-letter transactions after it
    delivered: tuple[int, datetime] | None = None  # transactions confirmed, up to this event time
    try:
        try:
            for rec in rows:
                tx = rec.transaction
                moment = tx.event_time
                if stopping_at is not None and moment > stopping_at:
                    stats.stopped, stats.resume_from = True, moment
                    _send_labels(pending, publisher, stats, before=moment)
                    break
                if start is not None and moment < start:  # label-only lead-in of a resumed replay
                    if stop.is_set():  # (a lead-in from far into a file takes seconds): nothing sent yet
                        stats.stopped, stats.resume_from = True, start
                        break
                    if rec.is_fraud is not None and moment + delay >= start:
                        pending.append(_pending_label(rec, delay))
                    continue
                if origin is None:
                    origin = moment
                if speed is not None:
                    _pace(began, origin, moment, speed, pending, publisher, stats, stop)
                    if stopping_at is None and stop.is_set() and (stats.event_time is None or moment > stats.event_time):
                        # stopped while waiting for `moment`: it is not due yet, so it is where to resume
                        stats.stopped, stats.resume_from = True, moment
                        _send_labels(pending, publisher, stats, before=moment)
                        break
                if latest is not None and moment > latest:
                    latest = utcnow() + skew  # type: ignore[operator]  # the clock moved on (a paced replay)
                    if moment > latest:
                        raise _AheadOfNow(moment)
                if pending and pending[0][0] <= moment:
                    _send_labels(pending, publisher, stats, upto=moment)
                publisher.send_transaction(tx)
                stats.transactions += 1
                stats.event_time = moment
                if rec.is_fraud is not None:
                    pending.append(_pending_label(rec, delay))
                if publisher.confirm_if_due():
                    delivered = (stats.transactions, moment)
                if stopping_at is None and stop.is_set():
                    stopping_at = moment
                if on_progress is not None and stats.transactions % 1000 == 0:
                    now = time.monotonic()
                    if now - last_progress >= 0.1:
                        stats.seconds, last_progress = now - began, now
                        on_progress(stats)
            if not stats.stopped and final_labels:
                _send_final_labels(pending, publisher, stats, end, settings.max_future_skew)
            if own_publisher:
                publisher.close()
            else:
                publisher.flush()
        except _AheadOfNow as exc:  # the labels due before it, as far as the consumers accept them now
            _send_labels(pending, publisher, stats, before=min(exc.moment, utcnow() + skew))  # type: ignore[operator]
            # labels left before `moment` are reported after every transaction sent (those are within the
            # skew): a replay from the first of them sends them, then goes on at `moment`
            resume = min((label[0] for label in pending if label[0] < exc.moment), default=exc.moment)
            sent = (f"published {stats.transactions:,} transactions (up to {stats.event_time.isoformat()}) and "
                    f"{stats.labels:,} labels; " if stats.event_time is not None else "nothing published; ")
            raise AheadOfNowError(f"the file's transactions reach {exc.moment.isoformat()}, more than "
                              f"FRAUDSTREAM_MAX_FUTURE_SKEW ({format_duration(skew)}) after now: the consumers would dead-letter them as "
                              f"future_event_time. {sent}for a file ahead of the wall clock set FRAUDSTREAM_MAX_FUTURE_SKEW="
                              f"none here and for the consumers, and resume with --start {resume.isoformat()}", resume) from None
        except InputError as exc:  # a bad row after `stats.transactions` published ones: say where to resume
            if stats.event_time is None:
                raise
            _send_labels(pending, publisher, stats, before=stats.event_time)  # what a resumed replay will not send
            at = stats.event_time.isoformat()
            raise RowFailed(f"{exc}; published {stats.transactions:,} transactions (up to {at}) and {stats.labels:,} "
                            f"labels: after fixing the file, resume with --start {at} (the transactions and labels of "
                            "that moment are sent again, which the consumers recognise)", stats.event_time) from None
    except ServiceError as exc:  # the broker went away (also while the handlers above sent labels)
        publisher.close_after_failure(1.0, keep_open=not own_publisher)  # (what is buffered is after the resume point)
        if delivered is None:
            raise
        raise DeliveryFailed(exc, *delivered) from None
    except KeyboardInterrupt:  # a second Ctrl-C: at once, not after a wait for a broker that may be gone
        publisher.close_after_failure(0.5, keep_open=not own_publisher)
        raise
    except BaseException:  # (the errors raised above too: what was sent goes first)
        publisher.close_after_failure(60.0, keep_open=not own_publisher)
        raise
    stats.seconds = time.monotonic() - began
    stats.file_span = span
    if on_progress is not None:
        on_progress(stats)
    log.info("replayed %d transactions and %d labels from %s in %.2f s (%.0f tx/s)%s", stats.transactions,
             stats.labels, path, stats.seconds, stats.rate,
             f"; stopped, resume with --start {stats.resume_from.isoformat()}" if stats.resume_from else "")
    return stats


class DeliveryFailed(ServiceError):
    """The broker stopped acknowledging: `delivered` transactions (up to `resume_from`, and the labels
    reported by then) were; a replay from ``start=resume_from`` goes on without a gap."""

    def __init__(self, cause: BaseException, delivered: int, resume_from: datetime) -> None:
        self.cause, self.delivered, self.resume_from = cause, delivered, resume_from
        super().__init__(f"{cause}; the first {delivered:,} transactions (up to {resume_from.isoformat()}) and their "
                         f"labels due by then were delivered: once the broker is back, resume with --start "
                         f"{resume_from.isoformat()} (those of that moment are sent again, which the consumers "
                         "recognise)")


class RowFailed(InputError):
    """A bad row after some transactions were published; the message says to resume with
    ``--start resume_from`` (the CLI puts the user's other options around it)."""

    def __init__(self, message: str, resume_from: datetime) -> None:
        super().__init__(message)
        self.resume_from = resume_from


class AheadOfNowError(ConfigError):
    """The file reaches past now + `max_future_skew`; the message says to resume with ``--start resume_from``."""

    def __init__(self, message: str, resume_from: datetime) -> None:
        super().__init__(message)
        self.resume_from = resume_from


class _AheadOfNow(Exception):
    """A transaction dated more than `max_future_skew` after now: the replay stops before it."""

    def __init__(self, moment: datetime) -> None:
        super().__init__(moment.isoformat())
        self.moment = moment


def _send_final_labels(pending: deque[PendingLabel], publisher: Publisher, stats: ReplayStats, end: datetime | None,
                       max_future_skew: timedelta | None) -> None:
    """The labels still pending when the input ends (before `end`), but for those reported more than
    `max_future_skew` after now: a file of recent days has labels reported in the coming week, which
    the consumers would dead-letter as ``future_report_time``. Those are counted and not sent."""
    if max_future_skew is not None:
        latest = utcnow() + max_future_skew
        before = latest if end is None else min(end, latest)
        _send_labels(pending, publisher, stats, before=before)
        late = [label for label in pending if end is None or label[0] < end]
        if late:
            stats.labels_not_sent = len(late)
            log.warning("%d labels of the last transactions are reported after now + FRAUDSTREAM_MAX_FUTURE_SKEW "
                        "(%s; the last on %s): not sent, since the consumers would dead-letter them as "
                        "future_report_time (a simulated clock ahead of the wall clock: set it to none, here and "
                        "for the consumers)", len(late), format_duration(max_future_skew), late[-1][0].isoformat())
        return
    _send_labels(pending, publisher, stats, before=end)


def _pending_label(rec: Recorded, delay: timedelta) -> PendingLabel:
    """The label of `rec` (which has one), serialised now, due at its event time + `delay`."""
    tx = rec.transaction
    reported_at = tx.event_time + delay
    return reported_at, tx.customer_id.encode(), label_json_for(tx, bool(rec.is_fraud), reported_at)


def _pace(began: float, origin: datetime, moment: datetime, speed: float, pending: deque[PendingLabel],
          publisher: Publisher, stats: ReplayStats, stop: threading.Event) -> None:
    """Wait until `moment` is due, publishing labels as the scaled clock passes them."""
    target = began + (moment - origin).total_seconds() / speed
    while True:
        left = target - time.monotonic()
        if left <= 0 or stop.is_set():
            return
        if pending:
            replayed = origin + timedelta(seconds=(time.monotonic() - began) * speed)
            _send_labels(pending, publisher, stats, upto=replayed)
        time.sleep(min(left, _TICK))


def _send_labels(pending: deque[PendingLabel], publisher: Publisher, stats: ReplayStats,
                 upto: datetime | None = None, before: datetime | None = None) -> None:
    """Publish pending labels reported at or before `upto` / strictly before `before` / all."""
    while pending:
        reported = pending[0][0]
        if (upto is not None and reported > upto) or (before is not None and reported >= before):
            return
        _, key, value = pending.popleft()
        publisher.send_label_value(key, value)
        stats.labels += 1
