"""Work overlapping with Redis: commands written now and their replies read later (`InFlight`), and
the store's `meanwhile` callback, on a real server."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import redis

from fraudstream.config import Settings
from fraudstream.models.events import Transaction
from fraudstream.stream.features import FeatureEngine
from fraudstream.stream.state import MemoryStore
from fraudstream.stream.state.in_flight import InFlight
from fraudstream.stream.state.redis_store import RedisStore

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def batch(n: int) -> list[Transaction]:
    return [Transaction(transaction_id=f"t{i}", customer_id=f"c{i % 5}", terminal_id=f"m{i % 7}",
                        amount=5.0 + i, event_time=T0 + timedelta(minutes=11 * i)) for i in range(n)]


@pytest.mark.services
def test_replies_are_read_after_other_work(settings: Settings) -> None:
    client = redis.Redis.from_url(settings.redis_url or "")
    key = f"{settings.redis_key_prefix}:n"
    in_flight = InFlight(client, [("SET", key, "1"), ("INCRBY", key, 2), ("GET", key)])
    assert client.ping()  # another connection of the pool, while the replies wait
    assert in_flight.replies() == [b"OK", 3, b"3"]  # raw replies (no response callbacks)
    # an error reply is raised once every reply is read: the connection stays usable, in step
    in_flight = InFlight(client, [("SET", key, "x"), ("INCR", key), ("GET", key)])
    with pytest.raises(redis.exceptions.ResponseError, match="not an integer"):
        in_flight.replies()
    assert client.get(key) == b"x"
    assert client.incrby(key + "2", 5) == 5
    # abandoned: the connection is dropped with its unread replies, the pool goes on
    InFlight(client, [("INCRBY", key + "2", 1)]).abandon()
    assert int(client.get(key + "2") or 0) in (5, 6) and client.incrby(key + "2", 10) in (15, 16)
    client.close()


@pytest.mark.services
def test_meanwhile_runs_once_and_changes_no_feature(settings: Settings) -> None:
    client = redis.Redis.from_url(settings.redis_url or "")
    txs = batch(60)
    expected = FeatureEngine(MemoryStore()).transform(txs)
    for store in (MemoryStore(), RedisStore(client, prefix=settings.redis_key_prefix)):
        calls: list[int] = []
        got, earlier = FeatureEngine(store).transform_scored(txs, meanwhile=lambda: calls.append(1))
        assert calls == [1] and got == expected and earlier == [None] * len(txs)
    client.close()


@pytest.mark.services
def test_meanwhile_with_scripts_gone_from_the_server(settings: Settings) -> None:
    client = redis.Redis.from_url(settings.redis_url or "")
    store = RedisStore(client, prefix=settings.redis_key_prefix)
    engine = FeatureEngine(store)
    txs = batch(30)
    first = engine.transform(txs[:10])
    client.script_flush()  # as after a restart or failover: NOSCRIPT, loaded again, run again
    calls: list[int] = []
    rest = engine.transform_scored(txs[10:], meanwhile=lambda: calls.append(1))[0]
    assert calls == [1]
    assert first + rest == FeatureEngine(MemoryStore()).transform(txs)
    client.close()


@pytest.mark.services
def test_a_failing_meanwhile_leaves_the_store_usable(settings: Settings) -> None:
    client = redis.Redis.from_url(settings.redis_url or "")
    engine = FeatureEngine(RedisStore(client, prefix=settings.redis_key_prefix))
    txs = batch(20)

    def fail() -> None:
        raise RuntimeError("poll failed")

    with pytest.raises(RuntimeError, match="poll failed"):
        engine.transform_scored(txs, meanwhile=fail)
    # the update may have run: a retry of the batch is a redelivery, with the same features
    assert engine.transform(txs) == FeatureEngine(MemoryStore()).transform(txs)
    client.close()
