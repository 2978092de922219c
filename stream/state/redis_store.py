"""`RedisStore`: the state store on Redis or Valkey, single server or cluster.

Every update is a Lua script, so concurrent consumers never lose updates to a read-modify-write
race: a script appends a batch's events to each entity's string (after checking the ids) and
returns the strings; the window aggregates of the whole batch are then computed here, vectorised
(`fraudstream.stream.state.blobs`). Keys of one customer share the hash tag ``{c:<id>}``, keys of
one terminal ``{t:<id>}``; each script call touches one hash slot on a cluster (ops grouped by
slot) and, on a single server, one call carries the whole batch. The customer and terminal calls
are sent and read in separate steps (`fraudstream.stream.state.redis_entities`), so that the caller
works while the server runs them.

Scored records are fields of one hash per hour of event time (`fraudstream.stream.state.redis_records`).
"""

from __future__ import annotations

import logging
from hashlib import blake2b
from importlib.resources import files
from typing import Any

import msgpack
import redis
from redis.cluster import RedisCluster
from redis.exceptions import NoScriptError

from fraudstream.config import Settings
from fraudstream.constants import (CUSTOMER_COORDINATES, CUSTOMER_EVENTS, CUSTOMER_TAG, LEGACY_EVENTS, TERMINAL_EVENTS,
                                   TERMINAL_TAG, UNSORTED_TERMINAL_EVENTS)
from fraudstream.stream.schema import ScoredRows, StoredRecord, UnreadableRecord
from fraudstream.stream.state import blobs, terminal_blobs
from fraudstream.stream.state.redis_entities import Batch, CustomerUpdate, TerminalUpdate
from fraudstream.stream.state.redis_records import RecordBuckets, read_logged
from fraudstream.stream.state.base import (HOUR_MS, CustomerOp, CustomerResult, FraudMark, Meanwhile, RecordRef,
                                          TerminalOp, Windows)
from fraudstream.stream.state.script_io import Calls, ScriptCalls, replies_meanwhile

log = logging.getLogger(__name__)

SCRIPT_NAMES = ("customer_update", "terminal_update", "terminal_mark_fraud", "records_put", "records_take", "state_prune")
LEGACY_PROBE = 100  # customers (terminals) of the first batch checked for strings of a layout before (one round trip)
TRIM_SLACK_MS = 6 * HOUR_MS  # events are cut in bulk once the oldest is this much past the retention


def _script_seconds(*spans_ms: int) -> list[int]:
    """Spans for the scripts, which compare whole seconds (rounded up: nothing is cut early)."""
    return [-(-ms // 1000) for ms in spans_ms]


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
    event. A customer's records hold all 40 (a false match needs two ids of one customer in the
    retention to collide: probability ~n^2 / 2^41 for n of them, ~2e-9 for 60 transactions of 30
    days); a terminal's hold the first 32 and are found by them with the event's second, so a
    false match needs two of its transactions in one second with equal hashes (~2e-10 a pair).

    >>> len(id_hash("42")), id_hash("42") == id_hash("42") != id_hash("43")
    (5, True)
    """
    return blake2b(transaction_id.encode(), digest_size=blobs.ID_HASH_BYTES).digest()


class RedisStore:
    """See the module docstring. `client` may be `redis.Redis` or `redis.cluster.RedisCluster`."""

    def __init__(self, client: redis.Redis | RedisCluster, prefix: str = "fs", windows: Windows | None = None) -> None:
        self.client = client
        self.prefix = prefix
        self.windows = w = windows or Windows()
        self.cluster = isinstance(client, RedisCluster)
        self.customer_windows = blobs.CustomerWindows(w.customer_30d, w.customer_7d, w.customer_1d, w.customer_1h,
                                                       w.customer_10min)
        self.terminal_windows = terminal_blobs.TerminalWindows(w.terminal_delay, w.terminal_1d, w.terminal_7d,
                                                                w.terminal_30d, w.terminal_1h)
        self._source = {name: files(__package__).joinpath(f"{name}.lua").read_text() for name in SCRIPT_NAMES}
        self._sha: dict[str, str] = {}
        self._memo: tuple[list[str], list[bytes]] | None = None
        self._legacy_checked: set[str] = set()  # tags of the entities checked for strings of a layout before
        self._load_scripts()
        self.records = RecordBuckets(self.run_script, prefix, w.record_retention, self.cluster)

    def _load_scripts(self) -> None:
        for name, source in self._source.items():
            self._sha[name] = self.client.script_load(source)

    # -- keys ------------------------------------------------------------------------------------
    def customer_keys(self, customer_id: str) -> tuple[str, str]:
        """events, coordinates."""
        base = f"{self.prefix}:{{{CUSTOMER_TAG}:{customer_id}}}"
        return f"{base}:{CUSTOMER_EVENTS}", f"{base}:{CUSTOMER_COORDINATES}"

    def terminal_key(self, terminal_id: str) -> str:
        return f"{self.prefix}:{{{TERMINAL_TAG}:{terminal_id}}}:{TERMINAL_EVENTS}"

    # -- script plumbing -------------------------------------------------------------------------
    def script_sha(self, name: str) -> str:
        return self._sha[name]

    def send_script(self, name: str, calls: Calls) -> ScriptCalls:
        """The calls of script `name`, sent now and answered by the returned object (see `ScriptCalls`)."""
        return ScriptCalls(self.client, self._sha[name], calls, lambda again: self.run_script(name, again))

    def run_script(self, name: str, calls: Calls, meanwhile: Meanwhile | None = None) -> list[Any]:
        """Run script `name` once per (keys, args) in one pipeline; reload scripts on NOSCRIPT.
        `meanwhile(ready)` (if not None) runs while the server works on it (`state.base.Meanwhile`)."""
        if meanwhile is not None:
            return replies_meanwhile(self.send_script(name, calls), meanwhile)
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

    # -- customers and terminals (see redis_entities) ----------------------------------------------
    def begin_customers(self, ops: list[CustomerOp]) -> CustomerUpdate:
        if CUSTOMER_TAG not in self._legacy_checked and ops:
            self._legacy_checked.add(CUSTOMER_TAG)
            self._warn_of_legacy_state(CUSTOMER_TAG, [o.customer_id for o in ops], (LEGACY_EVENTS,))
        return CustomerUpdate(self, ops, self._hashes([o.transaction_id for o in ops]),
                              _script_seconds(self.windows.customer_retention, TRIM_SLACK_MS))

    def _warn_of_legacy_state(self, tag: str, ids: list[str], suffixes: tuple[str, ...]) -> None:
        """Once, with the first batch: a warning if its first customers (or terminals) still have event
        strings of a layout before, which this version does not read (`migrate-records` converts them)."""
        ids = list(dict.fromkeys(ids))[:LEGACY_PROBE]
        pipe = self.client.pipeline(transaction=False)
        for entity in ids:
            for suffix in suffixes:
                pipe.exists(f"{self.prefix}:{{{tag}:{entity}}}:{suffix}")
        answers = pipe.execute()
        found = sum(any(answers[i:i + len(suffixes)]) for i in range(0, len(answers), len(suffixes)))
        if found:
            kind = "customers" if tag == CUSTOMER_TAG else "terminals"
            keys = " or ".join(f"{self.prefix}:{{{tag}:<id>}}:{s}" for s in suffixes)
            log.warning("%d of the first %d %s have event strings of a layout before (%s), which this version "
                        "does not read: their features start without that history. Stop the consumers and run "
                        "`fraudstream migrate-records` to convert them", found, len(ids), kind, keys)

    def begin_terminals(self, ops: list[TerminalOp]) -> TerminalUpdate:
        if TERMINAL_TAG not in self._legacy_checked and ops:
            self._legacy_checked.add(TERMINAL_TAG)
            self._warn_of_legacy_state(TERMINAL_TAG, [o.terminal_id for o in ops],
                                       (UNSORTED_TERMINAL_EVENTS, LEGACY_EVENTS))
        return TerminalUpdate(self, [o.terminal_id for o in ops], [o.t_ms for o in ops],
                              self._hashes([o.transaction_id for o in ops]),
                              _script_seconds(self.windows.terminal_retention, TRIM_SLACK_MS))

    def update_customers(self, ops: list[CustomerOp]) -> list[CustomerResult]:
        return self.begin_customers(ops).results()

    def update_terminals(self, ops: list[TerminalOp]) -> list[tuple[int, ...]]:
        return self.begin_terminals(ops).results()

    def mark_frauds(self, items: list[FraudMark]) -> None:
        if not items:
            return
        batch = Batch([m.terminal_id for m in items], lambda t: (self.terminal_key(t),), self.cluster)
        calls = []
        for keys, members in zip(batch.keys, batch.ops):
            packed = [[batch.entity_slot[i] + 1, terminal_blobs.fraud_mark(items[i].t_ms, items[i].known_ms,
                                                                   id_hash(items[i].transaction_id))] for i in members]
            calls.append((keys, [msgpack.packb(packed, use_bin_type=False)]))
        self.run_script("terminal_mark_fraud", calls)

    # -- scored records (see redis_records) -----------------------------------------------------
    def put_records(self, items: list[tuple[str, str, StoredRecord]]) -> None:
        if items:
            self.records.put(items)

    def put_rows(self, rows: ScoredRows, meanwhile: Meanwhile | None = None) -> None:
        if rows.customer_ids:
            self.records.put_rows(rows, meanwhile)

    def take_records(self, items: list[RecordRef]) -> list[StoredRecord | UnreadableRecord | None]:
        return [None if r is None else read_logged(r, ref) for ref, r in zip(items, self.records.fetch("take", items))]

    def peek_records(self, items: list[RecordRef], meanwhile: Meanwhile | None = None,
                     ) -> list[tuple[StoredRecord | UnreadableRecord, int | None] | None]:
        return [None if r is None else (read_logged(r[0], ref), int(r[1]) if int(r[1]) > 0 else None)
                for ref, r in zip(items, self.records.fetch("peek", items, meanwhile))]

    def drop_records(self, items: list[RecordRef], meanwhile: Meanwhile | None = None) -> None:
        self.records.fetch("drop", items, meanwhile)

