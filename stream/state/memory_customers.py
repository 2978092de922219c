"""A customer's events in the memory store (`MemoryStore`): parallel lists sorted by (event time,
arrival); a busy customer's also indexed, so that its windows cost O(log n) whatever it holds.

An event's aggregates are those of `blobs.customer_aggregates` (the tests hold the stores equal):
its windows cover the events that arrived before it and itself; a new event is the newest arrival,
so those are the events sorted before it. A customer of a few dozen events sums slices of its lists
and scans them for ids and terminals, which is cheapest there. Past `INDEXED_FROM` events it keeps
prefix sums, each terminal's times and each id's time instead: slices and scans cost O(n) a
transaction, and one card of 5,000 transactions a day fell from 4,347 to 191 transactions a second
over 12 days (2026-12-06). It also keeps each terminal's newest time, sorted, which gives the
distinct terminals over a day of its newest event by binary search; an event older than the newest
(a late one, or one delivered again) still costs the day's events.

>>> from fraudstream.stream.state.base import CustomerOp, Windows
>>> events = CustomerHistory()
>>> [events.insert(CustomerOp("c1", t, 100 * t, 7, f"t{t}", None, None)) for t in (0, 2_000, 1_000)]
[0, 1, 1]
>>> events.index_of("t2000"), events.holds("t5")
(2, False)
>>> aggregates(events, 2, nested_windows(Windows()))[:2]  # nb_1d, cents_1d of the event at 2 s
(3, 300000)
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from itertools import accumulate

from fraudstream.stream.state.base import CustomerOp, Windows, to_micro

INDEXED_FROM = 256  # events: below, slices and scans cost less than keeping the indexes
_COLUMNS = ("times", "cents", "squares", "terms", "ids", "lats", "lons", "seqs")


class CustomerHistory:
    """A customer's events (coordinates in microdegrees, None when absent). Once indexed (`index`):
    ``sums``, prefix sums over the sorted events of cents, squared cents, latitude, longitude and
    "has coordinates" (each ``[0, v0, v0 + v1, ...]``); ``by_terminal``, each terminal's event times,
    sorted; ``newest``, each terminal's newest time, sorted; ``at``, each id's time."""

    __slots__ = (*_COLUMNS, "arrivals", "sums", "by_terminal", "newest", "at")

    def __init__(self) -> None:
        self.times: list[int] = []
        self.cents: list[int] = []
        self.squares: list[int] = []
        self.terms: list[int] = []
        self.ids: list[str] = []
        self.lats: list[int | None] = []
        self.lons: list[int | None] = []
        self.seqs: list[int] = []
        self.arrivals = 0
        self.sums: list[list[int]] | None = None
        self.by_terminal: dict[int, list[int]] = {}
        self.newest: list[int] = []
        self.at: dict[str, int] = {}

    def insert(self, op: CustomerOp) -> int:
        """Add a new event (its id not held); returns its index."""
        has = op.latitude is not None and op.longitude is not None
        lat = to_micro(op.latitude) if has else None  # type: ignore[arg-type]
        lon = to_micro(op.longitude) if has else None  # type: ignore[arg-type]
        p = bisect_right(self.times, op.t_ms)
        square = op.cents * op.cents
        self.times.insert(p, op.t_ms)
        self.cents.insert(p, op.cents)
        self.squares.insert(p, square)
        self.terms.insert(p, op.terminal_hash)
        self.ids.insert(p, op.transaction_id)
        self.lats.insert(p, lat)
        self.lons.insert(p, lon)
        self.seqs.insert(p, self.arrivals)
        self.arrivals += 1
        if self.sums is not None:
            for prefix, value in zip(self.sums, (op.cents, square, lat or 0, lon or 0, int(has))):
                if p == len(prefix) - 1:  # the newest time: the common case
                    prefix.append(prefix[-1] + value)
                else:  # a late event: every sum after it grows
                    prefix[p + 1:] = [prefix[p] + value] + [s + value for s in prefix[p + 1:]]
            times = self.by_terminal.setdefault(op.terminal_hash, [])
            if not times or op.t_ms >= times[-1]:  # the terminal's newest time changes
                if times:
                    del self.newest[bisect_left(self.newest, times[-1])]
                insort(self.newest, op.t_ms)
            insort(times, op.t_ms)
            self.at[op.transaction_id] = op.t_ms
        elif len(self.times) >= INDEXED_FROM:
            self.index()
        return p

    def index(self) -> None:
        """Build the indexes (see the class docstring); kept up to date from then on."""
        self.sums = [[0, *accumulate(values)] for values in (
            self.cents, self.squares, [v or 0 for v in self.lats], [v or 0 for v in self.lons],
            [int(v is not None) for v in self.lats])]
        self.by_terminal = {}
        for term, t in zip(self.terms, self.times):  # in time order: each list sorted
            self.by_terminal.setdefault(term, []).append(t)
        self.newest = sorted(times[-1] for times in self.by_terminal.values())
        self.at = dict(zip(self.ids, self.times))

    def holds(self, transaction_id: str) -> bool:
        return transaction_id in self.at if self.sums is not None else transaction_id in self.ids

    def index_of(self, transaction_id: str) -> int:
        """The index of the event of this id, held."""
        if self.sums is None:
            return self.ids.index(transaction_id)
        t = self.at[transaction_id]
        first = bisect_left(self.times, t)
        return first + self.ids[first:bisect_right(self.times, t)].index(transaction_id)

    def trim(self, retention: int) -> None:
        """Drop the events older than the newest minus `retention`."""
        bound = self.times[-1] - retention
        first = bisect_left(self.times, bound)
        if not first:
            return
        if self.sums is not None:
            for term in set(self.terms[:first]):
                times = self.by_terminal[term]
                newest = times[-1]
                del times[:bisect_left(times, bound)]
                if not times:
                    del self.by_terminal[term]
                    del self.newest[bisect_left(self.newest, newest)]
            for transaction_id in self.ids[:first]:
                del self.at[transaction_id]
            for prefix in self.sums:
                del prefix[:first]
        for name in _COLUMNS:
            del getattr(self, name)[:first]

    def as_of(self, p: int) -> tuple[CustomerHistory, int]:
        """The events that had arrived when event `p` did (a copy), and its index there."""
        seq = self.seqs[p]
        keep = [i for i, s in enumerate(self.seqs) if s <= seq]
        view = CustomerHistory()
        for name in _COLUMNS:
            column = getattr(self, name)
            setattr(view, name, [column[i] for i in keep])
        if len(keep) >= INDEXED_FROM:
            view.index()
        return view, keep.index(p)


def nested_windows(w: Windows) -> tuple[int, ...]:
    """The customer windows, 30 days to 10 minutes, each within the ones before it (as `blobs` nests
    them).

    >>> nested_windows(Windows(customer_7d=40 * 86_400_000))[:2] == nested_windows(Windows())[:1] * 2
    True
    """
    return tuple(accumulate((w.customer_30d, w.customer_7d, w.customer_1d, w.customer_1h, w.customer_10min), min))


def aggregates(cust: CustomerHistory, p: int, windows: tuple[int, ...]) -> tuple[int, ...]:
    """`blobs.CUSTOMER_AGGREGATES` of the event at index `p` over the events sorted before it (and
    itself), for the `nested_windows`."""
    times, terms = cust.times, cust.terms
    t = times[p]
    hi = p + 1
    w30, w7, w1, wh, w10 = windows
    i30 = bisect_right(times, t - w30, 0, hi)
    i7, i1 = bisect_right(times, t - w7, i30, hi), bisect_right(times, t - w1, i30, hi)
    ih, i10 = bisect_right(times, t - wh, i30, hi), bisect_right(times, t - w10, i30, hi)
    has_prev = p > i30  # the previous event counts within 30 days
    prev_dt = t - times[p - 1] if has_prev else -1
    coordinates = _coordinates(cust, p, i30, has_prev) if cust.lats[p] is not None else (0, 0, 0, 0, 0, 0)
    if cust.sums is None:
        cents = cust.cents
        c1, c7, c30, ch = sum(cents[i1:hi]), sum(cents[i7:hi]), sum(cents[i30:hi]), sum(cents[ih:hi])
        squares = sum(cust.squares[i30:hi])
        seen = terms[p] in terms[i30:p]
    else:
        cents, square_sums = cust.sums[0], cust.sums[1]
        c1, c7, c30, ch = (cents[hi] - cents[i] for i in (i1, i7, i30, ih))
        squares = square_sums[hi] - square_sums[i30]
        # this terminal before, within 30 days: its events in (t - w30, t] but this one (the newest arrival)
        terminal_times = cust.by_terminal[terms[p]]
        seen = bisect_right(terminal_times, t) - bisect_right(terminal_times, t - w30) > 1
    if cust.sums is not None and hi == len(times):  # the newest event: terminals whose newest time is in the day
        terminals_1d = len(cust.newest) - bisect_right(cust.newest, t - w1)
    else:
        terminals_1d = len(set(terms[i1:hi]))
    return (hi - i1, c1, hi - i7, c7, hi - i30, c30, squares, hi - ih, ch, hi - i10, prev_dt,
            terminals_1d, int(seen), *coordinates)


def _coordinates(cust: CustomerHistory, p: int, i30: int, has_prev: bool) -> tuple[int, int, int, int, int, int]:
    """Sums of latitude, longitude and count of the events with coordinates in [i30, p) (without the
    event itself), and the previous event's coordinates (and 1) when it has them."""
    lats, lons = cust.lats, cust.lons
    if cust.sums is None:
        hlat = hlon = hn = 0
        for i in range(i30, p):
            lat = lats[i]
            if lat is not None:
                hlat += lat
                hlon += lons[i]  # type: ignore[operator]
                hn += 1
    else:
        lat_sums, lon_sums, counts = cust.sums[2:]
        hlat, hlon, hn = lat_sums[p] - lat_sums[i30], lon_sums[p] - lon_sums[i30], counts[p] - counts[i30]
    if has_prev and lats[p - 1] is not None:
        return hlat, hlon, hn, lats[p - 1], lons[p - 1], 1  # type: ignore[return-value]
    return hlat, hlon, hn, 0, 0, 0
