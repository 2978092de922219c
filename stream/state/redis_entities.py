"""Customer and terminal updates in Redis, each split into sending the script call and reading it.

`RedisStore.begin_customers` writes the batch's customer script call and returns at once: the
caller works meanwhile (the consumer learns from labels) while the server runs the script. Reading
the reply is split again: `CustomerUpdate.conflicts` reads it and decodes only the statuses, which
is all the terminal update needs, so the terminal call is on its way before the customer aggregates
are computed from the returned strings (`CustomerUpdate.results`). On a cluster a batch spans hash
slots, and the calls are made when the reply is read.

The scripts and the string formats are described in customer_update.lua and terminal_update.lua.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import msgpack
import numpy as np
from redis.cluster import key_slot

from fraudstream.logs import OccasionalWarning
from fraudstream.stream.schema import StoredRecord, UnreadableRecord
from fraudstream.stream.state import blobs, terminal_blobs
from fraudstream.stream.state.base import CustomerOp, CustomerResult, RecordRef, to_micro
from fraudstream.stream.state.redis_records import read_logged
from fraudstream.stream.state.script_io import Calls

if TYPE_CHECKING:
    from fraudstream.stream.state.redis_store import RedisStore

log = logging.getLogger(__name__)


class LostCoordinates:
    """Customers whose events and coordinates disagree, one of the two keys lost
    (`blobs.mend_lost_coordinates`): a warning at the first and at most every `every_s` seconds
    after, with a count.

    >>> lost = LostCoordinates()
    >>> lost.note(["c1"], now=0.0)  # doctest: +ELLIPSIS
    'the events and coordinates of customer c1 in Redis disagree: ...'
    >>> lost.note(["c2"], now=10.0), lost.note(["c3"], now=400.0)[:34]
    (None, '2 more customers whose events and ')
    """

    CONSEQUENCE = (": one of the two keys was lost (an evicting maxmemory-policy?); the records whose coordinates "
                   "are gone count without them in the distance features")

    def __init__(self, every_s: float = 300.0) -> None:
        self.warning = OccasionalWarning(log, every_s)

    def note(self, customers: list[str], now: float | None = None) -> str | None:
        return self.warning.note(
            len(customers), lambda: f"the events and coordinates of customer {customers[0]} in Redis disagree"
                                    + self.CONSEQUENCE,
            lambda n, seconds: (f"{n:,} more customers whose events and coordinates in Redis disagree, in "
                                f"{seconds:.0f} s, e.g. {customers[0]}" + self.CONSEQUENCE), now)


_lost_coordinates = LostCoordinates()


class Batch:
    """Ops grouped by hash slot (one group on a single server): per group the keys and the op
    indices, and per op the index of its entity in its group (keys of entity e: e * width + 1..)."""

    def __init__(self, entities: Sequence[str], keys_of: Callable[[str], Sequence[str]], cluster: bool) -> None:
        self.keys: list[list[str]] = []
        self.ops: list[list[int]] = []
        self.entity_slot: list[int] = []
        if not entities:  # no groups, so no script calls (and no connection taken)
            return
        if not cluster:  # the common case, kept cheap: one group
            index: dict[str, int] = {}
            keys: list[str] = []
            slots = self.entity_slot
            for entity in entities:
                e = index.get(entity)
                if e is None:
                    e = index[entity] = len(index)
                    keys.extend(keys_of(entity))
                slots.append(e)
            self.keys.append(keys)
            self.ops.append(list(range(len(entities))))
            return
        groups: dict[int, int] = {}
        seen: list[dict[str, int]] = []
        for i, entity in enumerate(entities):
            ks = keys_of(entity)
            slot = key_slot(ks[0].encode())
            g = groups.get(slot)
            if g is None:
                g = groups[slot] = len(self.keys)
                self.keys.append([])
                self.ops.append([])
                seen.append({})
            e = seen[g].get(entity)
            if e is None:
                e = seen[g][entity] = len(seen[g])
                self.keys[g].extend(ks)
            self.ops[g].append(i)
            self.entity_slot.append(e)


class CustomerUpdate:
    """A batch's customer script call: sent on creation, read by `conflicts`, parsed by `results`."""

    def __init__(self, store: RedisStore, ops: list[CustomerOp], hashes: list[bytes], retention: list[int]) -> None:
        self.store, self.ops = store, ops
        self.batch = batch = Batch([o.customer_id for o in ops], store.customer_keys, store.cluster)
        calls: Calls = []
        for keys, members in zip(batch.keys, batch.ops):
            packed: list[Any] = []  # flat: three values per op (see customer_update.lua)
            for i in members:
                op = ops[i]
                has = op.latitude is not None and op.longitude is not None
                record = blobs.customer_record(op.t_ms, op.cents, op.terminal_hash, hashes[i], has)
                geo = blobs.geo_record(to_micro(op.latitude), to_micro(op.longitude)) if has else False  # type: ignore[arg-type]
                packed += (batch.entity_slot[i] * 2 + 1, record, geo)
            calls.append((keys, [msgpack.packb(packed, use_bin_type=False), *retention]))
        self.sent = store.send_script("customer_update", calls)
        self.status: list[int] | None = None
        self.index: list[int] = [0] * len(ops)  # each op's record index in its entity's string

    def ready(self) -> bool:
        """Whether the reply has begun to come (see `state.base.Meanwhile`)."""
        return self.sent.ready()

    def conflicts(self) -> list[bool]:
        """Per op, whether its id is already used by another transaction (read from the reply)."""
        return [st == 2 for st in self._statuses()]

    def _statuses(self) -> list[int]:
        """Per op 0 new, 1 duplicate, 2 conflict (see customer_update.lua); sets `index`."""
        if self.status is None:
            status = [0] * len(self.ops)
            for reply, members in zip(self.sent.replies(), self.batch.ops):
                flat = msgpack.unpackb(reply[0], raw=True)  # status and index per op
                for i, st, idx in zip(members, flat[0::2], flat[1::2]):
                    status[i] = st
                    self.index[i] = idx
            self.status = status
        return self.status

    def results(self) -> list[CustomerResult]:
        """Per op its aggregates (and the stored record of a duplicate), from the returned strings."""
        if not self.ops:
            return []
        ops, batch, status = self.ops, self.batch, self._statuses()
        # one array of every returned string's events; per op, its prefix [start, own] in it
        ev_parts: list[bytes] = []
        geo_parts: list[bytes] = []
        firsts: list[int] = []  # per customer string returned: its first record, its records,
        counts: list[int] = []  # its first coordinates row (-1: none returned) and its rows
        gfirsts: list[int] = []
        grows: list[int] = []
        op_entity = np.zeros(len(ops), dtype=np.int64)
        records = geo_rows = 0
        for reply, members in zip(self.sent.replies(), batch.ops):
            base = len(firsts)
            for k in range(1, len(reply), 2):
                n = len(reply[k]) // blobs.CUSTOMER_WIDTH
                firsts.append(records)
                counts.append(n)
                ev_parts.append(reply[k])
                records += n
                coordinates = reply[k + 1]
                returned = coordinates is not False and coordinates is not None  # (maybe empty: its key lost)
                rows = len(coordinates) // blobs.GEO_WIDTH if returned else 0
                gfirsts.append(geo_rows if returned else -1)
                grows.append(rows)
                if rows:
                    geo_parts.append(coordinates)
                    geo_rows += rows
            for i in members:
                op_entity[i] = base + batch.entity_slot[i]
        ev = blobs.parse_customer(b"".join(ev_parts))
        first_of = np.array(firsts, dtype=np.int64)
        start = first_of[op_entity]
        own = start + np.array(self.index, dtype=np.int64)
        geo_first_of = np.array(gfirsts, dtype=np.int64)
        flagged_before: np.ndarray | None = None  # cumulative count of flagged records, when computed
        if (geo_first_of >= 0).any():  # a coordinates string came back, maybe empty (its key lost)
            flagged_before = np.cumsum(ev.flag)
            mended = blobs.mend_lost_coordinates(ev.flag, first_of, np.array(counts, dtype=np.int64), geo_first_of,
                                                 np.array(grows, dtype=np.int64), flagged_before)
            if mended.size:
                flagged_before = None  # flags were cleared
                _lost_coordinates.note([ops[int(np.flatnonzero(op_entity == e)[0])].customer_id for e in mended.tolist()])
        entity_geo = geo_first_of[op_entity]
        # coordinate aggregates for the ops whose own record has coordinates: a new op's has them when
        # the op does; a redelivered one's is the record stored the first time, with or without them
        need = np.array([o.latitude is not None and o.longitude is not None for o in ops]) & ev.flag[own]
        geo = geo_index = None
        if need.any():
            geo = blobs.parse_geo(b"".join(geo_parts))
            # row of each flagged record in the coordinates array: per entity, flagged records in order
            counted = (np.cumsum(ev.flag) if flagged_before is None else flagged_before) - ev.flag
            geo_index = np.zeros(len(ev.t), dtype=np.int64)
            spans: dict[int, tuple[int, int]] = {}  # per customer (its first record): first row, end of its ops' prefixes
            for i in np.nonzero(need)[0].tolist():
                first = int(start[i])
                spans[first] = (int(entity_geo[i]), max(spans.get(first, (0, 0))[1], int(own[i]) + 1))
            for first, (gfirst, end) in spans.items():  # once per customer: a busy one's prefixes are long
                geo_index[first:end] = gfirst + counted[first:end] - counted[first]
        aggregates = blobs.customer_aggregates(ev, geo, start, own, self.store.customer_windows, geo_index, need)
        stored: dict[int, StoredRecord | None] = {}
        duplicates = [i for i, st in enumerate(status) if st == 1]
        if duplicates:
            fetched = self.store.records.fetch("keep", [RecordRef(ops[i].customer_id, ops[i].transaction_id, ops[i].t_ms)
                                                        for i in duplicates])
            for i, payload in zip(duplicates, fetched):
                record = None if payload is None else read_logged(payload, RecordRef(ops[i].customer_id,
                                                                                      ops[i].transaction_id, ops[i].t_ms))
                # an unreadable record (logged): the transaction is scored again, its record written anew
                stored[i] = None if isinstance(record, UnreadableRecord) else record
        return [CustomerResult(st != 0, stored.get(i), aggregates[i], conflict=st == 2) for i, st in enumerate(status)]

    def discard(self) -> None:
        self.sent.discard()


class TerminalUpdate:
    """A batch's terminal script call: sent on creation, read and parsed by `results`."""

    def __init__(self, store: RedisStore, terminal_ids: list[str], times: list[int], hashes: list[bytes],
                 retention: list[int]) -> None:
        self.store = store
        self.size = len(terminal_ids)
        self.batch = batch = Batch(terminal_ids, lambda t: (store.terminal_key(t),), store.cluster)
        self.records = [terminal_blobs.terminal_record(t, h) for t, h in zip(times, hashes)]
        calls: Calls = []
        for keys, members in zip(batch.keys, batch.ops):
            packed: list[Any] = []  # flat: two values per op (see terminal_update.lua)
            for i in members:
                packed += (batch.entity_slot[i] + 1, self.records[i])
            calls.append((keys, [msgpack.packb(packed, use_bin_type=False), *retention]))
        self.sent = store.send_script("terminal_update", calls)

    def ready(self) -> bool:
        """Whether the reply has begun to come (see `state.base.Meanwhile`)."""
        return self.sent.ready()

    def results(self) -> list[tuple[int, ...]]:
        """Per op the terminal's aggregates as of its event, from the returned strings."""
        if not self.size:
            return []
        strings: list[bytes] = []
        entity = np.zeros(self.size, dtype=np.int64)
        added = np.zeros(self.size, dtype=bool)
        for reply, members in zip(self.sent.replies(), self.batch.ops):
            first = len(strings)
            strings.extend(reply[1:])
            for i, flag in zip(members, msgpack.unpackb(reply[0], raw=True)):
                entity[i] = first + self.batch.entity_slot[i]
                added[i] = flag == 1
        keys = np.frombuffer(b"".join(self.records), dtype="<i8")  # as terminal_blobs.record_key
        return terminal_blobs.terminal_aggregates(strings, entity, (keys & 0xFFFFFFFF) * 1000, added, keys,
                                                  self.store.terminal_windows)

    def discard(self) -> None:
        self.sent.discard()
