"""A busy customer's older events, counted by binary search instead of pair by pair.

`blobs.customer_aggregates` counts each op's windows over every (op, event) pair of its prefix: O(n)
an op, O(k * n) for k ops of a customer holding n events in one batch. That is cheap for a card used
twice a day (~60 events) and ruinous for one used thousands of times a day (a test card, a fleet or
purchasing card, a card-testing attack): 5,000 a day fell to ~200 transactions a second by the
second day (`benchmarks/busy_terminal.py --card`). So a customer whose pairs would be many is split at the first
record of the batch's ops (`split_points`): the events before it, which every op of the batch sees
whole, are sorted by time once and counted with prefix sums and binary search (`OlderEvents`); the
pairs are made for the rest only (the batch's own events, and any the script returned after them).
A customer with many ops in one batch (more than `CHUNK_OPS`: a card-testing burst, a backlog read
after an outage) has them cut into chunks in the order of their records: each chunk's ops see the
records before the chunk's first own record whole, counted the same way, and are paired with the
records from there on only. 2,000 ops of one card in a batch made 2 million pairs before (~0.4 s and
~270 MB of arrays a batch).

The results are exactly those of the pairs (the tests compare both on random streams, every
customer split): counts and sums add up; the previous event is the newer of the two parts';
distinct terminals over the day are the older part's plus the newer part's not among them; a
terminal is seen before if either part holds it.

>>> import numpy as np
>>> from fraudstream.stream.state.blobs import CustomerWindows, customer_record, parse_customer
>>> day = 86_400_000
>>> w = CustomerWindows(30 * day, 7 * day, day, day // 24, day // 144)
>>> ev = parse_customer(b"".join(customer_record(t * 1000, 100, t % 3, b"hash%d" % t, False) for t in range(6)))
>>> split_points(np.array([0, 0]), np.array([4, 5]), pairs_at_most=0)  # both ops see records 0-3 whole
array([4, 4])
>>> older = OlderEvents(ev, None, None, np.array([0, 0]), np.array([4, 4]), np.array([4, 5]), w, None)
>>> older.counts[2].tolist(), older.cents[2].tolist(), older.distinct_terminals_1d.tolist()
([4, 4], [400, 400], [3, 3])
>>> older.present(np.array([0, 1]), np.array([2, 7]), np.array([day, day])).tolist()
[True, False]
"""

from __future__ import annotations

from itertools import accumulate
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # blobs calls this module
    from fraudstream.stream.state.blobs import CustomerEvents, CustomerWindows

# a customer is split when that saves more pairs than this: below it, the pairs cost less than the
# sorting and per-op searches (a card at two transactions a day makes ~60 pairs an op)
SPLIT_PAIRS = 20_000
# a customer's ops per chunk (`split_points`): each chunk after the first sorts the customer's
# records before it (cheap for a string in nearly time order), and each op is paired with fewer than
# this many of the batch's records
CHUNK_OPS = 128
_INT64_MAX = 2 ** 63 - 1


def split_points(start: np.ndarray, own: np.ndarray, pairs_at_most: int = SPLIT_PAIRS,
                 chunk: int | None = None) -> np.ndarray:
    """Per op, the first record of its prefix to count pair by pair: `start` (all of it), or, for the
    ops of a customer (same `start`) whose older records would make more than `pairs_at_most` pairs,
    the first record its ops own. A customer with more than `chunk` ops (default `CHUNK_OPS`), or
    whose own records lie that far apart, has them cut, in the order of their own records, into
    chunks of at most that many ops within that many records: the ops of each chunk after the first
    see the records before the chunk's first own record whole, and are paired with the records from
    there to their own only, not with every record the batch added before them (nor, after a
    transaction delivered again, with every record since its own).

    >>> split_points(np.array([0, 0, 9]), np.array([7, 8, 9]), pairs_at_most=10)
    array([7, 7, 9])
    >>> split_points(np.array([0, 0, 9]), np.array([7, 8, 9]), pairs_at_most=14)
    array([0, 0, 9])
    >>> split_points(np.zeros(5, dtype=np.int64), np.array([10, 14, 11, 12, 13]), pairs_at_most=0, chunk=2)
    array([10, 14, 10, 12, 12])
    >>> split_points(np.zeros(5, dtype=np.int64), np.array([0, 4, 1, 2, 3]), pairs_at_most=10 ** 6, chunk=2)
    array([0, 4, 0, 2, 2])
    >>> split_points(np.zeros(4, dtype=np.int64), np.array([900, 3, 901, 902]), pairs_at_most=10 ** 6, chunk=5)
    array([900,   0, 900, 900])
    """
    customers, entity = np.unique(start, return_inverse=True)
    first_own = np.full(len(customers), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first_own, entity, own)
    ops_of = np.bincount(entity, minlength=len(customers))
    saved = ops_of * (first_own - customers)
    split = np.where(saved[entity] > pairs_at_most, first_own[entity], start)
    size = CHUNK_OPS if chunk is None else chunk
    last_own = np.full(len(customers), -1, dtype=np.int64)
    np.maximum.at(last_own, entity, own)
    for customer in np.nonzero((ops_of > size) | (last_own - first_own >= size))[0]:
        ops = np.nonzero(entity == customer)[0]
        ops = ops[np.argsort(own[ops], kind="stable")]
        first, count, number = int(own[ops[0]]), 0, 0
        for op, mine in zip(ops.tolist(), own[ops].tolist()):
            if count == size or mine - first >= size:  # a new chunk
                first, count, number = mine, 0, number + 1
            if number:
                split[op] = first
            count += 1
    return split


class OlderEvents:
    """Per op, the aggregates of its customer's records [start, split) (see the module docstring),
    zero for an op not split (split == start); `present` answers whether a terminal is among them
    in a window.

    Attributes per op (int64 arrays; windows (t - w, t], t the op's time, as in `blobs`):
    ``counts`` and ``cents`` per window in the order 30 d, 7 d, 1 d, 1 h, 10 min (cents up to 1 h);
    ``squares_30d`` (a list: Python ints when int64 could overflow); ``prev_time`` and ``prev_index``
    (the time and the index within the customer of the newest record within 30 days; index -1: none);
    ``distinct_terminals_1d``; ``lat_30d``, ``lon_30d``, ``coordinates_30d`` (records with coordinates,
    for the ops in `need_coordinates` only).
    """

    def __init__(self, ev: CustomerEvents, geo: tuple[np.ndarray, np.ndarray] | None, geo_index: np.ndarray | None,
                 start: np.ndarray, split: np.ndarray, own: np.ndarray, w: CustomerWindows,
                 need_coordinates: np.ndarray | None) -> None:
        n = len(own)
        # each window within the ones before it, as `blobs` nests its masks
        self.windows = tuple(accumulate((w.w30, w.w7, w.w1, w.h1, w.m10), min))
        self.counts = [np.zeros(n, dtype=np.int64) for _ in self.windows]
        self.cents = [np.zeros(n, dtype=np.int64) for _ in self.windows[:4]]
        self.squares_30d: list[int] = [0] * n
        self.prev_time = np.zeros(n, dtype=np.int64)
        self.prev_index = np.full(n, -1, dtype=np.int64)
        self.distinct_terminals_1d = np.zeros(n, dtype=np.int64)
        self.lat_30d, self.lon_30d, self.coordinates_30d = (np.zeros(n, dtype=np.int64) for _ in range(3))
        self.t_op = ev.t[own]
        # per chunk of ops (same start and split): its older records' (terminal << 32 | second) keys,
        # sorted; `segment[op]`: the chunk of the op (-1: not split)
        self.segment = np.full(n, -1, dtype=np.int64)
        self.keys: list[np.ndarray] = []
        busy = np.nonzero(split > start)[0]
        busy = busy[np.lexsort((split[busy], start[busy]))]  # a customer's chunks in the order of their records
        cuts = np.nonzero(np.diff(start[busy]) | np.diff(split[busy]))[0] + 1
        before: tuple[int, int, np.ndarray] | None = None  # the chunk before of the same customer: start, split, keys
        for ops in np.split(busy, cuts) if len(busy) else []:
            a, b = int(start[ops[0]]), int(split[ops[0]])
            self._count(ev, geo, geo_index, a, b, ops, need_coordinates)
            if before is not None and before[0] == a:  # the keys before, and this chunk's records after them
                added = (ev.term[before[1]:b] << 32) | (ev.t[before[1]:b] // 1000)
                keys = np.sort(np.concatenate((before[2], np.sort(added))), kind="stable")  # two sorted runs: a merge
            else:
                keys = np.sort((ev.term[a:b] << 32) | (ev.t[a:b] // 1000))
            self.segment[ops] = len(self.keys)
            self.keys.append(keys)
            before = (a, b, keys)

    def _count(self, ev: CustomerEvents, geo: tuple[np.ndarray, np.ndarray] | None, geo_index: np.ndarray | None,
               a: int, b: int, ops: np.ndarray, need_coordinates: np.ndarray | None) -> None:
        """The aggregates of records [a, b) (the customer's first `b - a`) for its `ops`."""
        order = np.argsort(ev.t[a:b], kind="stable")  # by time, ties in arrival order
        times, cents, terms = ev.t[a:b][order], ev.cents[a:b][order], ev.term[a:b][order]
        t = self.t_op[ops]
        hi = np.searchsorted(times, t, "right")  # records at or before the op's time
        lo = [np.searchsorted(times, t - width, "right") for width in self.windows]
        summed = np.concatenate(([0], np.cumsum(cents)))
        for k in range(len(self.windows)):
            self.counts[k][ops] = hi - lo[k]
            if k < len(self.cents):
                self.cents[k][ops] = summed[hi] - summed[lo[k]]
        if int(cents.max(initial=0)) ** 2 * len(cents) < _INT64_MAX:
            squares = np.concatenate(([0], np.cumsum(cents * cents)))
        else:  # enormous amounts: exact Python integers
            squares = np.concatenate(([0], np.cumsum(cents.astype(object) ** 2)))
        for i, top, bottom in zip(ops.tolist(), hi.tolist(), lo[0].tolist()):
            self.squares_30d[i] = int(squares[top] - squares[bottom])
        # the newest record at or before the op's time (the last to arrive among equal times), if within 30 days
        newest, within = np.maximum(hi - 1, 0), hi > lo[0]
        self.prev_time[ops] = np.where(within, times[newest], 0)
        self.prev_index[ops] = np.where(within, order[newest], -1)
        self._distinct_terminals(terms, ops, lo[2], hi)
        needing = np.zeros(len(ops), dtype=bool) if need_coordinates is None else need_coordinates[ops]
        if geo is not None and geo_index is not None and needing.any():
            # the records with coordinates in the 30-day windows of the ops that need them (as the
            # pairs, no other record's coordinates are looked up)
            looked = np.zeros(len(order), dtype=bool)
            looked[lo[0][needing].min():hi[needing].max()] = True
            looked &= ev.flag[a:b][order]
            rows = geo_index[a:b][order]
            for column, values in ((self.lat_30d, geo[0]), (self.lon_30d, geo[1]), (self.coordinates_30d, None)):
                per_record = looked.astype(np.int64)
                if values is not None:
                    per_record[looked] = values[rows[looked]]
                total = np.concatenate(([0], np.cumsum(per_record)))
                column[ops] = np.where(needing, total[hi] - total[lo[0]], 0)

    def _distinct_terminals(self, terms: np.ndarray, ops: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
        """Distinct terminals among the sorted records [lo, hi) of each op: the records j there whose
        previous record of the same terminal (in time order), p_j, is before lo. The ops' lo and hi
        both grow with their time, so in that order the ops that count record j (p_j < lo <= j < hi)
        are consecutive: each record adds one to a range of ops, summed at once. O((n + ops) log n)."""
        if not len(ops):
            return
        first = int(lo.min())  # an earlier record's next one of its terminal is before every lo
        terms = terms[first:int(hi.max())]
        previous = np.full(len(terms), -1, dtype=np.int64)
        by_terminal = np.lexsort((np.arange(len(terms)), terms))
        same = terms[by_terminal[1:]] == terms[by_terminal[:-1]]
        previous[by_terminal[1:][same]] = by_terminal[:-1][same]
        order = np.lexsort((hi, lo))  # by time: lo and hi both non-decreasing
        lo, hi = lo[order] - first, hi[order] - first
        j = np.arange(len(terms))
        begin = np.maximum(np.searchsorted(lo, previous, "right"), np.searchsorted(hi, j, "right"))
        end = np.searchsorted(lo, j, "right")
        counted = begin < end
        change = np.bincount(begin[counted], minlength=len(ops) + 1) - np.bincount(end[counted], minlength=len(ops) + 1)
        self.distinct_terminals_1d[ops[order]] = np.cumsum(change)[:len(ops)]

    def present(self, ops: np.ndarray, terms: np.ndarray, widths: np.ndarray) -> np.ndarray:
        """Per query, whether op `ops[q]`'s older records hold terminal `terms[q]` within (t - widths[q], t]."""
        found = np.zeros(len(ops), dtype=bool)
        segment = self.segment[ops]
        for number, keys in enumerate(self.keys):
            mine = np.nonzero(segment == number)[0]
            if not len(mine):
                continue
            t = self.t_op[ops[mine]]
            base = terms[mine] << 32
            # a record of second s is in the window if t - width < s * 1000 <= t
            after = base + np.maximum((t - widths[mine]) // 1000, -1)
            upto = base + t // 1000
            found[mine] = np.searchsorted(keys, upto, "right") > np.searchsorted(keys, after, "right")
        return found
