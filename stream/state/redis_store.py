"""`RedisStore`: the state store on Redis or Valkey, single server or cluster.

Every update is a Lua script, so concurrent consumers never lose updates to a read-modify-write
race: a script appends a batch's events to each entity's string (after checking the ids) and
returns the strings; the window aggregates of the whole batch are then computed here, vectorised
(`fraudstream.stream.state.blobs`). Keys of one customer share the hash tag ``{c:<id>}``, keys of
one terminal ``{t:<id>}``; each script call touches one hash slot on a cluster (ops grouped by
slot) and, on a single server, one call carries the whole batch.

Scored records are fields of one hash per hour of event time (`fraudstream.stream.state.redis_records`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from hashlib import blake2b
from importlib.resources import files
from typing import Any

import msgpack
import numpy as np
import redis
from redis.cluster import RedisCluster, key_slot
from redis.exceptions import NoScriptError

from fraudstream.config import Settings
from fraudstream.constants import CUSTOMER_TAG, TERMINAL_TAG
from fraudstream.stream.schema import ScoredRows, StoredRecord, decode_record
from fraudstream.stream.state import blobs
from fraudstream.stream.state.redis_records import RecordBuckets
from fraudstream.stream.state.base import (DAY_MS, CustomerOp, CustomerResult, FraudMark, RecordRef, TerminalOp,
                                          Windows, to_micro)

log = logging.getLogger(__name__)

SCRIPT_NAMES = ("customer_update", "terminal_update", "terminal_mark_fraud", "records_put", "records_take")
TRIM_SLACK_MS = 2 * DAY_MS  # events are cut in bulk once the oldest is this much past the retention


def connect(settings: Settings) -> redis.Redis | RedisCluster:
    """A client for settings.redis_url (password from the URL or settings.redis_password)."""
    if not settings.redis_url:
        raise ValueError("no Redis URL")
    password = settings.redis_password.get_secret_value() if settings.redis_password else None
    # Timeouts so that a hung or stopped server surfaces as an error the consumer retries, not a hang.
    kwargs: dict[str, Any] = {"socket_timeout": 10.0, "socket_connect_timeout": 5.0}
    if password:
        kwargs["password"] = password
    if settings.redis_cluster:
        return RedisCluster.from_url(settings.redis_url, **kwargs)
    return redis.Redis.from_url(settings.redis_url, **kwargs)


def id_hash(transaction_id: str) -> bytes:
    """40 bits of BLAKE2b of a transaction id: how the scripts recognise a redelivery or a labelled
    event (a false match needs two ids of one customer or terminal in the retention to collide:
    probability ~n^2 / 2^41 for n of them, ~2e-9 for a customer's 60 transactions of 30 days).

    >>> len(id_hash("42")), id_hash("42") == id_hash("42") != id_hash("43")
    (5, True)
    """
    return blake2b(transaction_id.encode(), digest_size=blobs.ID_HASH_BYTES).digest()


class _Batch:
    """Ops grouped by hash slot (one group on a single server): per group the keys and the op
    indices, and per op the index of its entity in its group (keys of entity e: e * width + 1..)."""

    def __init__(self, entities: Sequence[str], keys_of: Callable[[str], Sequence[str]], cluster: bool) -> None:
        self.keys: list[list[str]] = []
        self.ops: list[list[int]] = []
        self.entity_slot: list[int] = []
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


class RedisStore:
    """See the module docstring. `client` may be `redis.Redis` or `redis.cluster.RedisCluster`."""

    def __init__(self, client: redis.Redis | RedisCluster, prefix: str = "fs", windows: Windows | None = None) -> None:
        self.client = client
        self.prefix = prefix
        self.windows = w = windows or Windows()
        self.cluster = isinstance(client, RedisCluster)
        self._customer_windows = blobs.CustomerWindows(w.customer_30d, w.customer_7d, w.customer_1d, w.customer_1h,
                                                       w.customer_10min)
        self._terminal_windows = blobs.TerminalWindows(w.terminal_delay, w.terminal_1d, w.terminal_7d, w.terminal_30d,
                                                       w.terminal_1h)
        self._source = {name: files(__package__).joinpath(f"{name}.lua").read_text() for name in SCRIPT_NAMES}
        self._sha: dict[str, str] = {}
        self._memo: tuple[list[str], list[bytes]] | None = None
        self._load_scripts()
        self.records = RecordBuckets(self._run, prefix, w.record_retention, self.cluster)

    def _load_scripts(self) -> None:
        for name, source in self._source.items():
            self._sha[name] = self.client.script_load(source)

    # -- keys ------------------------------------------------------------------------------------
    def customer_keys(self, customer_id: str) -> tuple[str, str]:
        """events, coordinates."""
        base = f"{self.prefix}:{{{CUSTOMER_TAG}:{customer_id}}}"
        return f"{base}:ev", f"{base}:geo"

    def terminal_key(self, terminal_id: str) -> str:
        return f"{self.prefix}:{{{TERMINAL_TAG}:{terminal_id}}}:ev"

    # -- script plumbing -------------------------------------------------------------------------
    def _run(self, name: str, calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
        """Run script `name` once per (keys, args) in one pipeline; reload scripts on NOSCRIPT."""
        for attempt in (1, 2):
            pipe = self.client.pipeline(transaction=False)
            for keys, args in calls:
                # execute_command: redis-py's cluster pipeline blocks .evalsha() but routes EVALSHA by its keys
                pipe.execute_command("EVALSHA", self._sha[name], len(keys), *keys, *args)
            try:
                return pipe.execute()
            except NoScriptError:
                if attempt == 2:
                    raise
                log.info("scripts missing on the server (restart or failover): loading them again")
                self._load_scripts()
        raise AssertionError("unreachable")  # pragma: no cover

    def _hashes(self, transaction_ids: list[str]) -> list[bytes]:
        """`id_hash` of each id; the engine updates customers and then terminals with the same ids,
        so the previous call's hashes are reused."""
        memo = self._memo
        if memo is not None and memo[0] == transaction_ids:
            return memo[1]
        hashes = [id_hash(t) for t in transaction_ids]
        self._memo = (transaction_ids, hashes)
        return hashes

    # -- customers -------------------------------------------------------------------------------
    def update_customers(self, ops: list[CustomerOp]) -> list[CustomerResult]:
        if not ops:
            return []
        batch = _Batch([o.customer_id for o in ops], self.customer_keys, self.cluster)
        retention = [self.windows.customer_retention, TRIM_SLACK_MS]
        hashes = self._hashes([o.transaction_id for o in ops])
        calls = []
        for keys, members in zip(batch.keys, batch.ops):
            packed = []
            for i in members:
                op = ops[i]
                has = op.latitude is not None and op.longitude is not None
                record = blobs.customer_record(op.t_ms, op.cents, op.terminal_hash, hashes[i], has)
                geo = blobs.geo_record(to_micro(op.latitude), to_micro(op.longitude)) if has else False  # type: ignore[arg-type]
                packed.append([batch.entity_slot[i] * 2 + 1, record, geo])
            calls.append((keys, [msgpack.packb(packed, use_bin_type=False), *retention]))
        replies = self._run("customer_update", calls)

        # one array of every returned string's events; per op, its prefix [start, own] in it
        ev_parts: list[bytes] = []
        geo_parts: list[bytes] = []
        start = np.zeros(len(ops), dtype=np.int64)
        own = np.zeros(len(ops), dtype=np.int64)
        status = [0] * len(ops)
        first_of_entity: list[list[int]] = []
        geo_first: list[list[int]] = []
        records = geo_rows = 0
        for reply in replies:
            firsts, gfirsts = [], []
            for k in range(1, len(reply), 2):
                firsts.append(records)
                gfirsts.append(geo_rows if reply[k + 1] is not False and reply[k + 1] is not None else -1)
                ev_parts.append(reply[k])
                records += len(reply[k]) // blobs.CUSTOMER_WIDTH
                if gfirsts[-1] >= 0:
                    geo_parts.append(reply[k + 1])
                    geo_rows += len(reply[k + 1]) // blobs.GEO_WIDTH
            first_of_entity.append(firsts)
            geo_first.append(gfirsts)
        entity_first = np.zeros(len(ops), dtype=np.int64)
        entity_geo = np.zeros(len(ops), dtype=np.int64)
        for g, (reply, members) in enumerate(zip(replies, batch.ops)):
            for i, (st, idx) in zip(members, msgpack.unpackb(reply[0], raw=True)):
                e = batch.entity_slot[i]
                status[i] = st
                entity_first[i] = first_of_entity[g][e]
                entity_geo[i] = geo_first[g][e]
                start[i] = first_of_entity[g][e]
                own[i] = first_of_entity[g][e] + idx
        ev = blobs.parse_customer(b"".join(ev_parts))
        need = np.array([o.latitude is not None and o.longitude is not None for o in ops])
        geo = geo_index = None
        if need.any():
            geo = blobs.parse_geo(b"".join(geo_parts))
            # row of each flagged record in the coordinates array: per entity, flagged records in order
            counted = np.cumsum(ev.flag) - ev.flag
            geo_index = np.zeros(len(ev.t), dtype=np.int64)
            for i in np.nonzero(need)[0]:
                first, gfirst = int(entity_first[i]), int(entity_geo[i])
                end = int(own[i]) + 1
                geo_index[first:end] = gfirst + counted[first:end] - counted[first]
        aggregates = blobs.customer_aggregates(ev, geo, start, own, self._customer_windows, geo_index, need)
        stored: dict[int, StoredRecord | None] = {}
        duplicates = [i for i, st in enumerate(status) if st == 1]
        if duplicates:
            fetched = self.records.fetch("keep", [RecordRef(ops[i].customer_id, ops[i].transaction_id, ops[i].t_ms)
                                                  for i in duplicates])
            stored = {i: None if r is None else decode_record(r) for i, r in zip(duplicates, fetched)}
        return [CustomerResult(st != 0, stored.get(i), aggregates[i], conflict=st == 2) for i, st in enumerate(status)]

    # -- terminals -------------------------------------------------------------------------------
    def update_terminals(self, ops: list[TerminalOp]) -> list[tuple[int, ...]]:
        if not ops:
            return []
        batch = _Batch([o.terminal_id for o in ops], lambda t: (self.terminal_key(t),), self.cluster)
        retention = [self.windows.terminal_retention, TRIM_SLACK_MS]
        hashes = self._hashes([o.transaction_id for o in ops])
        calls = []
        for keys, members in zip(batch.keys, batch.ops):
            packed = [[batch.entity_slot[i] + 1, blobs.terminal_record(ops[i].t_ms, hashes[i])] for i in members]
            calls.append((keys, [msgpack.packb(packed, use_bin_type=False), *retention]))
        replies = self._run("terminal_update", calls)
        events: list[bytes] = []
        marks: list[bytes] = []
        counts: list[int] = []
        start = np.zeros(len(ops), dtype=np.int64)
        own = np.zeros(len(ops), dtype=np.int64)
        records = 0
        for reply, members in zip(replies, batch.ops):
            firsts = []
            for blob in reply[1:]:
                mark, ev = blobs.split_terminal(blob)
                firsts.append(records)
                events.append(ev)
                marks.append(mark)
                counts.append(len(ev) // blobs.TERMINAL_WIDTH)
                records += counts[-1]
            for i, idx in zip(members, msgpack.unpackb(reply[0], raw=True)):
                start[i] = firsts[batch.entity_slot[i]]
                own[i] = start[i] + idx
        ev = blobs.parse_terminal(b"".join(events), marks, counts)
        return blobs.terminal_aggregates(ev, start, own, self._terminal_windows)

    def mark_frauds(self, items: list[FraudMark]) -> None:
        if not items:
            return
        batch = _Batch([m.terminal_id for m in items], lambda t: (self.terminal_key(t),), self.cluster)
        calls = []
        for keys, members in zip(batch.keys, batch.ops):
            packed = [[batch.entity_slot[i] + 1, blobs.fraud_mark(items[i].t_ms, items[i].known_ms,
                                                                   id_hash(items[i].transaction_id))] for i in members]
            calls.append((keys, [msgpack.packb(packed, use_bin_type=False)]))
        self._run("terminal_mark_fraud", calls)

    # -- scored records (see redis_records) -----------------------------------------------------
    def put_records(self, items: list[tuple[str, str, StoredRecord]]) -> None:
        if items:
            self.records.put(items)

    def put_rows(self, rows: ScoredRows) -> None:
        if rows.customer_ids:
            self.records.put_rows(rows)

    def take_records(self, items: list[RecordRef]) -> list[StoredRecord | None]:
        return [None if r is None else decode_record(r) for r in self.records.fetch("take", items)]

    def peek_records(self, items: list[RecordRef]) -> list[tuple[StoredRecord, int | None] | None]:
        return [None if r is None else (decode_record(r[0]), int(r[1]) if int(r[1]) > 0 else None)
                for r in self.records.fetch("peek", items)]

    def drop_records(self, items: list[RecordRef]) -> None:
        self.records.fetch("drop", items)
