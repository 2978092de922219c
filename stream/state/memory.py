"""`MemoryStore`: the state store in plain Python, with exactly the semantics of the Redis store.

Each entity keeps parallel lists sorted by (event time, arrival); window bounds come from `bisect`
and sums from prefix sums (customers: `memory_customers`), so a transaction costs a few
microseconds whatever the window lengths and the number of events. An
event's aggregates cover the events that arrived before it (and itself) within the windows; a new
event is the newest arrival, so that is every event sorted before it. A redelivered event gets the
customer aggregates it had when it arrived (the slow path filters by arrival number), and the
terminal aggregates of the events its terminal holds when it comes again (as `terminal_blobs`).

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

from fraudstream.stream.schema import ScoredRows, StoredRecord
from fraudstream.stream.state.base import (HOUR_MS, CustomerOp, CustomerResult, Done, FraudMark, Meanwhile, RecordRef,
                                          TerminalOp, Windows, always_ready, whole_seconds)
from fraudstream.stream.state.blobs import TERMINAL_HASH_MASK
from fraudstream.stream.state import memory_customers
from fraudstream.stream.state.memory_customers import CustomerHistory


NEVER = 2 ** 63 - 1  # known time of an event that is not a known fraud


class _Terminal:
    __slots__ = ("times", "ids", "known", "marked")

    def __init__(self) -> None:
        self.times: list[int] = []
        self.ids: list[str] = []
        self.known: list[int] = []  # when each event became known as a fraud (NEVER: not known)
        self.marked: dict[tuple[str, int], int] = {}  # fraud marks by (transaction id, t_ms): known since


def _index(term: _Terminal, transaction_id: str, t_ms: int) -> int | None:
    """The index of the terminal's event of this id at this time (as Redis finds it: by its record),
    by binary search on the time."""
    times, ids = term.times, term.ids
    for i in range(bisect_left(times, t_ms), bisect_right(times, t_ms)):
        if ids[i] == transaction_id:
            return i
    return None


class MemoryStore:
    """Per-entity sorted event lists in dicts. Not shared between processes."""

    def __init__(self, windows: Windows | None = None) -> None:
        self.windows = windows or Windows()
        self._customer_windows = memory_customers.nested_windows(self.windows)
        self._customers: defaultdict[str, CustomerHistory] = defaultdict(CustomerHistory)
        self._terminals: defaultdict[str, _Terminal] = defaultdict(_Terminal)
        self._records: defaultdict[str, dict[str, StoredRecord]] = defaultdict(dict)

    def begin_customers(self, ops: list[CustomerOp]) -> Done[CustomerResult]:
        return Done(self.update_customers(ops))

    def begin_terminals(self, ops: list[TerminalOp]) -> Done[tuple[int, ...]]:
        return Done(self.update_terminals(ops))

    # -- customers -------------------------------------------------------------------------------
    def update_customers(self, ops: list[CustomerOp]) -> list[CustomerResult]:
        out = []
        retention = self.windows.customer_retention
        for op in ops:
            # to the second, and the terminal hash to 24 bits, as Redis keeps them
            op = op._replace(t_ms=whole_seconds(op.t_ms), terminal_hash=op.terminal_hash & TERMINAL_HASH_MASK)
            cust = self._customers[op.customer_id]
            if cust.holds(op.transaction_id):
                p = cust.index_of(op.transaction_id)
                view, q = cust.as_of(p)
                aggregates = self.customer_aggregates(view, q)
                if (cust.times[p], cust.cents[p], cust.terms[p]) != (op.t_ms, op.cents, op.terminal_hash):
                    out.append(CustomerResult(True, None, aggregates, conflict=True))
                    continue
                rec = self._records.get(op.customer_id, {}).get(op.transaction_id)
                out.append(CustomerResult(True, rec, aggregates))
                continue
            p = cust.insert(op)
            out.append(CustomerResult(False, None, self.customer_aggregates(cust, p)))
            if cust.times[0] < cust.times[-1] - retention:
                cust.trim(retention)
        return out

    def customer_aggregates(self, cust: CustomerHistory, p: int) -> tuple[int, ...]:
        """Aggregates of the event at index `p` over the events sorted before it (and itself)."""
        return memory_customers.aggregates(cust, p, self._customer_windows)

    # -- terminals -------------------------------------------------------------------------------
    def update_terminals(self, ops: list[TerminalOp]) -> list[tuple[int, ...]]:
        out = []
        retention = self.windows.terminal_retention
        for op in ops:
            op = op._replace(t_ms=whole_seconds(op.t_ms))
            term = self._terminals[op.terminal_id]
            times = term.times
            found = _index(term, op.transaction_id, op.t_ms)
            if found is not None:  # a redelivery (the same id at the same second): the events held now
                out.append(self.terminal_aggregates(times, term.known if term.marked else None,
                                                    bisect_right(times, op.t_ms) - 1))
                continue
            p = bisect_right(times, op.t_ms)
            times.insert(p, op.t_ms)
            term.ids.insert(p, op.transaction_id)
            term.known.insert(p, term.marked.get((op.transaction_id, op.t_ms), NEVER))
            out.append(self.terminal_aggregates(times, term.known if term.marked else None, p))
            if times[0] < times[-1] - retention:
                bound = times[-1] - retention
                first = bisect_left(times, bound)
                del times[:first], term.ids[:first], term.known[:first]
                if term.marked:
                    term.marked = {k: v for k, v in term.marked.items() if k[1] >= bound}
        return out

    def terminal_aggregates(self, times: list[int], known: list[int] | None, p: int) -> tuple[int, ...]:
        """Of the events sorted up to index `p` (the events at or before its time): counts and frauds
        over (t - delay - n, t - delay] for n = 1, 7, 30 d; count over (t - 1 h, t];
        the newest three events of the 30-day window and their frauds, whether the newest is one, the
        age of the newest fraud there (-1: none). An event counts as a fraud if it was known as one at
        time t (`known`; None: no frauds)."""
        w = self.windows
        t = times[p]
        hi = p + 1
        end = bisect_right(times, t - w.terminal_delay, 0, hi)
        ic = bisect_right(times, t - w.terminal_delay - w.terminal_30d, 0, end)
        ib = bisect_right(times, t - w.terminal_delay - w.terminal_7d, ic, end)
        ia = bisect_right(times, t - w.terminal_delay - w.terminal_1d, ic, end)
        ih = bisect_right(times, t - w.terminal_1h, 0, hi)
        lo3 = max(ic, end - 3)
        if known is None:
            fa = fb = fc = f3 = last = 0
            age = -1
        else:
            flags = [k <= t for k in known[ic:end]]
            fc, fb, fa = sum(flags), sum(flags[ib - ic:]), sum(flags[ia - ic:])
            f3, last = sum(flags[lo3 - ic:]), int(bool(flags) and flags[-1])
            newest = next((i for i in range(end - 1, ic - 1, -1) if flags[i - ic]), None)
            age = -1 if newest is None else t - times[newest]
        return (end - ia, fa, end - ib, fb, end - ic, fc, hi - ih, end - lo3, f3, last, age)

    def mark_frauds(self, items: list[FraudMark]) -> None:
        for mark in items:
            term = self._terminals[mark.terminal_id]
            key = (mark.transaction_id, whole_seconds(mark.t_ms))
            if key in term.marked:  # the first mark wins
                continue
            term.marked[key] = known_ms = whole_seconds(mark.known_ms)
            found = _index(term, *key)
            if found is not None:
                term.known[found] = known_ms

    # -- scored records --------------------------------------------------------------------------
    def put_rows(self, rows: ScoredRows, meanwhile: Meanwhile | None = None) -> None:
        self.put_records(rows.records())
        if meanwhile is not None:
            meanwhile(always_ready)

    def put_records(self, items: list[tuple[str, str, StoredRecord]]) -> None:
        newest: dict[str, int] = {}
        for customer_id, txid, record in items:
            self._records[customer_id][txid] = record
            if record.t_ms > newest.get(customer_id, record.t_ms - 1):
                newest[customer_id] = record.t_ms
        for customer_id, t_ms in newest.items():
            records = self._records[customer_id]
            cut = t_ms - self.windows.record_retention
            if next(iter(records.values())).t_ms < cut:  # oldest first (insertion order ~ event time)
                for txid in [k for k, r in records.items() if r.t_ms < cut]:
                    del records[txid]

    def take_records(self, items: list[RecordRef]) -> list[StoredRecord | None]:
        out: list[StoredRecord | None] = []
        for ref in items:
            record = self._find(ref)
            if record is not None:
                del self._records[ref.customer_id][ref.transaction_id]
            out.append(record)
        return out

    def peek_records(self, items: list[RecordRef], meanwhile: Meanwhile | None = None,
                     ) -> list[tuple[StoredRecord, int | None] | None]:
        if meanwhile is not None:
            meanwhile(always_ready)
        out: list[tuple[StoredRecord, int | None] | None] = []
        for ref in items:
            record = self._find(ref)
            out.append(None if record is None else (record, None))
        return out

    def drop_records(self, items: list[RecordRef], meanwhile: Meanwhile | None = None) -> None:
        self.take_records(items)
        if meanwhile is not None:
            meanwhile(always_ready)

    def _find(self, ref: RecordRef) -> StoredRecord | None:
        """The record, when its event time is in the hour the reference names (as in Redis)."""
        record = self._records.get(ref.customer_id, {}).get(ref.transaction_id)
        if record is None or record.t_ms // HOUR_MS != ref.t_ms // HOUR_MS:
            return None
        return record
