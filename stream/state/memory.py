"""`MemoryStore`: the state store in plain Python, with exactly the semantics of the Lua scripts.

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

from bisect import bisect_right
from collections import defaultdict

from fraudstream.stream.state.base import CustomerOp, CustomerResult, TerminalOp, Windows


class MemoryStore:
    """Per-entity sorted event lists in dicts. Not shared between processes."""

    def __init__(self, windows: Windows | None = None) -> None:
        self.windows = windows or Windows()
        # customer -> (times, events); event = (t_ms, cents, terminal_hash, txid, lat, lon)
        self._customers: dict[str, tuple[list[int], list[tuple]]] = defaultdict(lambda: ([], []))
        # terminal -> (times, events); event = [t_ms, txid, fraud]
        self._terminals: dict[str, tuple[list[int], list[list]]] = defaultdict(lambda: ([], []))
        self._records: dict[str, dict[str, tuple[int, bytes]]] = defaultdict(dict)

    # -- customers -------------------------------------------------------------------------------
    def update_customers(self, ops: list[CustomerOp]) -> list[CustomerResult]:
        out = []
        for op in ops:
            times, events = self._customers[op.customer_id]
            p = _find(events, op.transaction_id, 3)
            if p is not None:
                first = events[p]
                if (first[0], first[1], first[2]) != (op.t_ms, op.cents, op.terminal_hash):
                    out.append(CustomerResult(True, None, self.customer_aggregates(events, p), conflict=True))
                    continue
                rec = self._records.get(op.customer_id, {}).get(op.transaction_id)
                stored = rec[1] if rec else None
                out.append(CustomerResult(True, stored, self.customer_aggregates(events, p)))
                continue
            p = bisect_right(times, op.t_ms)
            times.insert(p, op.t_ms)
            events.insert(p, (op.t_ms, op.cents, op.terminal_hash, op.transaction_id, op.latitude, op.longitude))
            out.append(CustomerResult(False, None, self.customer_aggregates(events, p)))
            _trim(times, events, self.windows.customer_retention)
        return out

    def customer_aggregates(self, events: list[tuple], p: int) -> tuple[float, ...]:
        w = self.windows
        t, _, term, *_ = events[p]
        nb1 = s1 = nb7 = s7 = nb30 = s30 = sq30 = nbh = sh = nb10 = 0
        terms: set[int] = set()
        seen = 0
        hlat = hlon = 0.0
        hn = 0
        for i in range(p, -1, -1):
            e = events[i]
            dt = t - e[0]
            if dt >= w.customer_30d:
                break
            c = e[1]
            nb30 += 1
            s30 += c
            sq30 += c * c
            if dt < w.customer_7d:
                nb7 += 1
                s7 += c
            if dt < w.customer_1d:
                nb1 += 1
                s1 += c
                terms.add(e[2])
            if dt < w.customer_1h:
                nbh += 1
                sh += c
            if dt < w.customer_10min:
                nb10 += 1
            if i < p:
                if e[2] == term:
                    seen = 1
                if e[4] is not None:
                    hlat += e[4]
                    hlon += e[5]
                    hn += 1
        prev_dt, plat, plon, pcoord = -1, 0.0, 0.0, 0
        if p > 0:
            prev = events[p - 1]
            prev_dt = t - prev[0]
            if prev[4] is not None:
                plat, plon, pcoord = prev[4], prev[5], 1
        return (nb1, s1, nb7, s7, nb30, s30, sq30, nbh, sh, nb10, prev_dt, len(terms), seen,
                hlat, hlon, hn, plat, plon, pcoord)

    # -- terminals -------------------------------------------------------------------------------
    def update_terminals(self, ops: list[TerminalOp]) -> list[tuple[float, ...]]:
        out = []
        for op in ops:
            times, events = self._terminals[op.terminal_id]
            p = _find(events, op.transaction_id, 1)
            if p is None:
                p = bisect_right(times, op.t_ms)
                times.insert(p, op.t_ms)
                events.insert(p, [op.t_ms, op.transaction_id, 0])
                out.append(self.terminal_aggregates(events, p))
                _trim(times, events, self.windows.terminal_retention)
            else:
                out.append(self.terminal_aggregates(events, p))
        return out

    def terminal_aggregates(self, events: list[list], p: int) -> tuple[float, ...]:
        w = self.windows
        t = events[p][0]
        d, a, b, c_ = w.terminal_delay, w.terminal_1d, w.terminal_7d, w.terminal_30d
        ca = fa = cb = fb = cc = fc = ch = 0
        limit = d + c_
        for i in range(p, -1, -1):
            e = events[i]
            dt = t - e[0]
            if dt >= limit:
                break
            if dt < w.terminal_1h:
                ch += 1
            if dt >= d:
                f = e[2]
                cc += 1
                fc += f
                if dt < d + b:
                    cb += 1
                    fb += f
                if dt < d + a:
                    ca += 1
                    fa += f
        return (ca, fa, cb, fb, cc, fc, ch)

    def mark_frauds(self, items: list[tuple[str, str]]) -> None:
        for terminal_id, txid in items:
            if terminal_id not in self._terminals:
                continue
            events = self._terminals[terminal_id][1]
            p = _find(events, txid, 1)
            if p is not None:
                events[p][2] = 1

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


def _find(events: list, txid: str, index: int) -> int | None:
    for i in range(len(events) - 1, -1, -1):
        if events[i][index] == txid:
            return i
    return None


def _trim(times: list[int], events: list, retention: int) -> None:
    cut = times[-1] - retention
    if times[0] < cut:
        first = bisect_right(times, cut - 1)
        del times[:first]
        del events[:first]
