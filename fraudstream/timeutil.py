"""Parsing of durations ("7d", "90s") and timestamps used by the CLI and settings."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from fraudstream.errors import ConfigError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


MAX_DURATION = timedelta(days=3650)


def parse_duration(text: str | float | int | timedelta) -> timedelta:
    """Parse a duration such as ``7d``, ``36h``, ``15m``, ``90s`` or ``250ms`` (a number, not text: seconds).
    Text needs its unit: ``--label-delay 7`` read as seven seconds would let a backtest learn each
    label at once.

    >>> parse_duration("7d")
    datetime.timedelta(days=7)
    >>> parse_duration("1.5h").total_seconds(), parse_duration("0")
    (5400.0, datetime.timedelta(0))
    >>> parse_duration("7")
    Traceback (most recent call last):
    ...
    fraudstream.errors.ConfigError: a duration needs its unit: '7' (e.g. 7d, 36h, 15m, 7s)
    >>> parse_duration("99999999999d")
    Traceback (most recent call last):
    ...
    fraudstream.errors.ConfigError: duration '99999999999d' is longer than 3650d (ten years): no window, delay or lateness needs more
    """
    if isinstance(text, timedelta):
        return text
    if isinstance(text, (int, float)):
        return timedelta(seconds=float(text))
    match = _DURATION.match(text)
    if not match:
        raise ConfigError(f"not a duration: {text!r} (use e.g. 7d, 36h, 15m, 90s)")
    value, unit = match.groups()
    if unit is None and float(value):  # zero is zero in any unit
        raise ConfigError(f"a duration needs its unit: {text!r} (e.g. {value}d, 36h, 15m, {value}s)")
    seconds = float(value) * _UNIT_SECONDS[unit or "s"]
    if seconds > MAX_DURATION.total_seconds():  # event times are 1990..2100; timedelta overflows at 10^9 days
        raise ConfigError(f"duration {text!r} is longer than {MAX_DURATION.days}d (ten years): no window, delay or "
                          "lateness needs more")
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """The shortest text `parse_duration` reads back as exactly `delta` (milliseconds kept).

    >>> format_duration(timedelta(days=7)), format_duration(timedelta(hours=1)), format_duration(timedelta(seconds=90))
    ('7d', '1h', '90s')
    >>> format_duration(timedelta(milliseconds=250)), format_duration(timedelta(0))
    ('250ms', '0s')
    """
    ms = round(delta.total_seconds() * 1000)
    if ms == 0:
        return "0s"
    for unit in ("d", "h", "m", "s"):
        size = round(_UNIT_SECONDS[unit] * 1000)
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def parse_time(text: str) -> datetime:
    """Parse an ISO-8601 date or date-time; naive values are taken as UTC.

    >>> parse_time("2018-07-04")
    datetime.datetime(2018, 7, 4, 0, 0, tzinfo=datetime.timezone.utc)
    >>> parse_time("2018-07-04T10:00:00+02:00").isoformat()
    '2018-07-04T08:00:00+00:00'

    A lower-case ``z`` (RFC 3339 allows it; the topics and recorded files take it) as well:

    >>> parse_time("2018-07-04T10:00:00z") == parse_time("2018-07-04T10:00:00Z")
    True
    """
    iso = text.strip()
    if iso[-1:] in ("z", "Z"):  # Python 3.11's fromisoformat refuses a lower-case one
        iso = iso[:-1] + "+00:00"
    try:
        value = datetime.fromisoformat(iso)
    except ValueError as exc:
        raise ConfigError(f"not a date or time: {text!r} (use ISO-8601, e.g. 2018-07-04)") from exc
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_US = timedelta(microseconds=1)


def epoch_us(when: datetime) -> int:
    """Microseconds since the epoch of an aware time (exact, unlike ``timestamp()``).

    >>> epoch_us(datetime(1970, 1, 1, 0, 0, 1, 5, tzinfo=timezone.utc))
    1000005
    >>> from_epoch_us(1000005).isoformat()
    '1970-01-01T00:00:01.000005+00:00'
    """
    return (when - _EPOCH) // _US


def from_epoch_us(us: int) -> datetime:
    """The aware UTC time of `epoch_us`."""
    return _EPOCH + us * _US


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)
