"""Whether the Redis server may evict the consumer's keys: said once, at the start.

The consumer's keys are its state: a customer's events and their coordinates (two keys that must
agree), the terminals' histories, the scored records that wait for their labels, the model registry.
A server with a `maxmemory-policy` other than ``noeviction`` drops keys when it is full: ``allkeys-*``
any of them (features then count without the lost history, and a lost registry looks like a server
restarted empty), ``volatile-*`` those with an expiry (the scored records, whose labels are then
dead-lettered as ``unknown_transaction``, the labels' markers, the newest event times, the learner's
lease). With ``noeviction`` a full server refuses
writes instead, and the consumer waits, retrying, until memory is raised or freed.

>>> class Server:
...     def __init__(self, policy): self.policy = policy
...     def config_get(self, name): return {"maxmemory-policy": self.policy, "maxmemory": "5242880"}
>>> eviction_warning(Server("noeviction")) is None
True
>>> print(eviction_warning(Server("allkeys-lru")))  # doctest: +ELLIPSIS
Redis evicts keys when full (maxmemory-policy allkeys-lru, maxmemory 5,242,880 bytes): ... set maxmemory-policy noeviction ...
"""

from __future__ import annotations

import logging
from typing import Any

import redis

log = logging.getLogger(__name__)


def eviction_warning(client: Any) -> str | None:
    """The warning for a server whose policy may evict keys (None with ``noeviction``, or when the
    server does not let clients read its configuration, as some managed services do not)."""
    try:
        config = client.config_get("maxmemory*")
    except redis.ResponseError as exc:  # CONFIG renamed or refused: nothing to say
        log.debug("cannot read Redis's maxmemory-policy: %s", exc)
        return None
    if isinstance(config, dict) and config and all(isinstance(v, dict) for v in config.values()):
        config = next(iter(config.values()))  # a cluster client answers per node
    policy = str(config.get("maxmemory-policy", "noeviction"))
    if policy == "noeviction":
        return None
    limit = int(config.get("maxmemory", 0) or 0)
    size = f"maxmemory {limit:,} bytes" if limit else "maxmemory not set yet"
    return (f"Redis evicts keys when full (maxmemory-policy {policy}, {size}): the consumer would lose feature "
            "state, scored records (their labels then dead-lettered as unknown_transaction) and model versions; "
            "set maxmemory-policy noeviction (a full server then refuses writes and the consumer waits) and "
            "size maxmemory for the state (README: Redis memory)")


def warn_if_evicting(client: Any) -> None:
    """Log `eviction_warning`, if any."""
    message = eviction_warning(client)
    if message is not None:
        log.warning(message)
