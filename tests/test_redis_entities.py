"""Customer and terminal updates sent and read in separate steps (`stream.state.redis_entities`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest

from fraudstream.config import Settings
from fraudstream.models.events import Transaction
from fraudstream.stream.features import FeatureEngine
from fraudstream.stream.state import MemoryStore, open_redis_store

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def batch(start: int, n: int) -> list[Transaction]:
    return [Transaction(transaction_id=f"t{i}", customer_id=f"c{i % 7}", terminal_id=f"m{i % 5}",
                        amount=3 + (i * 17) % 90, event_time=T0 + timedelta(minutes=11 * i))
            for i in range(start, start + n)]


class Boom(Exception):
    pass


@pytest.mark.services
def test_work_done_meanwhile_runs_in_the_customers_and_the_terminals_waits(settings: Settings) -> None:
    """Twice per batch, each time given `ready`, which turns True once the server has answered; the
    features are those of the memory store all the same."""
    store = open_redis_store(settings)
    memory, engine = FeatureEngine(MemoryStore()), FeatureEngine(store)
    calls: list[bool] = []

    def wait_for_the_reply(ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 10
        while not ready() and time.monotonic() < deadline:
            time.sleep(0.001)
        calls.append(ready())

    for start in (0, 40, 80):
        txs = batch(start, 40)
        got = engine.transform_batch(txs, meanwhile=wait_for_the_reply).rows()
        assert got == memory.transform(txs)
    assert calls == [True] * 6


@pytest.mark.services
def test_an_update_abandoned_meanwhile_leaves_no_reply_for_the_next_caller(settings: Settings) -> None:
    """The customer call was sent when the work meanwhile failed: its connection goes back closed,
    so the next call on the pool does not read the abandoned reply; delivered again, the batch gets
    the features it would have had."""
    store = open_redis_store(settings)
    memory, engine = FeatureEngine(MemoryStore()), FeatureEngine(store)
    first = batch(0, 40)

    def fail(ready: object) -> None:
        raise Boom

    with pytest.raises(Boom):
        engine.transform_batch(first, meanwhile=fail)
    assert store.client.ping()
    assert engine.transform(first) == memory.transform(first)
    second = batch(40, 40)
    assert engine.transform(second) == memory.transform(second)


@pytest.mark.services
def test_scripts_missing_on_the_server_are_loaded_again(settings: Settings) -> None:
    """A server that restarted (or failed over) has no scripts: the calls are made again."""
    store = open_redis_store(settings)
    memory, engine = FeatureEngine(MemoryStore()), FeatureEngine(store)
    first, second = batch(0, 40), batch(40, 40)
    assert engine.transform(first) == memory.transform(first)
    store.client.script_flush()
    assert engine.transform_batch(second, meanwhile=lambda ready: None).rows() == memory.transform(second)


@pytest.mark.services
def test_a_batch_of_conflicts_only_keeps_no_connection(settings: Settings) -> None:
    """Every transaction reuses an id: the terminals get no update, and no call (or connection) is
    left behind for it, however often it happens."""
    store = open_redis_store(settings)
    memory, engine = FeatureEngine(MemoryStore()), FeatureEngine(store)
    first = batch(0, 40)
    assert engine.transform(first) == memory.transform(first)
    reused = [tx.model_copy(update={"amount": tx.amount + 1}) for tx in first]
    clients = store.client.info("clients")["connected_clients"]
    for _ in range(5):
        assert engine.transform_batch(reused).conflict == [True] * len(reused)
    assert store.client.info("clients")["connected_clients"] == clients
    second = batch(40, 40)
    assert engine.transform(second) == memory.transform(second)


@pytest.mark.services
def test_a_batch_wider_than_a_script_chunk_reads_and_writes_every_entity(settings: Settings) -> None:
    """Keys are read with MGET and written with MSET in chunks of 4,000 values: a batch of 4,500
    customers with coordinates (9,000 keys) and 4,500 terminals spans chunks, and every entity's
    state is read and written (the next batch, over the same entities, sees the first)."""
    store = open_redis_store(settings)
    memory, engine = FeatureEngine(MemoryStore()), FeatureEngine(store)
    n = 4_500
    for day in range(2):
        txs = [Transaction(transaction_id=f"w{day}-{i}", customer_id=f"c{i}", terminal_id=f"m{i}",
                           amount=1 + i % 50, event_time=T0 + timedelta(days=day, seconds=i),
                           latitude=40 + i % 7 / 10, longitude=-3 - i % 5 / 10)
                for i in range(n)]
        assert engine.transform(txs) == memory.transform(txs)
    x = engine.transform([Transaction(transaction_id="last", customer_id=f"c{n - 1}", terminal_id=f"m{n - 1}",
                                      amount=2.0, event_time=T0 + timedelta(days=2))])[0]
    assert x is not None and x["CUSTOMER_ID_NB_TX_7DAY_WINDOW"] == 3.0
    assert store.client.strlen(store.customer_keys(f"c{n - 1}")[1]) == 2 * 8  # two coordinates (the third had none)
