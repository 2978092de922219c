"""The Redis store on a real three-node Valkey cluster started by the test."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
import redis
from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata
from redis.cluster import RedisCluster

from fraudstream.constants import RECORD_SHARDS_CLUSTER
from fraudstream.models.events import Transaction
from fraudstream.services import ServerProcess, free_port, valkey_process
from fraudstream.stream.features import FeatureEngine
from fraudstream.stream.newest_times import NewestTimes
from fraudstream.stream.schema import FEATURE_NAMES, StoredRecord
from fraudstream.stream.state import MemoryStore
from fraudstream.stream.state.base import RecordRef
from fraudstream.stream.state.redis_store import RedisStore

SLOT_RANGES = [(0, 5460), (5461, 10922), (10923, 16383)]


@pytest.fixture(scope="module")
def valkey_cluster() -> Iterator[RedisCluster]:
    nodes: list[ServerProcess] = []
    bus_ports: list[int] = []
    try:
        for _ in SLOT_RANGES:
            port = free_port()
            while port > 55535:  # Valkey refuses cluster ports above 55535 (its bus port is +10000)
                port = free_port()
            bus_ports.append(free_port())
            node = valkey_process(port, extra_args=["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                                                    "--cluster-node-timeout", "2000", "--cluster-port", str(bus_ports[-1])])
            nodes.append(node)
            node.start()
        clients = [redis.Redis(port=n.port) for n in nodes]
        for client, (low, high) in zip(clients, SLOT_RANGES):
            client.execute_command("CLUSTER", "ADDSLOTSRANGE", low, high)
        for node, bus_port in zip(nodes[1:], bus_ports[1:]):
            clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", node.port, bus_port)
        deadline = time.monotonic() + 30
        while not all(c.cluster("info")["cluster_state"] == "ok" for c in clients):
            if time.monotonic() > deadline:
                raise RuntimeError("cluster did not reach state ok")
            time.sleep(0.2)
        cluster = RedisCluster(host="127.0.0.1", port=nodes[0].port)
        yield cluster
        cluster.close()
    finally:
        for node in nodes:
            node.stop()


def test_cluster_gives_the_same_features_as_memory(valkey_cluster: RedisCluster) -> None:
    t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
    stream = [Transaction(transaction_id=f"t{i}", customer_id=f"c{i % 40}", terminal_id=f"m{i % 23}",
                          amount=1.0 + (i * 7) % 300, event_time=t0 + timedelta(minutes=11 * i))
              for i in range(2000)]
    store = RedisStore(valkey_cluster, prefix="fs-cluster")
    cluster_engine, memory_engine = FeatureEngine(store), FeatureEngine(MemoryStore())
    for start in range(0, len(stream), 250):
        batch = stream[start:start + 250]
        assert cluster_engine.transform(batch) == memory_engine.transform(batch)
    # keys really are spread over the three nodes
    per_node = [n.redis_connection.dbsize() for n in valkey_cluster.get_primaries()]
    assert len(per_node) == 3 and all(count > 0 for count in per_node)


def test_cluster_keeps_scored_records_spread_over_the_nodes(valkey_cluster: RedisCluster) -> None:
    """Scored records: an hour's hash per shard, so one hour of records lands on every node."""
    store = RedisStore(valkey_cluster, prefix="fs-cluster-records")
    t0 = 1_714_521_600_000
    items = [(f"c{i}", f"t{i}", StoredRecord(t0 + i * 1000, f"m{i}", dict.fromkeys(FEATURE_NAMES, float(i)), {"m": 0.5}))
             for i in range(600)]  # 10 minutes: one hour
    store.put_records(items)
    refs = [RecordRef(c, t, rec.t_ms) for c, t, rec in items]
    assert [p[0] for p in store.peek_records(refs) if p is not None] == [rec for _, _, rec in items]
    hashes = [n.redis_connection.keys("fs-cluster-records:{r:*") for n in valkey_cluster.get_primaries()]
    assert all(hashes) and sum(map(len, hashes)) == RECORD_SHARDS_CLUSTER
    store.drop_records(refs[:300])
    assert store.take_records(refs) == [None] * 300 + [rec for _, _, rec in items[300:]]
    assert store.take_records(refs[300:]) == [None] * 300


def test_cluster_keeps_the_newest_event_times_of_the_committed_offsets(valkey_cluster: RedisCluster) -> None:
    """`NewestTimes` saves with one script call over all of a group's partitions (one hash slot)."""
    times = NewestTimes(valkey_cluster, f"fs-{time.time_ns()}", "group")
    parts = [TopicPartition("tx", p) for p in range(3)]
    base = datetime(2018, 4, 1, tzinfo=timezone.utc)
    for step in range(1, 4):
        times.save({tp: OffsetAndMetadata(10 * step + tp.partition, "", -1) for tp in parts},
                   {tp: base + timedelta(minutes=step, seconds=tp.partition) for tp in parts})
    assert times.restore({tp: 20 + tp.partition for tp in parts}) == {
        ("tx", p): base + timedelta(minutes=2, seconds=p) for p in range(3)}
    assert times.at(parts[0], 25) is None and times.at(parts[1], None) is None
