"""`fraudstream prune-state`: the customers and terminals with no event in their retention lose their
keys, the others keep them, and no feature changes (against a memory store that kept everything)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner
from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata
from redis.cluster import RedisCluster

from fraudstream.cli import main
from fraudstream.config import Settings
from fraudstream.models.events import Label, Transaction
from fraudstream.stream.features import FeatureEngine
from fraudstream.stream.newest_times import NewestTimes, partitions_recorded
from fraudstream.stream.state import MemoryStore, open_redis_store
from fraudstream.stream.state.prune_state import Pruned, prune_idle_state
from fraudstream.stream.state.redis_store import RedisStore
from tests.test_features_cluster import valkey_cluster  # noqa: F401  (a fixture)

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
DAY = timedelta(days=1)
NOW = T0 + 40 * DAY + timedelta(hours=1)


def tx(i: str, customer: str, terminal: str, at: timedelta, where: tuple[float, float] | None = None) -> Transaction:
    lat, lon = where or (None, None)
    return Transaction(transaction_id=i, customer_id=customer, terminal_id=terminal, amount=12.5, event_time=T0 + at,
                       latitude=lat, longitude=lon)


HISTORY = [
    tx("a1", "idle", "closed", timedelta(0), (48.9, 2.4)),  # nothing since: both pruned
    tx("b1", "active", "open", 2 * DAY),
    tx("b2", "active", "open", 40 * DAY, (45.7, 4.9)),  # a recent event keeps the customer and the terminal
    tx("c1", "recent", "closed2", 3 * DAY),  # the terminal's newest event: 37 d before NOW, inside its retention
    tx("c2", "recent", "open", 39 * DAY),
]
# a fraud mark of a transaction not seen yet keeps its terminal
MARK = Label(transaction_id="x1", customer_id="someone", terminal_id="marked", is_fraud=True,
             event_time=T0 + 39 * DAY, reported_at=T0 + 39 * DAY + timedelta(hours=1))
LATER = [tx("a2", "idle", "closed", 40 * DAY + timedelta(hours=2)), tx("b3", "active", "open", 40 * DAY + timedelta(hours=2)),
         tx("c3", "recent", "closed2", 40 * DAY + timedelta(hours=3)), tx("x1", "someone", "marked", 39 * DAY)]


@pytest.mark.services
def test_idle_customers_and_terminals_are_pruned_without_changing_a_feature(settings: Settings) -> None:
    store = open_redis_store(settings)
    live = FeatureEngine(store)
    live.transform(HISTORY)
    live.apply_labels([MARK])
    client = store.client
    assert client.exists(store.terminal_key("marked"))

    assert prune_idle_state(store, NOW) == Pruned(customers=1, terminals=1, customers_scanned=3, terminals_scanned=4)
    assert not client.exists(*store.customer_keys("idle"), store.terminal_key("closed"))
    assert client.exists(store.customer_keys("active")[0], store.customer_keys("recent")[0], store.terminal_key("open"),
                         store.terminal_key("closed2"), store.terminal_key("marked")) == 5
    assert prune_idle_state(store, NOW).customers == 0  # nothing more to prune

    kept = FeatureEngine(MemoryStore())
    kept.transform(HISTORY)
    kept.apply_labels([MARK])
    assert live.transform(LATER) == kept.transform(LATER)


@pytest.mark.services
def test_a_cluster_is_pruned_on_every_node(valkey_cluster: RedisCluster) -> None:  # noqa: F811
    store = RedisStore(valkey_cluster, prefix="prune")
    idle = [tx(f"i{n}", f"idle{n}", f"gone{n}", timedelta(minutes=n)) for n in range(12)]
    FeatureEngine(store).transform(idle + HISTORY[1:])
    assert prune_idle_state(store, NOW, chunk=5) == Pruned(customers=12, terminals=12, customers_scanned=14,
                                                           terminals_scanned=14)
    assert not any(valkey_cluster.exists(store.customer_keys(t.customer_id)[0]) for t in idle)
    assert valkey_cluster.exists(store.customer_keys("active")[0], store.terminal_key("open")) == 2


@pytest.mark.services
def test_the_command_prunes_before_the_time_given(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_redis_store(settings)
    FeatureEngine(store).transform(HISTORY)
    for name, value in (("REDIS_URL", settings.redis_url), ("REDIS_KEY_PREFIX", settings.redis_key_prefix)):
        monkeypatch.setenv(f"FRAUDSTREAM_{name}", value or "")
    runner = CliRunner()
    early = runner.invoke(main, ["prune-state", "--before", (T0 + 20 * DAY).isoformat()])
    assert early.exit_code == 0, early.output
    assert "0 of 3 customers and 0 of 3 terminals" in early.output
    done = runner.invoke(main, ["prune-state", "--before", NOW.isoformat()])
    assert done.exit_code == 0, done.output
    assert "1 of 3 customers and 1 of 3 terminals" in done.output
    bad = runner.invoke(main, ["prune-state", "--before", "yesterday"])
    assert bad.exit_code != 0 and "yesterday" in bad.output


@pytest.mark.services
def test_the_command_prunes_as_of_the_consumers_newest_event_time_not_the_clock(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Time in Redis is event time: pruning a replay of the past as of today's clock would delete
    every customer's state. Without --before the command takes the newest event time the consumers
    recorded; a --before more than a day after it needs --force; with neither, it says what to give."""
    store = open_redis_store(settings)
    FeatureEngine(store).transform(HISTORY)
    for name, value in (("REDIS_URL", settings.redis_url), ("REDIS_KEY_PREFIX", settings.redis_key_prefix)):
        monkeypatch.setenv(f"FRAUDSTREAM_{name}", value or "")
    runner = CliRunner()
    unknown = runner.invoke(main, ["prune-state"])
    assert unknown.exit_code != 0 and "give --before" in unknown.output, unknown.output
    assert store.client.exists(store.customer_keys("idle")[0])
    recorded = NewestTimes(store.client, store.prefix, "a-group")
    tp = TopicPartition("transactions", 0)
    recorded.save({tp: OffsetAndMetadata(5, "", -1)}, {tp: T0 + 40 * DAY})
    recorded.save({tp: OffsetAndMetadata(9, "", -1)}, {tp: NOW})
    assert max(partitions_recorded(store.client, store.prefix)) == NOW
    today = datetime.now(timezone.utc).isoformat()
    refused = runner.invoke(main, ["prune-state", "--before", today])
    assert refused.exit_code != 0 and "more than a day after the newest event time" in refused.output, refused.output
    assert store.client.exists(store.customer_keys("active")[0])  # nothing deleted
    done = runner.invoke(main, ["prune-state"])
    assert done.exit_code == 0 and "1 of 3 customers and 1 of 3 terminals" in done.output, done.output
    assert store.client.exists(store.customer_keys("active")[0])
    forced = runner.invoke(main, ["prune-state", "--before", today, "--force"])
    assert forced.exit_code == 0 and "2 of 2 customers" in forced.output, forced.output


@pytest.mark.services
def test_the_default_waits_for_the_slowest_partition(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """A partition two days behind the others (a consumer catching up) still counts its customers'
    events of 29 days ago in their next transaction's 30-day windows: pruned as of the newest
    partition's time, that one's state went, and its features changed."""
    lagging = NOW - 2 * DAY
    history = [tx("l1", "lagging", "term", 9 * DAY + timedelta(hours=1)), tx("f1", "fresh", "term2", 40 * DAY)]
    store = open_redis_store(settings)
    live = FeatureEngine(store)
    live.transform(history)
    recorded = NewestTimes(store.client, store.prefix, "a-group")
    ahead, behind = TopicPartition("transactions", 0), TopicPartition("transactions", 1)
    recorded.save({tp: OffsetAndMetadata(5, "", -1) for tp in (ahead, behind)}, {ahead: NOW, behind: lagging})
    for name, value in (("REDIS_URL", settings.redis_url), ("REDIS_KEY_PREFIX", settings.redis_key_prefix)):
        monkeypatch.setenv(f"FRAUDSTREAM_{name}", value or "")
    done = CliRunner().invoke(main, ["prune-state"])
    assert done.exit_code == 0 and f"before {lagging.isoformat()}" in done.output, done.output
    later = [tx("l2", "lagging", "term", lagging - T0 + timedelta(hours=1))]  # 29 days and 1 hour after l1
    kept = FeatureEngine(MemoryStore())
    kept.transform(history)
    assert live.transform(later) == kept.transform(later)
