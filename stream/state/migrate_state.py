"""Converting customers' and terminals' event strings of layout 1 into layout 2 (`blobs`).

Layout 1 (before 2026-12-06), little-endian, under ``{prefix}:{c:<id>}:ev`` and ``:geo`` and
``{prefix}:{t:<id>}:ev``: customer records of 20 bytes (t_ms (6), cents (5; the top bit: has
coordinates), terminal hash (4, a crc32), id hash (5)); coordinates as in layout 2; a terminal
string of a 4-byte count m, m fraud marks of 17 bytes (t_ms (6), known_ms (6), id hash (5)), then
records of 11 bytes (t_ms (6), id hash (5)). Layout 2 keeps times in whole seconds, 3 bytes of the
terminal hash and 4 of a terminal's id hashes, under the keys ending in ``ev2`` and ``geo2``.
"""

from __future__ import annotations

import logging
from typing import Any

from fraudstream.constants import (CUSTOMER_COORDINATES, CUSTOMER_EVENTS, CUSTOMER_TAG, LEGACY_COORDINATES,
                                   LEGACY_EVENTS, TERMINAL_EVENTS, TERMINAL_TAG)
from fraudstream.stream.state import blobs
from fraudstream.stream.state.terminal_blobs import (MARK_WIDTH, SORTED, TERMINAL_WIDTH, fraud_mark, split_terminal,
                                                     terminal_record)
from fraudstream.stream.state.redis_records import glob_escaped, scanned_in_chunks
from fraudstream.stream.state.redis_store import RedisStore

log = logging.getLogger(__name__)

OLD_CUSTOMER_WIDTH, OLD_TERMINAL_WIDTH, OLD_MARK_WIDTH = 20, 11, 17
_NO_MARKS = b"\0\0\0\0"


def _uint(raw: bytes, start: int, size: int) -> int:
    return int.from_bytes(raw[start:start + size], "little")


def _terminal_fits(blob: bytes, mark_width: int, width: int) -> bool:
    """Whether a terminal string is a count, that many marks and whole records."""
    rest = len(blob) - 4 - (_uint(blob, 0, 4) & (SORTED - 1)) * mark_width  # layout 2's top bit
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
    """A terminal's layout-2 string: the old marks converted and `new`'s whose transaction (second and
    id hash) they do not mark already (the first mark wins, and the old ones came first), then the old
    events converted that `new` does not hold (same 8-byte record), then `new`'s. Raises ValueError
    when a string's length does not fit its layout.

    >>> old = (1).to_bytes(4, "little") + (1_500).to_bytes(6, "little") + (9_999).to_bytes(6, "little") + b"idh01"
    >>> got = convert_terminal(old + (1_500).to_bytes(6, "little") + b"idh01")
    >>> got == b"\\1\\0\\0\\0" + fraud_mark(1_000, 9_000, b"idh0") + terminal_record(1_000, b"idh0")
    True
    """
    if not (_terminal_fits(old, OLD_MARK_WIDTH, OLD_TERMINAL_WIDTH)
            and _terminal_fits(new, MARK_WIDTH, TERMINAL_WIDTH)):
        raise ValueError("a terminal string is not a count, its marks and whole records")
    new_marks, events = split_terminal(new)
    head = 4 + _uint(old, 0, 4) * OLD_MARK_WIDTH
    candidates = [fraud_mark(_uint(old, i, 6), _uint(old, i + 6, 6), old[i + 12:i + 17])
                  for i in range(4, head, OLD_MARK_WIDTH)]
    candidates += [new_marks[i:i + MARK_WIDTH] for i in range(0, len(new_marks), MARK_WIDTH)]
    marks, keys = [], set()
    for mark in candidates:
        key = mark[:4] + mark[8:]  # the transaction's second and id hash (its event's record)
        if key not in keys:
            keys.add(key)
            marks.append(mark)
    present = {events[i:i + TERMINAL_WIDTH] for i in range(0, len(events), TERMINAL_WIDTH)}
    converted = [terminal_record(_uint(old, i, 6), old[i + 6:i + 11])
                 for i in range(head, len(old), OLD_TERMINAL_WIDTH)]
    return (len(marks).to_bytes(4, "little") + b"".join(marks)
            + b"".join(r for r in converted if r not in present) + events)


def migrate_legacy_state(store: RedisStore, chunk: int = 1000) -> tuple[int, int]:
    """Convert every customer's and terminal's layout-1 strings of `store`'s prefix into layout 2
    (merged into layout-2 strings already there: `convert_customer`, `convert_terminal`), delete
    them and return (customers, terminals) converted. A string whose length does not fit its layout
    is logged and left in place. Run it with the consumers stopped; a second run converts nothing
    (and one interrupted midway can be run again: events already converted are not added twice).
    Works on a cluster: an entity's keys share its hash tag.
    """
    client: Any = store.client
    head = f"{store.prefix}:{{".encode()
    match = f"{glob_escaped(store.prefix + ':{')}[{CUSTOMER_TAG}{TERMINAL_TAG}]:*}}:{LEGACY_EVENTS}"
    old_ev, old_geo = f":{LEGACY_EVENTS}".encode(), f":{LEGACY_COORDINATES}".encode()

    def convert(keys: list[bytes]) -> tuple[int, int]:
        plans = []  # (is customer, old keys, new keys)
        for key in keys:
            base = key[:-len(old_ev)]
            if key[len(head):len(head) + 1] == CUSTOMER_TAG.encode():
                plans.append((True, [key, base + old_geo], [base + f":{CUSTOMER_EVENTS}".encode(),
                                                            base + f":{CUSTOMER_COORDINATES}".encode()]))
            else:
                plans.append((False, [key], [base + f":{TERMINAL_EVENTS}".encode()]))
        pipe = client.pipeline(transaction=False)
        for _, old, new in plans:
            for k in old + new:
                pipe.get(k)
        values = iter(pipe.execute(raise_on_error=False))
        pipe = client.pipeline(transaction=False)
        done = [0, 0]
        for customer, old, new in plans:
            got = [next(values) for _ in old + new]
            if got[0] is None:  # gone meanwhile
                continue
            try:
                if any(isinstance(v, Exception) for v in got):
                    raise ValueError(next(str(v) for v in got if isinstance(v, Exception)))
                if customer:
                    ev, geo = convert_customer(*(v or b"" for v in got))
                    strings = [(new[0], ev), (new[1], geo)]
                else:
                    strings = [(new[0], convert_terminal(got[0], _NO_MARKS if got[1] is None else got[1]))]
            except ValueError as e:
                log.warning("legacy event string %s (%d bytes) cannot be converted: %s; left in place",
                            old[0].decode(errors="replace"), len(got[0] or b""), e)
                continue
            for k, value in strings:
                if value:  # else there is nothing to keep (and any string there is unchanged)
                    pipe.set(k, value)
            pipe.execute_command("DEL", *old)  # both of a customer's at once (a cluster pipeline's delete takes one)
            done[not customer] += 1
        pipe.execute()
        return done[0], done[1]

    counts = [convert(keys) for keys in scanned_in_chunks(client, match, chunk)]
    return sum(c for c, _ in counts), sum(t for _, t in counts)
