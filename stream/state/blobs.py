"""Customers' event lists as binary strings (the Redis layout) and their window aggregates, vectorised with numpy.

Redis keeps, per customer, one string of fixed-width records in *arrival order*; the Lua script
only appends (after an id check) and returns the strings, and the aggregates of a whole batch are
computed here at once. An operation sees the events that arrived before it (and itself): the
prefix of its customer's string up to its own record. That is exactly what it would have seen had
it been processed alone, also for late events and for redeliveries (whose own record is found by
id and gives the prefix it had the first time). `MemoryStore` computes the same aggregates one
event at a time; the tests hold the two equal. The pairs of a customer with many events and many
ops in a batch would be many: its older events are counted by binary search (`busy_customers`).
Terminals' strings, sorted by time, are in `terminal_blobs`.

Times are whole epoch seconds (4 bytes, to 2106; `base.whole_seconds`), as card networks' ISO 8583
messages carry them; the parsers return them in milliseconds.
Customer record (17 bytes, little-endian): t_s (4), cents (5; the top bit: has coordinates),
terminal hash (3), id hash (5). Coordinates of the events that have them are in a second string,
8 bytes each (latitude and longitude in integer microdegrees, int32), in the same order.
(Layout 2, 2026-12-06; layout 1 kept 20-byte records with times in ms under other keys, and
`fraudstream migrate-records` converts them: `migrate_state`.)

>>> import numpy as np
>>> blob = customer_record(0, 1000, 7, b"first", False) + customer_record(60_000, 500, 8, b"secnd", False)
>>> len(blob)
34
>>> ev = parse_customer(blob)
>>> day = 86_400_000
>>> rows = customer_aggregates(ev, None, np.array([0]), np.array([1]), CustomerWindows(30 * day, 7 * day, day, day // 24, day // 144))
>>> rows[0][:2], rows[0][10:13]  # nb_1d, cents_1d; 60 s since the previous one, 2 terminals, new terminal
((2, 1500), (60000, 2, 0))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from fraudstream.stream.state import busy_customers

CUSTOMER_WIDTH = 17
GEO_WIDTH = 8
ID_HASH_BYTES = 5
TERMINAL_HASH_MASK = 2 ** 24 - 1  # a customer's record holds 3 bytes of the terminal's hash
MAX_CENTS = 2 ** 39 - 1  # 5 bytes, less the coordinates bit
MAX_SECONDS = 2 ** 32 - 1
NO_COORDINATE = -(2 ** 31)
PREV_BITS = 20  # prev event search key: t_ms << 20 | index within the entity (t_ms < 2^43)


def stored_seconds(t_ms: int) -> int:
    """Whole epoch seconds of a time in ms, as stored (4 bytes)."""
    s = t_ms // 1000
    if not 0 <= s <= MAX_SECONDS:
        raise ValueError(f"event time {t_ms} ms outside what the feature state stores (1970..2106)")
    return s


def customer_record(t_ms: int, cents: int, terminal_hash: int, id_hash: bytes, has_coordinates: bool) -> bytes:
    """One customer event as stored in Redis (cents up to `MAX_CENTS`, ~5.5 billion; the time to the second)."""
    return (stored_seconds(t_ms) | (cents | has_coordinates << 39) << 32
            | (terminal_hash & TERMINAL_HASH_MASK) << 72).to_bytes(12, "little") + id_hash


def geo_record(lat_micro: int, lon_micro: int) -> bytes:
    return lat_micro.to_bytes(4, "little", signed=True) + lon_micro.to_bytes(4, "little", signed=True)


def _uint(raw: np.ndarray, start: int, size: int) -> np.ndarray:
    """Little-endian unsigned integers of `size` bytes from columns start.. of a (n, width) uint8 array."""
    out = np.zeros((raw.shape[0], 8), dtype=np.uint8)
    out[:, :size] = raw[:, start:start + size]
    return out.view("<i8").ravel()


class CustomerEvents(NamedTuple):
    t: np.ndarray  # int64 ms
    cents: np.ndarray  # int64
    term: np.ndarray  # int64 (uint32 values)
    flag: np.ndarray  # bool, has coordinates


def parse_customer(blob: bytes) -> CustomerEvents:
    raw = np.frombuffer(blob, dtype=np.uint8).reshape(-1, CUSTOMER_WIDTH)
    cents = _uint(raw, 4, 5)
    return CustomerEvents(_uint(raw, 0, 4) * 1000, cents & MAX_CENTS, _uint(raw, 9, 3), (cents >> 39) == 1)


def mend_lost_coordinates(flag: np.ndarray, firsts: np.ndarray, counts: np.ndarray, geo_firsts: np.ndarray,
                          geo_rows: np.ndarray, flag_cumsum: np.ndarray | None = None) -> np.ndarray:
    """Customers whose coordinates string does not hold a row per flagged record, mended in place;
    their indices returned (empty for a sound state).

    A customer's events (``:ev2``) and coordinates (``:geo2``) are two keys that the script keeps in
    step, but a server that evicts keys can drop one of them. The rows left are the newest flagged
    records' (the script appends to the string it has, and cuts both from the front), so: fewer
    rows than flagged records, and the older records lose their flag (`flag`); more rows, and the
    leading ones are skipped (`geo_firsts`). Entity e has records [firsts[e], firsts[e] + counts[e])
    and, when geo_firsts[e] >= 0, rows [geo_firsts[e], geo_firsts[e] + geo_rows[e]). `flag_cumsum`:
    ``np.cumsum(flag)``, if the caller has it.

    >>> flag = np.array([True, True, True, False, True])  # one customer: 4 flagged records, 2 rows
    >>> mend_lost_coordinates(flag, np.array([0]), np.array([5]), np.array([0]), np.array([2])).tolist()
    [0]
    >>> flag.tolist()
    [False, False, True, False, True]
    >>> geo_firsts = np.array([0])  # one flagged record, 3 rows: the last one is its
    >>> mend_lost_coordinates(np.array([True]), np.array([0]), np.array([1]), geo_firsts, np.array([3])).tolist()
    [0]
    >>> geo_firsts.tolist()
    [2]
    """
    cumulative = np.concatenate([[0], np.cumsum(flag) if flag_cumsum is None else flag_cumsum])
    flagged = cumulative[firsts + counts] - cumulative[firsts]
    bad = np.flatnonzero((geo_firsts >= 0) & (flagged != geo_rows))
    for e in bad.tolist():
        lost = int(flagged[e] - geo_rows[e])
        if lost > 0:
            flag[np.flatnonzero(flag[firsts[e]:firsts[e] + counts[e]])[:lost] + firsts[e]] = False
        else:
            geo_firsts[e] -= lost
    return bad


def parse_geo(blob: bytes) -> tuple[np.ndarray, np.ndarray]:
    pairs = np.frombuffer(blob, dtype="<i4").reshape(-1, 2).astype(np.int64)
    return pairs[:, 0], pairs[:, 1]


@dataclass(frozen=True)
class CustomerWindows:
    w30: int
    w7: int
    w1: int
    h1: int
    m10: int


def index_ranges(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (row, index) with lo[row] <= index < hi[row]: (row of each pair, index, first pair of
    each row). Pairs of one row are contiguous and ascending, so `np.add.reduceat` sums per row.

    >>> index_ranges(np.array([5, 0, 2]), np.array([7, 0, 3]))[:2]
    (array([0, 0, 2]), array([5, 6, 2]))
    """
    lengths = np.maximum(hi - lo, 0)
    first = np.cumsum(lengths) - lengths
    row = np.repeat(np.arange(len(lengths)), lengths)
    return row, np.arange(int(lengths.sum()), dtype=np.int64) - first[row] + lo[row], first


def distinct_per_row(row: np.ndarray, value: np.ndarray, rows: int) -> np.ndarray:
    """How many distinct values each row has, of (row, value) pairs (values < 2^32). A sort and a
    comparison: 4 times as fast as `np.unique` on such pairs (numpy 2.4; 5,000 pairs: 120 us, 450).

    >>> distinct_per_row(np.array([0, 0, 0, 2]), np.array([5, 9, 5, 1]), 3).tolist()
    [2, 0, 1]
    """
    keys = np.sort((row << 32) | value)
    first = np.ones(len(keys), dtype=bool)
    first[1:] = keys[1:] != keys[:-1]
    return np.bincount(keys[first] >> 32, minlength=rows)


def _at(values: np.ndarray, rows: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """values[rows] where `mask`, 0 elsewhere (where rows need not be valid: no coordinates there)."""
    out = np.zeros(len(rows), dtype=np.int64)
    out[mask] = values[rows[mask]]
    return out


def _per_op(values: np.ndarray, first: np.ndarray) -> np.ndarray:
    return np.add.reduceat(values, first) if len(first) else values[:0]


def customer_aggregates(ev: CustomerEvents, geo: tuple[np.ndarray, np.ndarray] | None, start: np.ndarray,
                        own: np.ndarray, w: CustomerWindows, geo_index: np.ndarray | None = None,
                        need_coordinates: np.ndarray | None = None,
                        split_pairs: int | None = None) -> list[tuple[int, ...]]:
    """`CUSTOMER_AGGREGATES` per op whose prefix is records [start, own] of `ev` (own: its record).

    `geo_index[j]`: the coordinates row of record j (when it has coordinates); coordinate
    aggregates are computed for the ops with `need_coordinates` only (zero otherwise). A customer
    whose ops would make more than `split_pairs` (op, record) pairs (default
    `busy_customers.SPLIT_PAIRS`) has its older records counted by binary search instead, and one
    with more than `busy_customers.CHUNK_OPS` ops has them cut into chunks, each seeing the records
    before it counted that way (`busy_customers`; the same results).
    """
    n = len(own)
    if n == 0:
        return []
    split = busy_customers.split_points(start, own, busy_customers.SPLIT_PAIRS if split_pairs is None else split_pairs)
    older = busy_customers.OlderEvents(ev, geo, geo_index, start, split, own, w, need_coordinates) \
        if (split > start).any() else None
    op, j, first = index_ranges(split, own + 1)  # each op's prefix [split, own]
    t_op = ev.t[own]
    tj, cj = ev.t[j], ev.cents[j]
    dt = t_op[op] - tj
    valid = dt >= 0
    m30 = valid & (dt < w.w30)
    m7 = m30 & (dt < w.w7)
    m1 = m7 & (dt < w.w1)
    mh = m1 & (dt < w.h1)
    m10 = mh & (dt < w.m10)
    other = j != own[op]
    nb30, nb7, nb1, nbh, nb10 = (_per_op(m.astype(np.int64), first) for m in (m30, m7, m1, mh, m10))
    c30, c7, c1, ch = (_per_op(np.where(m, cj, 0), first) for m in (m30, m7, m1, mh))
    if int(cj.max(initial=0)) ** 2 * int((own - split).max() + 1) < 2 ** 63:  # window sums of squares fit int64
        sq30 = _per_op(np.where(m30, cj * cj, 0), first).tolist()
    else:  # enormous amounts: exact Python integers
        sq = [0] * n
        for k, jj in zip(op[m30].tolist(), j[m30].tolist()):
            sq[k] += int(ev.cents[jj]) ** 2
        sq30 = sq
    # previous event: the newest (time, arrival) before this one within 30 days
    local = j - start[op]
    key = np.where(m30 & other, (tj << PREV_BITS) | local, -1)
    prev_key = np.maximum.reduceat(key, first)
    # distinct terminals over 24 h, and whether this terminal was used before within 30 days
    op1, term1 = op[m1], ev.term[j[m1]]
    seen = _per_op((m30 & other & (ev.term[j] == ev.term[own][op])).astype(np.int64), first) > 0
    if older is not None:
        nb30, nb7, nb1, nbh, nb10 = (mine + theirs for mine, theirs in zip((nb30, nb7, nb1, nbh, nb10), older.counts))
        c30, c7, c1, ch = (mine + theirs for mine, theirs in zip((c30, c7, c1, ch), older.cents))
        sq30 = [a + b for a, b in zip(sq30, older.squares_30d)]
        prev_key = np.maximum(prev_key, np.where(older.prev_index >= 0, (older.prev_time << PREV_BITS) | older.prev_index, -1))
        new_terminal = ~older.present(op1, term1, np.full(len(op1), older.windows[2]))
        op1, term1 = op1[new_terminal], term1[new_terminal]
        seen |= older.present(np.arange(n), ev.term[own], np.full(n, w.w30))
    has_prev = prev_key >= 0
    prev_dt = np.where(has_prev, t_op - (prev_key >> PREV_BITS), -1)
    prev_j = np.where(has_prev, start + (prev_key & ((1 << PREV_BITS) - 1)), own)
    nterms = distinct_per_row(op1, term1, n)
    if older is not None:
        nterms = nterms + older.distinct_terminals_1d
    zeros = [0] * n
    hlat = hlon = hn = plat = plon = pcoord = zeros
    if geo is not None and geo_index is not None and need_coordinates is not None and need_coordinates.any():
        lat, lon = geo
        has = m30 & other & ev.flag[j] & need_coordinates[op]
        sums = [_per_op(_at(lat, geo_index[j], has), first), _per_op(_at(lon, geo_index[j], has), first),
                _per_op(has.astype(np.int64), first)]
        if older is not None:
            sums = [mine + theirs for mine, theirs in zip(sums, (older.lat_30d, older.lon_30d, older.coordinates_30d))]
        hlat, hlon, hn = (s.tolist() for s in sums)
        prev_coords = has_prev & ev.flag[prev_j] & need_coordinates
        plat = _at(lat, geo_index[prev_j], prev_coords).tolist()
        plon = _at(lon, geo_index[prev_j], prev_coords).tolist()
        pcoord = prev_coords.astype(np.int64).tolist()
    return list(zip(nb1.tolist(), c1.tolist(), nb7.tolist(), c7.tolist(), nb30.tolist(), c30.tolist(), sq30,
                    nbh.tolist(), ch.tolist(), nb10.tolist(), prev_dt.tolist(), nterms.tolist(),
                    seen.astype(np.int64).tolist(), hlat, hlon, hn, plat, plon, pcoord))
