"""Logging set-up: readable text by default, one JSON object per line with ``--log-format json``."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Formats a record as JSON; `extra=` fields (topic, partition, offset, transaction_id...) are kept."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


class TextFormatter(logging.Formatter):
    """Plain text with `extra=` fields appended as key=value."""

    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        extras = [f"{k}={v}" for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")]
        return f"{base} {' '.join(extras)}" if extras else base


class RepeatedKafkaMessages(logging.Filter):
    """Lets each kafka-python message through once per `window_s` seconds (per logger and message
    template); the next one through says how many were held back (``held_back=N``). In a broker
    outage kafka-python logs every failed connection attempt, fetch and heartbeat: ~50 lines in 25 s.

    >>> now = [0.0]
    >>> quiet = RepeatedKafkaMessages(window_s=30.0, clock=lambda: now[0])
    >>> def lost(node):
    ...     return logging.makeLogRecord({"name": "kafka.net.connection", "msg": "%s: Connection lost", "args": (node,)})
    >>> [quiet.filter(lost(n)) for n in (1, 2, 1)], quiet.filter(logging.makeLogRecord({"name": "fraudstream.x"}))
    ([True, False, False], True)
    >>> now[0] = 31.0
    >>> record = lost(1)
    >>> quiet.filter(record), record.held_back
    (True, 2)
    """

    def __init__(self, window_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()  # kafka-python logs from its IO thread too
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}  # key -> (last let through, held back since)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name != "kafka" and not record.name.startswith("kafka."):
            return True
        key, now = (record.name, str(record.msg)), self._clock()
        with self._lock:
            last = self._seen.get(key)
            if last is not None and now - last[0] < self.window_s:
                self._seen[key] = (last[0], last[1] + 1)
                return False
            self._seen[key] = (now, 0)
        if last is not None and last[1]:
            record.held_back = last[1]
        return True


def json_logging() -> bool:
    """Whether stderr takes JSON lines only (`setup_logging` with ``json``): the commands' own notes
    and errors go through logging then."""
    return any(isinstance(handler.formatter, JsonFormatter) for handler in logging.getLogger().handlers)


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))
    handler.addFilter(RepeatedKafkaMessages())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("kafka").setLevel(max(logging.WARNING, root.level))
    # kafka-python 3.0's event loop warns whenever a task runs over 100 ms ("blocking the event loop"),
    # which a busy 2-core machine does all the time; it says nothing about our records.
    logging.getLogger("kafka.net.selector").setLevel(max(logging.ERROR, root.level))


class OccasionalWarning:
    """A warning logged at its first occurrence, then at most once every `every_s` seconds with the
    count of occurrences since: for a condition that can hold for every record of a feed.

    >>> warning = OccasionalWarning(logging.getLogger("example"), every_s=300.0)
    >>> first, again = (lambda: "customer c1 is odd"), (lambda n, s: f"{n} more odd customers in {s:.0f} s")
    >>> warning.note(1, first, again, now=0.0), warning.note(2, first, again, now=10.0)
    ('customer c1 is odd', None)
    >>> warning.note(1, first, again, now=301.0)
    '3 more odd customers in 301 s'
    """

    def __init__(self, logger: logging.Logger, every_s: float = 300.0) -> None:
        self.logger = logger
        self.every_s = every_s
        self.unreported = 0  # counted since the last warning
        self.warned_at: float | None = None

    def note(self, count: int, first: Callable[[], str], again: Callable[[int, float], str],
             now: float | None = None) -> str | None:
        """Count `count` occurrences; log `first()` at the first, or `again(unreported, seconds)` when
        the last warning is `every_s` old. The message logged, if any."""
        now = time.monotonic() if now is None else now
        self.unreported += count
        if self.warned_at is None:
            message = first()
        elif now - self.warned_at >= self.every_s:
            message = again(self.unreported, now - self.warned_at)
        else:
            return None
        self.logger.warning(message)
        self.warned_at, self.unreported = now, 0
        return message


_SECRET_CONFIG_KEYS = ("sasl_plain_password", "ssl_password", "sasl_oauth_token_provider")


class HiddenClientSecrets(logging.Filter):
    """Replaces the secrets of a kafka-python client configuration logged whole (its admin client
    logs its configuration at DEBUG, the SASL password too) with ``***``. `hide_client_secrets`
    attaches it; the CLI keeps kafka-python's loggers at WARNING, this is for library users' logs.

    >>> record = logging.LogRecord("kafka.admin.client", logging.DEBUG, "", 0, "configuration: %s",
    ...                            ({"sasl_plain_password": "hunter2", "client_id": "a"},), None)
    >>> HiddenClientSecrets().filter(record), record.getMessage()
    (True, "configuration: {'sasl_plain_password': '***', 'client_id': 'a'}")
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, dict):
            record.args = _hidden(args)
        elif isinstance(args, tuple) and any(isinstance(arg, dict) for arg in args):
            record.args = tuple(_hidden(arg) if isinstance(arg, dict) else arg for arg in args)
        return True


def _hidden(config: dict[str, Any]) -> dict[str, Any]:
    if not any(config.get(key) for key in _SECRET_CONFIG_KEYS):
        return config
    return {key: "***" if key in _SECRET_CONFIG_KEYS and value else value for key, value in config.items()}


_HIDDEN_CLIENT_SECRETS = HiddenClientSecrets()


def hide_client_secrets() -> None:
    """Attach `HiddenClientSecrets` to the kafka-python logger that logs a configuration whole (once)."""
    logging.getLogger("kafka.admin.client").addFilter(_HIDDEN_CLIENT_SECRETS)
