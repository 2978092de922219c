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
from collections.abc import Callable
from typing import TypeVar

import redis.exceptions
from kafka.errors import KafkaError

from fraudstream.errors import FraudstreamError
from fraudstream.stream.dlq import PublishFailed

log = logging.getLogger(__name__)

T = TypeVar("T")

# what an outage of Redis or the broker raises; anything else is a bug or bad data, not retried
TRANSIENT = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, redis.exceptions.BusyLoadingError,
             KafkaError, PublishFailed)


class BatchAbandoned(FraudstreamError):
    """A stop was requested while a batch waited for a server; its offsets stay uncommitted."""


def retry_until_stopped(what: str, step: Callable[[], T], stop: threading.Event, max_backoff: float,
                        delay: float = 0.5) -> T:
    """`step()`, run again after each `TRANSIENT` error (waiting `delay`, doubled each time up to
    `max_backoff`, logged with ``waiting_for=what``) until it returns; `BatchAbandoned` when `stop`
    is set and it fails."""
    while True:
        try:
            return step()
        except TRANSIENT as exc:
            if stop.is_set():
                raise BatchAbandoned(what) from exc
            log.warning("%s failed, retrying in %.1f s: %s", what, delay, exc, extra={"waiting_for": what})
            stop.wait(delay)
            delay = min(max_backoff, delay * 2)
