"""A consumer step retried through a server outage, with backoff, until it succeeds or a stop is
requested (then `BatchAbandoned`: the batch stays uncommitted, to be delivered again).

Every step of a batch is idempotent, so running one again after a connection error is safe.

>>> import threading
>>> failures = [redis.exceptions.ConnectionError("Valkey is restarting")] * 2
>>> def step() -> str:
...     if failures:
...         raise failures.pop()
...     return "done"
>>> retry_until_stopped("scoring", step, threading.Event(), max_backoff=0.02, delay=0.01)
'done'
>>> stop = threading.Event()
>>> stop.set()
>>> failures.append(redis.exceptions.ConnectionError("gone"))
>>> try:
...     retry_until_stopped("scoring", step, stop, max_backoff=0.02)
... except BatchAbandoned as exc:
...     print(f"abandoned: {exc}")
abandoned: scoring
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import redis.exceptions
from kafka.errors import KafkaError

from fraudstream.errors import FraudstreamError
from fraudstream.stream.dlq import PublishFailed

log = logging.getLogger(__name__)

T = TypeVar("T")

# Redis refusing writes for a while: full under maxmemory-policy noeviction (OOM), a replica until its
# failover completes (READONLY), a cluster moving slots or without a master (TRYAGAIN, CLUSTERDOWN,
# MASTERDOWN). A restart would only retry the batch from its last commit; the loop retries it here.
_REFUSING_FOR_A_WHILE = tuple(getattr(redis.exceptions, name) for name in (
    "OutOfMemoryError", "ReadOnlyError", "TryAgainError", "ClusterDownError", "MasterDownError")
    if hasattr(redis.exceptions, name))
# what an outage of Redis or the broker raises; anything else is a bug or bad data, not retried
TRANSIENT = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, redis.exceptions.BusyLoadingError,
             *_REFUSING_FOR_A_WHILE, KafkaError, PublishFailed)
_HINTS = {"OutOfMemoryError": " (Redis is full: raise its maxmemory or free memory)",
          "ReadOnlyError": " (a read-only replica: waiting for the failover)"}


@dataclass
class Waits:
    """An outage as the metrics show it: the steps retried so far, and since when (monotonic) the
    current step has been failing (None: not waiting).

    >>> waits = Waits()
    >>> waits.waited_s(now=5.0)
    0.0
    >>> waits.since = 2.0
    >>> waits.waited_s(now=5.0)
    3.0
    """

    retries: int = 0
    since: float | None = None

    def waited_s(self, now: float | None = None) -> float:
        return 0.0 if self.since is None else (time.monotonic() if now is None else now) - self.since


class BatchAbandoned(FraudstreamError):
    """A stop was requested while a batch waited for a server; its offsets stay uncommitted."""


def retry_until_stopped(what: str, step: Callable[[], T], stop: threading.Event, max_backoff: float,
                        delay: float = 0.5, waits: Waits | None = None,
                        while_waiting: Callable[[BaseException], None] | None = None) -> T:
    """`step()`, run again after each `TRANSIENT` error (waiting `delay`, doubled each time up to
    `max_backoff`, logged with ``waiting_for=what``) until it returns; `BatchAbandoned` when `stop`
    is set and it fails. `waits` counts the retries and the wait's start (cleared by the call that
    set it, however that call ends: a nested step's success does not end the outer wait);
    `while_waiting(error)` is called before each wait (the consumer refreshes its lag there), and
    its time is part of the wait.

    >>> waits, failures = Waits(), [redis.exceptions.ConnectionError("gone")] * 3
    >>> def outer() -> str:
    ...     retry_until_stopped("inner", lambda: "read", threading.Event(), 0.01, 0.001, waits)  # succeeds
    ...     if failures:
    ...         raise failures.pop()
    ...     return "written"
    >>> seen = []
    >>> retry_until_stopped("outer", outer, threading.Event(), 0.01, 0.001, waits,
    ...                     while_waiting=lambda exc: seen.append(waits.since is not None))
    'written'
    >>> seen, waits.retries, waits.since
    ([True, True, True], 3, None)
    >>> stopping = threading.Event()
    >>> def gone() -> str:
    ...     raise redis.exceptions.ConnectionError("gone")
    >>> try:  # a stop during the wait: the next failure abandons the batch
    ...     retry_until_stopped("abandoned", gone, stopping, 0.01, 0.001, waits, lambda exc: stopping.set())
    ... except BatchAbandoned:
    ...     print(waits.retries, waits.since)
    4 None
    >>> failures.append(redis.exceptions.ConnectionError("gone"))
    >>> def failing_then_raising(exc: BaseException) -> None:
    ...     raise ValueError("a bug in the wait's work")
    >>> try:
    ...     retry_until_stopped("outer", outer, threading.Event(), 0.01, 0.001, waits, failing_then_raising)
    ... except ValueError:
    ...     pass
    >>> waits.since  # however the call that set it ended
    """
    owner = False  # whether this call set `waits.since`: it clears it however it ends
    try:
        while True:
            try:
                return step()
            except TRANSIENT as exc:
                if stop.is_set():
                    raise BatchAbandoned(what) from exc
                if waits is not None:
                    waits.retries += 1
                    if waits.since is None:
                        waits.since, owner = time.monotonic(), True
                hint = _HINTS.get(type(exc).__name__, "")
                log.warning("%s failed, retrying in %.1f s: %s%s", what, delay, exc, hint,
                            extra={"waiting_for": what})
                began = time.monotonic()
                if while_waiting is not None:
                    while_waiting(exc)
                stop.wait(max(0.0, delay - (time.monotonic() - began)))
                delay = min(max_backoff, delay * 2)
    finally:
        if owner and waits is not None:
            waits.since = None
