"""`MemoryStore`: the state store in plain Python, with exactly the semantics of the Lua scripts.

Each entity keeps parallel lists sorted by (event time, arrival); window bounds come from `bisect`
and sums from slices, so a transaction costs a few microseconds whatever the window lengths.

>>> from fraudstream.stream.state.base import CustomerOp, TerminalOp
>>> store = MemoryStore()
>>> r = store.update_customers([CustomerOp("c1", 0, 1000, 7, "t1", None, None),
...                             CustomerOp("c1", 60_000, 500, 7, "t2", None, None)])
>>> r[1].aggregates[:2]  # nb_1d, cents_1d
(2, 1500)
>>> store.update_customers([CustomerOp("c1", 60_000, 500, 7, "t2", None, None)])[0].duplicate
True
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict

from fraudstream.stream.state.base import CustomerOp, CustomerResult, TerminalOp, Windows


class _Customer:
    """A customer's events as parallel lists (coordinates are None when absent)."""

    __slots__ = ("times", "cents", "squares", "terms", "ids", "lats", "lons")

    def __init__(self) -> None:
        self.times: list[int] = []
        self.cents: list[int] = []
        self.squares: list[int] = []
        self.terms: list[int] = []
        self.ids: list[str] = []
        self.lats: list[float | None] = []
        self.lons: list[float | None] = []

    def insert(self, op: CustomerOp) -> int:
        p = bisect_right(self.times, op.t_ms)
        self.times.insert(p, op.t_ms)
        self.cents.insert(p, op.cents)
        self.squares.insert(p, op.cents * op.cents)
        self.terms.insert(p, op.terminal_hash)
        self.ids.insert(p, op.transaction_id)
        self.lats.insert(p, op.latitude)
        self.lons.insert(p, op.longitude)
        return p

    def trim(self, retention: int) -> None:
        first = bisect_left(self.times, self.times[-1] - retention)
        if first:
            for column in (self.times, self.cents, self.squares, self.terms, self.ids, self.lats, self.lons):
                del column[:first]


class _Terminal:
    __slots__ = ("times", "ids", "frauds")

    def __init__(self) -> None:
        self.times: list[int] = []
        self.ids: list[str] = []
        self.frauds: list[int] = []


class MemoryStore:
    """Per-entity sorted event lists in dicts. Not shared between processes."""

    def __init__(self, windows: Windows | None = None) -> None:
        self.windows = windows or Windows()
        self._customers: defaultdict[str, _Customer] = defaultdict(_Customer)
        self._terminals: defaultdict[str, _Terminal] = defaultdict(_Terminal)
        self._records: defaultdict[str, dict[str, tuple[int, bytes]]] = defaultdict(dict)

    # -- customers -------------------------------------------------------------------------------
    def update_customers(self, ops: list[CustomerOp]) -> list[CustomerResult]:
        out = []
        retention = self.windows.customer_retention
        for op in ops:
            cust = self._customers[op.customer_id]
            if op.transaction_id in cust.ids:
                p = _last_index(cust.ids, op.transaction_id)
                if (cust.times[p], cust.cents[p], cust.terms[p]) != (op.t_ms, op.cents, op.terminal_hash):
                    out.append(CustomerResult(True, None, self.customer_aggregates(cust, p), conflict=True))
                    continue
                rec = self._records.get(op.customer_id, {}).get(op.transaction_id)
                out.append(CustomerResult(True, rec[1] if rec else None, self.customer_aggregates(cust, p)))
                continue
            p = cust.insert(op)
            out.append(CustomerResult(False, None, self.customer_aggregates(cust, p)))
            if cust.times[0] < cust.times[-1] - retention:
                cust.trim(retention)
        return out

    def customer_aggregates(self, cust: _Customer, p: int) -> tuple[float, ...]:
        """Aggregates of the event at index `p` over the events before it (and itself)."""
        w = self.windows
        times, cents = cust.times, cust.cents
        t = times[p]
        hi = p + 1
        i30 = bisect_right(times, t - w.customer_30d, 0, hi)
        i7 = bisect_right(times, t - w.customer_7d, i30, hi)
        i1 = bisect_right(times, t - w.customer_1d, i30, hi)
        ih = bisect_right(times, t - w.customer_1h, i30, hi)
        i10 = bisect_right(times, t - w.customer_10min, i30, hi)
        terms = cust.terms
        hlat = hlon = plat = plon = 0.0
        hn = pcoord = 0
        if cust.lats[p] is not None:  # coordinate aggregates only matter for events with coordinates
            lats, lons = cust.lats, cust.lons
            for i in range(i30, p):  # forward, like the Lua script: the same float sums
                lat = lats[i]
                if lat is not None:
                    hlat += lat
                    hlon += lons[i]  # type: ignore[operator]
                    hn += 1
            if p > 0 and lats[p - 1] is not None:
                plat, plon, pcoord = lats[p - 1], lons[p - 1], 1
        prev_dt = t - times[p - 1] if p > 0 else -1
        return (hi - i1, sum(cents[i1:hi]), hi - i7, sum(cents[i7:hi]), hi - i30, sum(cents[i30:hi]),
                sum(cust.squares[i30:hi]), hi - ih, sum(cents[ih:hi]), hi - i10, prev_dt, len(set(terms[i1:hi])),
                int(terms[p] in terms[i30:p]), hlat, hlon, hn, plat, plon, pcoord)

    # -- terminals -------------------------------------------------------------------------------
    def update_terminals(self, ops: list[TerminalOp]) -> list[tuple[float, ...]]:
        out = []
        retention = self.windows.terminal_retention
        for op in ops:
            term = self._terminals[op.terminal_id]
            times = term.times
            if op.transaction_id in term.ids:
                out.append(self.terminal_aggregates(term, _last_index(term.ids, op.transaction_id)))
                continue
            p = bisect_right(times, op.t_ms)
            times.insert(p, op.t_ms)
            term.ids.insert(p, op.transaction_id)
            term.frauds.insert(p, 0)
            out.append(self.terminal_aggregates(term, p))
            if times[0] < times[-1] - retention:
                first = bisect_left(times, times[-1] - retention)
                del times[:first], term.ids[:first], term.frauds[:first]
        return out

    def terminal_aggregates(self, term: _Terminal, p: int) -> tuple[float, ...]:
        """Counts and frauds over (t - delay - n, t - delay] for n = 1, 7, 30 d; count over (t - 1 h, t]."""
        w = self.windows
        times, frauds = term.times, term.frauds
        t = times[p]
        hi = p + 1
        end = bisect_right(times, t - w.terminal_delay, 0, hi)
        ic = bisect_right(times, t - w.terminal_delay - w.terminal_30d, 0, end)
        ib = bisect_right(times, t - w.terminal_delay - w.terminal_7d, ic, end)
        ia = bisect_right(times, t - w.terminal_delay - w.terminal_1d, ic, end)
        ih = bisect_right(times, t - w.terminal_1h, 0, hi)
        return (end - ia, sum(frauds[ia:end]), end - ib, sum(frauds[ib:end]), end - ic, sum(frauds[ic:end]), hi - ih)

    def mark_frauds(self, items: list[tuple[str, str]]) -> None:
        for terminal_id, txid in items:
            term = self._terminals.get(terminal_id)
            if term is not None and txid in term.ids:
                term.frauds[_last_index(term.ids, txid)] = 1

    # -- scored records --------------------------------------------------------------------------
    def put_records(self, items: list[tuple[str, str, int, bytes]]) -> None:
        newest: dict[str, int] = {}
        for customer_id, txid, t_ms, payload in items:
            self._records[customer_id][txid] = (t_ms, payload)
            if t_ms > newest.get(customer_id, t_ms - 1):
                newest[customer_id] = t_ms
        for customer_id, t_ms in newest.items():
            records = self._records[customer_id]
            cut = t_ms - self.windows.record_retention
            for txid in [k for k, (t, _) in records.items() if t < cut]:
                del records[txid]

    def take_records(self, items: list[tuple[str, str]]) -> list[bytes | None]:
        out: list[bytes | None] = []
        for customer_id, txid in items:
            records = self._records.get(customer_id)
            rec = records.pop(txid, None) if records else None
            out.append(rec[1] if rec else None)
        return out


def _last_index(values: list[str], value: str) -> int:
    """Index of the last occurrence of `value` (known to be present)."""
    for i in range(len(values) - 1, -1, -1):
        if values[i] == value:
            return i
    raise ValueError(value)  # pragma: no cover - callers check membership first
