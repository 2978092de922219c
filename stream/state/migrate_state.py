"""Converting the event strings of the layouts before into the current ones (`blobs`, `terminal_blobs`).

Layout 1 (before 2026-12-06), little-endian, under ``{prefix}:{c:<id>}:ev`` and ``:geo`` and
``{prefix}:{t:<id>}:ev``: customer records of 20 bytes (t_ms (6), cents (5; the top bit: has
coordinates), terminal hash (4, a crc32), id hash (5)); coordinates as in layout 2; a terminal
string of a 4-byte count m, m fraud marks of 17 bytes (t_ms (6), known_ms (6), id hash (5)), then
records of 11 bytes (t_ms (6), id hash (5)). Layout 2 keeps times in whole seconds, 3 bytes of the
terminal hash and 4 of a terminal's id hashes, under the keys ending in ``ev2`` and ``geo2``. A
terminal's layout-2 string kept its events in arrival order under ``{prefix}:{t:<id>}:ev2`` until
the twenty-third session (2026-12-06); the same bytes sorted by time are under ``:ev3``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fraudstream.constants import (CUSTOMER_COORDINATES, CUSTOMER_EVENTS, CUSTOMER_TAG, LEGACY_COORDINATES,
                                   LEGACY_EVENTS, TERMINAL_EVENTS, TERMINAL_TAG, UNSORTED_TERMINAL_EVENTS)
from fraudstream.stream.state import blobs
from fraudstream.stream.state.terminal_blobs import (MARK_WIDTH, TERMINAL_WIDTH, fraud_mark, split_terminal,
                                                     terminal_record, terminal_string)
from fraudstream.stream.state.redis_records import glob_escaped, scanned_in_chunks
from fraudstream.stream.state.redis_store import RedisStore

log = logging.getLogger(__name__)

OLD_CUSTOMER_WIDTH, OLD_TERMINAL_WIDTH, OLD_MARK_WIDTH = 20, 11, 17
_NO_MARKS = b"\0\0\0\0"


def _uint(raw: bytes, start: int, size: int) -> int:
    return int.from_bytes(raw[start:start + size], "little")


def _terminal_fits(blob: bytes, mark_width: int, width: int) -> bool:
    """Whether a terminal string is a count, that many marks and whole records."""
    rest = len(blob) - 4 - _uint(blob, 0, 4) * mark_width
    return len(blob) >= 4 and rest >= 0 and rest % width == 0


def convert_customer(old: bytes, old_geo: bytes, new: bytes = b"", new_geo: bytes = b"") -> tuple[bytes, bytes]:
    """A customer's layout-2 (events, coordinates): the old events converted, less those whose id
    hash `new` holds already (and their coordinates), followed by `new`'s (the old ones arrived
    first). Raises ValueError when a string's length does not fit its layout.

    >>> old = (1_500).to_bytes(6, "little") + (7 | 1 << 39).to_bytes(5, "little") + (0xABCDEF12).to_bytes(4, "little")
    >>> ev, geo = convert_customer(old + b"idh01", b"8 bytes!")
    >>> ev == blobs.customer_record(1_000, 7, 0xCDEF12, b"idh01", True), geo
    (True, b'8 bytes!')
    """
    if len(old) % OLD_CUSTOMER_WIDTH or len(new) % blobs.CUSTOMER_WIDTH:
        raise ValueError("an events string is not whole records (layout 1: 20 bytes each, 2: 17)")
    old_flags = [old[i + 10] >> 7 for i in range(0, len(old), OLD_CUSTOMER_WIDTH)]
    new_flags = [new[i + 8] >> 7 for i in range(0, len(new), blobs.CUSTOMER_WIDTH)]
    if len(old_geo) != blobs.GEO_WIDTH * sum(old_flags) or len(new_geo) != blobs.GEO_WIDTH * sum(new_flags):
        raise ValueError("a coordinates string does not match the events that have them")
    present = {new[i + 12:i + 17] for i in range(0, len(new), blobs.CUSTOMER_WIDTH)}
    events, coordinates, row = [], [], 0
    for i in range(0, len(old), OLD_CUSTOMER_WIDTH):
        rec, flag = old[i:i + OLD_CUSTOMER_WIDTH], old_flags[i // OLD_CUSTOMER_WIDTH]
        geo = old_geo[row * blobs.GEO_WIDTH:(row + flag) * blobs.GEO_WIDTH]
        row += flag
        if rec[15:] in present:
            continue
        events.append(blobs.customer_record(_uint(rec, 0, 6), _uint(rec, 6, 5) & blobs.MAX_CENTS, _uint(rec, 11, 4),
                                            rec[15:], bool(flag)))
        coordinates.append(geo)
    return b"".join(events) + new, b"".join(coordinates) + new_geo


def convert_terminal(old: bytes, new: bytes = _NO_MARKS) -> bytes:
    """A terminal's string of layout 2 (as in an ev2 key: events in arrival order): the old marks
    converted and `new`'s whose transaction (second and id hash) they do not mark already (the first
    mark wins, and the old ones came first), then the old events converted that `new` does not hold
    (same 8-byte record), then `new`'s. Raises ValueError when a string's length does not fit its layout.

    >>> old = (1).to_bytes(4, "little") + (1_500).to_bytes(6, "little") + (9_999).to_bytes(6, "little") + b"idh01"
    >>> got = convert_terminal(old + (1_500).to_bytes(6, "little") + b"idh01")
    >>> got == b"\\1\\0\\0\\0" + fraud_mark(1_000, 9_000, b"idh0") + terminal_record(1_000, b"idh0")
    True
    """
    if not _terminal_fits(old, OLD_MARK_WIDTH, OLD_TERMINAL_WIDTH):
        raise ValueError("a terminal string is not a count, its marks and whole records")
    head = 4 + _uint(old, 0, 4) * OLD_MARK_WIDTH
    marks = [fraud_mark(_uint(old, i, 6), _uint(old, i + 6, 6), old[i + 12:i + 17])
             for i in range(4, head, OLD_MARK_WIDTH)]
    events = [terminal_record(_uint(old, i, 6), old[i + 6:i + 11]) for i in range(head, len(old), OLD_TERMINAL_WIDTH)]
    marks, events = _merged(marks, events, new)
    return len(marks).to_bytes(4, "little") + b"".join(marks) + b"".join(events)


def merge_terminal(first: bytes, then: bytes = _NO_MARKS) -> bytes:
    """Two terminal strings of layout 2 as one ev3 string: `first`'s marks and events first (as in
    `convert_terminal`), the events then sorted by time, stably (`terminal_blobs.terminal_string`).

    >>> a, b = terminal_record(2_000, b"aaaa"), terminal_record(1_000, b"bbbb")
    >>> merge_terminal(b"\\0\\0\\0\\0" + a, b"\\0\\0\\0\\0" + b + a) == b"\\0\\0\\0\\0" + b + a
    True
    """
    if not _terminal_fits(first, MARK_WIDTH, TERMINAL_WIDTH):
        raise ValueError("a terminal string is not a count, its marks and whole records")
    marks, events = split_terminal(first)
    return terminal_string(*_merged(_records(marks, MARK_WIDTH), _records(events, TERMINAL_WIDTH), then))


def _records(blob: bytes, width: int) -> list[bytes]:
    return [blob[i:i + width] for i in range(0, len(blob), width)]


def _merged(first_marks: list[bytes], first_events: list[bytes], then: bytes) -> tuple[list[bytes], list[bytes]]:
    """(marks, events) of two strings, the first's first: a mark only if its transaction (second and
    id hash) is not marked before (the first mark wins), the first's events that `then` does not
    hold (same 8-byte record)."""
    if not _terminal_fits(then, MARK_WIDTH, TERMINAL_WIDTH):
        raise ValueError("a terminal string is not a count, its marks and whole records")
    then_marks, then_events = split_terminal(then)
    marks, keys = [], set()
    for mark in first_marks + _records(then_marks, MARK_WIDTH):
        key = mark[:4] + mark[8:]  # the transaction's second and id hash (its event's record)
        if key not in keys:
            keys.add(key)
            marks.append(mark)
    events = _records(then_events, TERMINAL_WIDTH)
    present = set(events)
    return marks, [r for r in first_events if r not in present] + events


class _Unfit(ValueError):
    """A string that does not fit its layout, and its key."""

    def __init__(self, key: bytes, error: ValueError) -> None:
        super().__init__(str(error))
        self.key = key


def _checked(key: bytes, convert: Callable[[], bytes]) -> bytes:
    try:
        return convert()
    except ValueError as e:
        raise _Unfit(key, e) from None


def _converted_terminal(keys: list[bytes], strings: list[bytes | None]) -> bytes:
    """A terminal's ev3 string from its strings under `keys` (layout 1, ev2, ev3; None: absent), the
    older first."""
    layout_1, layout_2, current = strings
    merged = _NO_MARKS if current is None else _checked(keys[2], lambda: merge_terminal(current))
    if layout_2 is not None:  # (one unreleased commit, 86837bc, set its header's top bit)
        unflagged = (_uint(layout_2, 0, 4) & 0x7FFFFFFF).to_bytes(4, "little") + layout_2[4:]
        merged = _checked(keys[1], lambda: merge_terminal(unflagged, merged))
    if layout_1 is not None:
        merged = _checked(keys[0], lambda: convert_terminal(layout_1, merged))
    return merge_terminal(merged)


def migrate_legacy_state(store: RedisStore, chunk: int = 1000) -> tuple[int, int]:
    """Convert every customer's layout-1 strings of `store`'s prefix into layout 2, and every
    terminal's layout-1 string and layout-2 string of arrival order (ev2) into one sorted by time
    (ev3), merged into the strings a new consumer already wrote there (`convert_customer`,
    `convert_terminal`, `merge_terminal`); delete them and return (customers, terminals) converted.
    A string whose length does not fit its layout is logged and left in place. Run it with the
    consumers stopped; a second run converts nothing (and one interrupted midway can be run again:
    events already converted are not added twice). Works on a cluster: an entity's keys share its
    hash tag.
    """
    client: Any = store.client
    head = f"{store.prefix}:{{".encode()
    start = glob_escaped(store.prefix + ":{")
    matches = [f"{start}[{CUSTOMER_TAG}{TERMINAL_TAG}]:*}}:{LEGACY_EVENTS}",
               f"{start}{TERMINAL_TAG}:*}}:{UNSORTED_TERMINAL_EVENTS}"]
    suffix = {name: f":{name}".encode() for name in (LEGACY_EVENTS, LEGACY_COORDINATES, UNSORTED_TERMINAL_EVENTS,
                                                      CUSTOMER_EVENTS, CUSTOMER_COORDINATES, TERMINAL_EVENTS)}

    unfit: set[bytes] = set()  # terminals left in place (found again by the second pattern)

    def convert(keys: list[bytes]) -> tuple[int, int]:
        plans = {}  # per entity: (is customer, old keys, new keys)
        for key in keys:
            base = key[:key.rindex(b":")]
            if key[len(head):len(head) + 1] == CUSTOMER_TAG.encode():
                plans[base] = (True, [base + suffix[LEGACY_EVENTS], base + suffix[LEGACY_COORDINATES]],
                               [base + suffix[CUSTOMER_EVENTS], base + suffix[CUSTOMER_COORDINATES]])
            else:
                plans[base] = (False, [base + suffix[LEGACY_EVENTS], base + suffix[UNSORTED_TERMINAL_EVENTS]],
                               [base + suffix[TERMINAL_EVENTS]])
        pipe = client.pipeline(transaction=False)
        for _, old, new in plans.values():
            for k in old + new:
                pipe.get(k)
        values = iter(pipe.execute(raise_on_error=False))
        pipe = client.pipeline(transaction=False)
        done = [0, 0]
        for base, (customer, old, new) in plans.items():
            got = [next(values) for _ in old + new]
            if got[0] is None and (customer or got[1] is None) or base in unfit:  # gone, or done with another key
                continue
            try:
                if any(isinstance(v, Exception) for v in got):
                    raise ValueError(next(str(v) for v in got if isinstance(v, Exception)))
                if customer:
                    ev, geo = convert_customer(*(v or b"" for v in got))
                    strings = [(new[0], ev), (new[1], geo)]
                else:
                    strings = [(new[0], _converted_terminal(old + new, got))]
            except _Unfit as e:
                unfit.add(base)
                log.warning("event string %s cannot be converted: %s; %s left in place", e.key.decode(errors="replace"),
                            e, " and ".join(k.decode(errors="replace") for k, v in zip(old, got) if v is not None))
                continue
            except ValueError as e:
                log.warning("event string %s of a layout before cannot be converted: %s; left in place",
                            old[0].decode(errors="replace"), e)
                continue
            for k, value in strings:
                if value and value != _NO_MARKS:  # else there is nothing to keep (any string there is unchanged)
                    pipe.set(k, value)
            pipe.execute_command("DEL", *old)  # an entity's at once (a cluster pipeline's delete takes one)
            done[not customer] += 1
        pipe.execute()
        return done[0], done[1]

    counts = [convert(keys) for match in matches for keys in scanned_in_chunks(client, match, chunk)]
    return sum(c for c, _ in counts), sum(t for _, t in counts)
