"""Scored records (kept from scoring until the label): the same behaviour in memory and on a real
Redis/Valkey server (one hash per hour of event time)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import msgpack
import numpy as np
import pytest
import redis
from click.testing import CliRunner

from fraudstream.cli import main
from fraudstream.config import Settings
from fraudstream.stream.schema import FEATURE_NAMES, ScoredRows, StoredRecord, encode_record
from fraudstream.stream.state import MemoryStore, StateStore
from fraudstream.stream.state.base import HOUR_MS, RecordRef, Windows
from fraudstream.stream.state.redis_records import migrate_legacy_records
from fraudstream.stream.state.redis_store import RedisStore

T0 = 1_714_521_600_000  # 2024-05-01T00:00Z, a whole hour


def record(t_ms: int, i: int, scores: dict[str, float] | None = None) -> StoredRecord:
    features = {name: float(k + i) / 3 for k, name in enumerate(FEATURE_NAMES)}
    return StoredRecord(t_ms, f"m{i}", features, scores or {"gam_under": i / 1000})


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest, settings: Settings) -> Iterator[StateStore]:
    if request.param == "memory":
        yield MemoryStore()
        return
    client = redis.Redis.from_url(settings.redis_url or "")
    yield RedisStore(client, prefix=settings.redis_key_prefix)
    client.close()


def test_put_peek_take_drop(store: StateStore) -> None:
    items = [(f"c{i % 7}", f"t{i}", record(T0 + i * 61_000, i)) for i in range(300)]  # 300 min: 6 hours
    store.put_records(items)
    refs = [RecordRef(c, t, rec.t_ms) for c, t, rec in items]

    peeked = store.peek_records(refs)
    assert [p[0] for p in peeked if p is not None] == [rec for _, _, rec in items]
    ttls = {p[1] for p in peeked if p is not None}
    if isinstance(store, RedisStore):  # wall-clock expiry, renewed by each write
        assert all(t is not None and 0 < t <= store.windows.record_retention for t in ttls)
    else:
        assert ttls == {None}

    # a label names the hour of its transaction's event time: another hour finds nothing
    assert store.peek_records([RecordRef("c0", "t0", T0 + HOUR_MS)]) == [None]
    assert store.peek_records([RecordRef("c0", "t0", T0 + HOUR_MS - 1)])[0] is not None
    # another customer with the same transaction id is another record
    assert store.peek_records([RecordRef("c1", "t0", T0)]) == [None]

    # take returns each record once, also when it is asked for twice in one call
    taken = store.take_records([refs[0], refs[0], refs[1]])
    assert taken == [items[0][2], None, items[1][2]]
    assert store.take_records(refs[:2]) == [None, None]
    # a ref to the wrong hour takes nothing, and does not hide the record from a right one after it
    assert store.take_records([RecordRef("c2", "t2", T0 + HOUR_MS), refs[2]]) == [None, items[2][2]]

    store.drop_records(refs[3:150] + [RecordRef("nobody", "t3", T0)])
    rest = store.peek_records(refs)
    assert [p is None for p in rest] == [True] * 150 + [False] * 150


def test_rows_are_stored_as_the_same_records(store: StateStore) -> None:
    """`put_rows` (the consumer's batch of records by column) keeps what `put_records` keeps."""
    items = [(f"c{i % 5}", f"t{i}", record(T0 + i * 1000, i, {"gbt_window": i / 10}))
             for i in range(40)]
    items = [(c, t, rec._replace(alert=b'{"a": 1}') if i % 3 == 0 else rec) for i, (c, t, rec) in enumerate(items)]
    store.put_rows(ScoredRows([c for c, _, _ in items], [t for _, t, _ in items], [r.t_ms for _, _, r in items],
                              [r.terminal_id for _, _, r in items],
                              np.array([[r.features[n] for n in FEATURE_NAMES] for _, _, r in items]),
                              [r.scores for _, _, r in items], [r.alert for _, _, r in items]))
    peeked = store.peek_records([RecordRef(c, t, rec.t_ms) for c, t, rec in items])
    assert [p[0] if p else None for p in peeked] == [rec for _, _, rec in items]


def test_ids_cannot_collide_across_customers(store: StateStore) -> None:
    """A customer id ending as another begins is a different record (the field is length-prefixed)."""
    store.put_records([("c1", "t:9", record(T0, 1)), ("c1:t", "9", record(T0, 2))])
    got = store.peek_records([RecordRef("c1", "t:9", T0), RecordRef("c1:t", "9", T0)])
    assert [p[0].terminal_id for p in got if p is not None] == ["m1", "m2"]


def test_many_records_of_one_hour_in_one_call(store: StateStore) -> None:
    """More fields than Lua's unpack takes at once (the scripts write and read them in chunks)."""
    items = [(f"c{i}", f"t{i}", record(T0 + i, i)) for i in range(9000)]
    store.put_records(items)
    refs = [RecordRef(c, t, rec.t_ms) for c, t, rec in items]
    assert store.take_records(refs) == [rec for _, _, rec in items]
    assert store.take_records(refs[::1000]) == [None] * 9


def test_redis_hours_expire_after_the_retention_renewed_by_each_write(settings: Settings) -> None:
    client = redis.Redis.from_url(settings.redis_url or "")
    # margins of 1.4 s either way: a shared CI machine once stalled long enough to break 0.7 s
    store = RedisStore(client, prefix=settings.redis_key_prefix, windows=Windows(record_retention=3000))
    store.put_records([("c", "t", record(T0, 0))])
    keys = list(client.scan_iter(match=f"{settings.redis_key_prefix}:{{r:*}}"))
    assert len(keys) == 1 and 0 < client.pttl(keys[0]) <= 3000
    time.sleep(1.6)
    store.put_records([("c", "t2", record(T0 + 1, 1))])  # the same hour: its life starts again
    assert client.pttl(keys[0]) > 2000
    time.sleep(1.6)  # 3.2 s after the first write, 1.6 s after the second
    assert store.peek_records([RecordRef("c", "t", T0)])[0] is not None
    time.sleep(3.0)
    assert store.peek_records([RecordRef("c", "t", T0), RecordRef("c", "t2", T0 + 1)]) == [None, None]
    client.close()


def test_migrate_records_moves_the_one_key_per_record_layout(settings: Settings) -> None:
    """`fraudstream migrate-records` after an upgrade: records kept the old way are found again."""
    client = redis.Redis.from_url(settings.redis_url or "")
    prefix = settings.redis_key_prefix
    items = [(f"c{i % 37}", f"t{i}", record(T0 + i * 30_000, i)) for i in range(1200)]  # 10 hours
    for customer_id, transaction_id, rec in items:  # as written then: the record's epoch ms, not its time in the hour
        legacy = msgpack.packb([rec.t_ms, *msgpack.unpackb(encode_record(rec))[1:]], use_bin_type=True)
        client.set(f"{prefix}:{{c:{customer_id}}}:r:{transaction_id}", legacy, px=600_000)
    client.set(f"{prefix}:{{c:c1}}:ev", b"events")  # not a record: left alone
    client.set(f"{prefix}:{{c:c2}}:r:bad", b"garbage")  # unreadable: logged and left, the others moved
    store = RedisStore(client, prefix=prefix)
    refs = [RecordRef(c, t, rec.t_ms) for c, t, rec in items]
    assert store.peek_records(refs[:3]) == [None] * 3

    result = CliRunner().invoke(main, ["migrate-records"], env={"FRAUDSTREAM_REDIS_URL": settings.redis_url,
                                                                 "FRAUDSTREAM_REDIS_KEY_PREFIX": prefix})
    assert result.exit_code == 0, result.output
    assert "moved 1,200 scored records" in result.output
    assert [p[0] for p in store.peek_records(refs) if p is not None] == [rec for _, _, rec in items]
    assert list(client.scan_iter(match=f"{prefix}:{{c:*}}:r:*")) == [f"{prefix}:{{c:c2}}:r:bad".encode()]
    assert client.get(f"{prefix}:{{c:c1}}:ev") == b"events"
    assert migrate_legacy_records(store.records, client) == 0  # idempotent
    client.close()


def test_migrate_records_leaves_a_prefix_that_its_pattern_would_match_alone(settings: Settings) -> None:
    """A key prefix with glob characters is matched literally: ``fs*`` does not take ``fsb``'s keys."""
    client = redis.Redis.from_url(settings.redis_url or "")
    mine, other = f"{settings.redis_key_prefix}*", f"{settings.redis_key_prefix}b"
    for prefix in (mine, other):
        client.set(f"{prefix}:{{c:c1}}:r:t1", encode_record(record(T0, 1)), px=600_000)
    assert migrate_legacy_records(RedisStore(client, prefix=mine).records, client) == 1
    assert client.exists(f"{other}:{{c:c1}}:r:t1") and not client.exists(f"{mine}:{{c:c1}}:r:t1")
    assert RedisStore(client, prefix=other).peek_records([RecordRef("c1", "t1", T0)]) == [None]
    client.close()


def test_migrate_records_refuses_while_a_consumer_holds_the_learner_role(settings: Settings) -> None:
    """Moving records under a running consumer would race its writes: refused unless --force."""
    from fraudstream.stream.registry import registry_for

    client = redis.Redis.from_url(settings.redis_url or "")
    prefix = settings.redis_key_prefix
    client.set(f"{prefix}:{{c:c1}}:r:t1", encode_record(record(T0, 1)), px=600_000)
    registry_for(settings, client).hold_learner("host-1:4242", 60_000)
    env = {"FRAUDSTREAM_REDIS_URL": settings.redis_url or "", "FRAUDSTREAM_REDIS_KEY_PREFIX": prefix}
    refused = CliRunner().invoke(main, ["migrate-records"], env=env)
    assert refused.exit_code == 1 and "host-1:4242 holds the learner role" in refused.output, refused.output
    assert client.exists(f"{prefix}:{{c:c1}}:r:t1")  # nothing moved
    forced = CliRunner().invoke(main, ["migrate-records", "--force"], env=env)
    assert forced.exit_code == 0 and "moved 1 scored records" in forced.output, forced.output
    assert "event strings not converted (--force" in forced.output
    client.close()
