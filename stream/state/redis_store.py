"""`RedisStore`: the state store on Redis or Valkey, single server or cluster.

Every update is a Lua script, so concurrent consumers never lose updates to a read-modify-write
race. Keys of one customer share the hash tag ``{c:<id>}``, keys of one terminal ``{t:<id>}``; each
script call touches one hash slot on a cluster (ops grouped by slot) and, on a single server, one
call carries the whole batch.
"""

from __future__ import annotations

import logging
from hashlib import blake2b
from collections import defaultdict
from collections.abc import Callable, Sequence
from importlib.resources import files
from typing import Any

import msgpack
import redis
from redis.cluster import RedisCluster, key_slot
from redis.exceptions import NoScriptError

from fraudstream.config import Settings
from fraudstream.constants import CUSTOMER_TAG, TERMINAL_TAG
from fraudstream.stream.state.base import CustomerOp, CustomerResult, TerminalOp, Windows

log = logging.getLogger(__name__)

SCRIPT_NAMES = ("customer_update", "terminal_update", "terminal_mark_fraud", "records_put", "records_take")


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
    """48 bits of BLAKE2b of a transaction id: how the scripts recognise a redelivery or a labelled
    event (a false match needs two ids of one customer or terminal in the retention to collide:
    probability ~n^2 / 2^49 for n of them).

    >>> id_hash("42").hex()
    'fb1537b27530'
    """
    return blake2b(transaction_id.encode(), digest_size=6).digest()


class RedisStore:
    """See the module docstring. `client` may be `redis.Redis` or `redis.cluster.RedisCluster`."""

    def __init__(self, client: redis.Redis | RedisCluster, prefix: str = "fs", windows: Windows | None = None) -> None:
        self.client = client
        self.prefix = prefix
        self.windows = windows or Windows()
        self.cluster = isinstance(client, RedisCluster)
        self._source = {name: files(__package__).joinpath(f"{name}.lua").read_text() for name in SCRIPT_NAMES}
        self._sha: dict[str, str] = {}
        self._load_scripts()

    def _load_scripts(self) -> None:
        for name, source in self._source.items():
            self._sha[name] = self.client.script_load(source)

    # -- keys ------------------------------------------------------------------------------------
    def customer_keys(self, customer_id: str) -> tuple[str, str, str, str]:
        """events, scored records, records index, coordinates."""
        base = f"{self.prefix}:{{{CUSTOMER_TAG}:{customer_id}}}"
        return f"{base}:ev", f"{base}:rec", f"{base}:rect", f"{base}:geo"

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

    def _grouped(self, entities: Sequence[str], keys_of: Callable[[str], Sequence[str]]) -> list[tuple[list[str], dict[str, int], list[int]]]:
        """Group op indices by hash slot (one group on a single server).

        Returns per group: the keys, entity -> 1-based index of its first key, and the op indices.
        """
        groups: dict[int, tuple[list[str], dict[str, int], list[int]]] = defaultdict(lambda: ([], {}, []))
        for i, entity in enumerate(entities):
            ks = keys_of(entity)
            slot = key_slot(ks[0].encode()) if self.cluster else 0
            keys, index, ops = groups[slot]
            if entity not in index:
                index[entity] = len(keys) + 1
                keys.extend(ks)
            ops.append(i)
        return list(groups.values())

    def _batched(self, name: str, entities: Sequence[str], keys_of: Callable[[str], Sequence[str]],
                 op_args: Callable[[int, int], list[Any]], extra: list[Any]) -> list[tuple[list[int], Any]]:
        groups = self._grouped(entities, keys_of)
        calls = []
        for keys, index, ops in groups:
            packed = msgpack.packb([op_args(i, index[entities[i]]) for i in ops], use_bin_type=False)
            calls.append((keys, [packed, *extra]))
        results = self._run(name, calls)
        return [(ops, result) for (_, _, ops), result in zip(groups, results)]

    # -- StateStore ------------------------------------------------------------------------------
    def update_customers(self, ops: list[CustomerOp]) -> list[CustomerResult]:
        if not ops:
            return []
        w = self.windows
        extra = [w.customer_30d, w.customer_7d, w.customer_1d, w.customer_1h, w.customer_10min, w.customer_retention]

        def args(i: int, k: int) -> list[Any]:
            op = ops[i]
            return [k, op.t_ms, op.cents, op.terminal_hash, op.transaction_id, id_hash(op.transaction_id),
                    op.latitude, op.longitude]

        def keys(customer_id: str) -> tuple[str, str, str]:
            ev, rec, _, geo = self.customer_keys(customer_id)
            return ev, rec, geo

        out: list[CustomerResult | None] = [None] * len(ops)
        for indices, raw in self._batched("customer_update", [o.customer_id for o in ops], keys, args, extra):
            for i, row in zip(indices, msgpack.unpackb(raw, raw=True)):
                out[i] = CustomerResult(row[0] != 0, row[1] or None, tuple(row[2:]), conflict=row[0] == 2)
        return out  # type: ignore[return-value]

    def update_terminals(self, ops: list[TerminalOp]) -> list[tuple[float, ...]]:
        if not ops:
            return []
        w = self.windows
        extra = [w.terminal_delay, w.terminal_1d, w.terminal_7d, w.terminal_30d, w.terminal_1h, w.terminal_retention]
        out: list[tuple[float, ...] | None] = [None] * len(ops)
        for indices, raw in self._batched("terminal_update", [o.terminal_id for o in ops],
                                          lambda t: (self.terminal_key(t),),
                                          lambda i, k: [k, ops[i].t_ms, id_hash(ops[i].transaction_id)], extra):
            for i, row in zip(indices, msgpack.unpackb(raw, raw=True)):
                out[i] = tuple(row)
        return out  # type: ignore[return-value]

    def mark_frauds(self, items: list[tuple[str, str]]) -> None:
        if items:
            self._batched("terminal_mark_fraud", [t for t, _ in items], lambda t: (self.terminal_key(t),),
                          lambda i, k: [k, id_hash(items[i][1])], [])

    def put_records(self, items: list[tuple[str, str, int, bytes]]) -> None:
        if items:
            self._batched("records_put", [c for c, *_ in items], lambda c: self.customer_keys(c)[1:3],
                          lambda i, k: [k, items[i][1], items[i][2], items[i][3]], [self.windows.record_retention])

    def take_records(self, items: list[tuple[str, str]]) -> list[bytes | None]:
        if not items:
            return []
        out: list[bytes | None] = [None] * len(items)
        for indices, raw in self._batched("records_take", [c for c, _ in items], lambda c: self.customer_keys(c)[1:3],
                                          lambda i, k: [k, items[i][1]], []):
            for i, rec in zip(indices, msgpack.unpackb(raw, raw=True)):
                out[i] = rec or None
        return out
