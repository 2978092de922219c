"""A kafka-python 3.0.12 workaround: a group join that completes while no poll waits for it is kept.

kafka-python 3.0.12 runs a consumer's JoinGroup/SyncGroup as a task on its IO thread, and a poll
waits for that task at most for its own timeout. When the task completes after one poll gave up and
before the next one looks, `BaseCoordinator.join_group_async` finds it done, takes it for a stale
one and sends a new JoinGroup: the assignment it brought is thrown away and the group rebalances
again (~3 s with Tansu or Kafka's initial rebalance delay). A consumer's start took 6 or 9 s
instead of 3 s in 15 of 52 starts with 20 ms polls, and a rebalance with a second member took up
to 11 s, in 3-s rounds, with 500 ms polls: Tansu completes a join 3 s after its JoinGroup, at a
poll boundary when the poll timeout divides 3 s (2026-12-05, `benchmarks/group_join.py`).

`keep_completed_joins(consumer)` wraps that method on one consumer's coordinator (no other client
is touched): a task that succeeded unseen is finished as kafka-python finishes one it waited for
(the tail of its `join_group_async`: member state stable, heartbeats on, `_on_join_complete_async`
with the assignment). Only for the kafka-python version whose code this mirrors; with another
version nothing is changed.
"""

from __future__ import annotations

import logging
from typing import Any

import kafka
from kafka import KafkaConsumer

log = logging.getLogger(__name__)

MENDED_VERSIONS = frozenset({"3.0.12"})


def keep_completed_joins(consumer: KafkaConsumer) -> bool:
    """Mend `consumer`'s coordinator (see the module docstring); False when its kafka-python
    version is not one this mirrors, or the consumer has no group."""
    coordinator = getattr(consumer, "_coordinator", None)
    if kafka.__version__ not in MENDED_VERSIONS or coordinator is None or coordinator.group_id is None:
        return False
    from kafka.structs import MemberState  # where 3.0.12 has it

    original = coordinator.join_group_async

    async def join_group_async(timeout_ms: Any = None) -> bool:
        task = coordinator._join_task
        if task is not None and task.succeeded() and coordinator.need_rejoin():
            log.debug("group %s: keeping a join that completed between two polls", coordinator.group_id)
            coordinator._join_task = None
            with coordinator._lock:
                coordinator.rejoining = False
                coordinator.rejoin_needed = False
                coordinator.state = MemberState.STABLE
                coordinator._enable_heartbeat()
            generation = coordinator._generation
            await coordinator._on_join_complete_async(
                generation.generation_id, generation.member_id, generation.protocol, task.value)
            return True
        return bool(await original(timeout_ms))

    coordinator.join_group_async = join_group_async
    return True
