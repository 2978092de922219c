"""Deleting the feature state of customers and terminals that stopped transacting (`fraudstream prune-state`).

A customer's and a terminal's event strings have no time to live: they are cut when they are
written (`customer_update.lua`, `terminal_update.lua`), so a card that is never used again (expired,
reissued, closed) or a closed merchant's terminal keeps its last events in Redis for ever, and
Redis holds the state of every card ever seen, not of the active ones (docs/performance.md,
2026-12-08). This sweep deletes the keys of each customer and terminal whose newest event (or, for
a terminal, fraud mark) is older than its retention, and the cut's slack, before `now`: the keys
an append at `now` would have cut every event of. Each entity is checked and deleted in one script
call (`state_prune.lua`), so consumers may run meanwhile. Works on a cluster (an entity's keys share
its hash tag). The scored records and the labels' markers expire by themselves.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from fraudstream.constants import CUSTOMER_COORDINATES, CUSTOMER_EVENTS, CUSTOMER_TAG, TERMINAL_EVENTS, TERMINAL_TAG
from fraudstream.stream.state.redis_records import glob_escaped, scanned_in_chunks
from fraudstream.stream.state.redis_store import TRIM_SLACK_MS, RedisStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pruned:
    """Customers and terminals whose state was deleted, of those scanned (a key SCAN returns twice, as it
    may while keys are deleted, counts twice there)."""

    customers: int
    terminals: int
    customers_scanned: int
    terminals_scanned: int


def prune_idle_state(store: RedisStore, now: datetime, chunk: int = 1000) -> Pruned:
    """Delete the state of the customers and terminals of `store`'s prefix with no event in their
    retention (plus the cut's slack) before `now` (see the module docstring)."""
    start = glob_escaped(store.prefix + ":{")
    now_s = int(now.timestamp())
    counts = []
    for tag, suffix, retention_ms in ((CUSTOMER_TAG, CUSTOMER_EVENTS, store.windows.customer_retention),
                                      (TERMINAL_TAG, TERMINAL_EVENTS, store.windows.terminal_retention)):
        cut = now_s - (retention_ms + TRIM_SLACK_MS) // 1000
        kind = "c" if tag == CUSTOMER_TAG else "t"
        deleted = scanned = 0
        for keys in scanned_in_chunks(store.client, f"{start}{tag}:*}}:{suffix}", chunk):
            calls = [(_entity_keys(key.decode(), kind), [kind, cut]) for key in keys]
            deleted += sum(int(r) for r in store.run_script("state_prune", calls))
            scanned += len(keys)
        log.info("%s: %d of %d deleted (no event since %s)", "customers" if kind == "c" else "terminals", deleted,
                 scanned, datetime.fromtimestamp(cut, now.tzinfo).isoformat())
        counts.append((deleted, scanned))
    (customers, customers_scanned), (terminals, terminals_scanned) = counts
    return Pruned(customers, terminals, customers_scanned, terminals_scanned)


def _entity_keys(events_key: str, kind: str) -> list[str]:
    """A customer's events and coordinates keys, or a terminal's events key.

    >>> _entity_keys("fs:{c:42}:ev2", "c"), _entity_keys("fs:{t:7}:ev3", "t")
    (['fs:{c:42}:ev2', 'fs:{c:42}:geo2'], ['fs:{t:7}:ev3'])
    """
    if kind == "t":
        return [events_key]
    return [events_key, events_key[: -len(CUSTOMER_EVENTS)] + CUSTOMER_COORDINATES]
