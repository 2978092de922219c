"""Scored records in Redis: fields of one hash per hour of event time, kept until their label
takes them or the hash expires.

A record is the field ``<len(customer id)>:<customer id><transaction id>`` of the hash
``{prefix}:{r:<hour>}`` (``{prefix}:{r:<hour>:<shard>}`` on a cluster, the shard from the customer
id, so that an hour's records spread over the nodes), where the hour is the transaction's event
time in whole hours since the epoch: the label, which carries that time, finds it there. Each write
renews the hash's time to live (`Windows.record_retention`, wall clock), so a record lives at least
that long. One script call per batch (per hash on a cluster) writes, reads or deletes them all:
a field costs Valkey far less than a key of its own with a time to live (benchmarks/consumer_steps.py).
"""

from __future__ import annotations

import logging
import re
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import msgpack
from redis.cluster import key_slot

from fraudstream.constants import CUSTOMER_TAG, RECORD_SHARDS_CLUSTER, RECORD_TAG
from fraudstream.stream.schema import (ScoredRows, StoredRecord, UnreadableRecord, encode_record, encode_records,
                                       read_record)
from fraudstream.stream.state.base import HOUR_MS, Meanwhile, RecordRef
from fraudstream.stream.state.script_io import Calls

log = logging.getLogger(__name__)
Runner = Callable[[str, Calls, "Meanwhile | None"], list[Any]]


def record_field(customer_id: str, transaction_id: str) -> str:
    """The hash field of a record: unambiguous for any two ids (the customer id's length first).

    >>> record_field("c1", "t:9"), record_field("c1:t", "9")
    ('2:c1t:9', '4:c1:t9')
    """
    return f"{len(customer_id)}:{customer_id}{transaction_id}"


class RecordBuckets:
    """Put, take, peek and drop scored records (see the module docstring); `run(script, calls,
    meanwhile)` runs a script once per (keys, args) in one round trip, with `meanwhile(ready)` (if
    not None) run while the server works (`state.base.Meanwhile`)."""

    def __init__(self, run: Runner, prefix: str, retention_ms: int, cluster: bool) -> None:
        self.run = run
        self.prefix = prefix
        self.retention_ms = retention_ms
        self.cluster = cluster

    def key(self, customer_id: str, t_ms: int) -> str:
        hour = t_ms // HOUR_MS
        if not self.cluster:
            return f"{self.prefix}:{{{RECORD_TAG}:{hour}}}"
        return f"{self.prefix}:{{{RECORD_TAG}:{hour}:{zlib.crc32(customer_id.encode()) % RECORD_SHARDS_CLUSTER}}}"

    def put(self, items: list[tuple[str, str, StoredRecord]]) -> None:
        self.put_encoded([(c, t, rec.t_ms, encode_record(rec)) for c, t, rec in items])

    def put_rows(self, rows: ScoredRows, meanwhile: Meanwhile | None = None) -> None:
        """`put` of a batch's records by column (see `schema.encode_records`)."""
        payloads = encode_records(rows.t_ms, rows.terminal_ids, rows.features, rows.scores, rows.alerts)
        self.put_encoded(list(zip(rows.customer_ids, rows.transaction_ids, rows.t_ms, payloads)), meanwhile)

    def put_encoded(self, items: list[tuple[str, str, int, bytes]], meanwhile: Meanwhile | None = None) -> None:
        """(customer_id, transaction_id, t_ms, encoded record) per record."""
        per_key: defaultdict[str, list[Any]] = defaultdict(list)
        for customer_id, transaction_id, t_ms, payload in items:
            per_key[self.key(customer_id, t_ms)] += (record_field(customer_id, transaction_id), payload)
        calls = [(keys, [msgpack.packb([per_key[k] for k in keys], use_bin_type=False), self.retention_ms])
                 for keys in self._groups(list(per_key))]
        self.run("records_put", calls, meanwhile)

    def fetch(self, mode: str, refs: list[RecordRef], meanwhile: Meanwhile | None = None) -> list[Any]:
        """The script's answer per ref, in order: the payload ('peek': (payload, pttl)) or None when
        absent; for 'take', a ref given twice gets its record once."""
        if not refs:
            return []
        per_key: defaultdict[str, list[int]] = defaultdict(list)
        for i, (customer_id, _, t_ms) in enumerate(refs):
            per_key[self.key(customer_id, t_ms)].append(i)
        groups = self._groups(list(per_key))
        calls = [(keys, [mode, msgpack.packb([[record_field(*refs[i][:2]) for i in per_key[k]] for k in keys])])
                 for keys in groups]
        replies = self.run("records_take", calls, meanwhile)
        out: list[Any] = [None] * len(refs)
        if mode == "drop":
            return out
        for keys, reply in zip(groups, replies):
            for k, got in zip(keys, reply):
                if mode == "peek":
                    payloads, pttl = got
                    for i, payload in zip(per_key[k], payloads):
                        out[i] = (payload, pttl) if payload else None
                else:
                    for i, payload in zip(per_key[k], got):
                        out[i] = payload or None
        if mode == "take":  # only a ref that found the record counts as having taken it
            seen: set[tuple[str, str]] = set()
            for i, ref in enumerate(refs):
                if out[i] is not None:
                    if (ref[0], ref[1]) in seen:
                        out[i] = None
                    else:
                        seen.add((ref[0], ref[1]))
        return out

    def _groups(self, keys: list[str]) -> list[list[str]]:
        """Keys per script call: all of them on a single server, one hash slot's on a cluster."""
        if not self.cluster:
            return [keys] if keys else []
        slots: defaultdict[int, list[str]] = defaultdict(list)
        for key in keys:
            slots[key_slot(key.encode())].append(key)
        return list(slots.values())


def read_logged(payload: bytes, ref: RecordRef) -> StoredRecord | UnreadableRecord:
    """`schema.read_record` of the record of `ref`, logged when it cannot be read."""
    record = read_record(payload, ref.t_ms)
    if isinstance(record, UnreadableRecord):
        log.error("the scored record of transaction %r (customer %r) cannot be read: %s",
                  ref.transaction_id, ref.customer_id, record.error)
    return record


def migrate_legacy_records(buckets: RecordBuckets, client: Any, chunk: int = 500) -> int:
    """Move scored records written by fraudstream before the hourly hashes (one string key each,
    ``{prefix}:{c:<customer id>}:r:<transaction id>``) into them; returns how many were moved.

    Run it once with the consumers stopped, after upgrading: labels of transactions scored before
    then find their records again. Idempotent (a second run finds nothing to move). A moved record
    gets the full retention from now (at least the life it had left).
    """
    head, sep = f"{buckets.prefix}:{{{CUSTOMER_TAG}:", "}:r:"

    def move(keys: list[bytes]) -> int:
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.get(key)
        payloads = pipe.execute()
        items, done = [], []
        for key, payload in zip(keys, payloads):
            if payload is not None:  # else expired or taken meanwhile
                record = read_record(payload, 0)  # such a record holds its epoch ms
                if isinstance(record, UnreadableRecord):  # left where it is, logged
                    log.warning("scored record %s cannot be read (%s): left in place, not moved", key.decode(), record.error)
                    continue
                customer_id, transaction_id = key.decode()[len(head):].split(sep, 1)
                items.append((customer_id, transaction_id, record))
            done.append(key)
        if items:
            buckets.put(items)
        pipe = client.pipeline(transaction=False)
        for key in done:
            pipe.delete(key)
        pipe.execute()
        return len(items)

    return sum(move(keys) for keys in scanned_in_chunks(client, f"{glob_escaped(head)}*{sep}*", chunk))


def glob_escaped(text: str) -> str:
    r"""`text` as a literal in a SCAN MATCH pattern (a key prefix may hold glob characters).

    >>> print(glob_escaped("fs[eu]*?"))
    fs\[eu\]\*\?
    """
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def scanned_in_chunks(client: Any, match: str, chunk: int) -> Iterator[list[bytes]]:
    """The keys matching `match`, `chunk` at a time, scanned on as each chunk is handled (a
    migration moves a chunk, deleting its keys, before the scan goes on)."""
    keys: list[bytes] = []
    for key in client.scan_iter(match=match, count=1000):
        keys.append(key)
        if len(keys) >= chunk:
            yield keys
            keys = []
    if keys:
        yield keys
