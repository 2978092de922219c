"""Customers' and terminals' event strings of layout 1 (times in ms, before 2026-12-06), converted by
`fraudstream migrate-records` into layout 2, go on giving the features of the events seen before."""

from __future__ import annotations

import logging
import struct
import zlib
from datetime import datetime, timedelta, timezone

import pytest
import redis
from click.testing import CliRunner
from redis.cluster import RedisCluster

from fraudstream.cli import main
from fraudstream.config import Settings
from fraudstream.models.events import Label, Transaction
from fraudstream.stream.features import FeatureEngine, cents_of, terminal_hash, to_ms
from fraudstream.stream.state import MemoryStore, blobs, open_redis_store, terminal_blobs
from fraudstream.stream.state.base import CustomerOp, TerminalOp, FraudMark, to_micro
from fraudstream.stream.state.migrate_state import migrate_legacy_state
from fraudstream.stream.state.redis_store import RedisStore, id_hash
from tests.test_features_cluster import valkey_cluster  # noqa: F401  (a fixture)

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
DAY = timedelta(days=1)


def tx(i: str, customer: str, terminal: str, amount: float, at: timedelta, where: tuple[float, float] | None = None,
       ) -> Transaction:
    lat, lon = where or (None, None)
    return Transaction(transaction_id=i, customer_id=customer, terminal_id=terminal, amount=amount,
                       event_time=T0 + at, latitude=lat, longitude=lon)


# -- layout 1, written as the consumers before 2026-12-06 did --------------------------------------
def old_customer(txs: list[Transaction]) -> tuple[bytes, bytes]:
    ev = b"".join(struct.pack("<Q", to_ms(t.event_time))[:6]
                  + struct.pack("<Q", cents_of(t.amount) | (t.latitude is not None) << 39)[:5]
                  + struct.pack("<I", zlib.crc32(t.terminal_id.encode())) + id_hash(t.transaction_id) for t in txs)
    return ev, b"".join(struct.pack("<ii", to_micro(t.latitude), to_micro(t.longitude))
                        for t in txs if t.latitude is not None and t.longitude is not None)


def old_terminal(txs: list[Transaction], marks: list[tuple[Transaction, datetime]]) -> bytes:
    head = struct.pack("<I", len(marks)) + b"".join(
        struct.pack("<Q", to_ms(t.event_time))[:6] + struct.pack("<Q", to_ms(known))[:6] + id_hash(t.transaction_id)
        for t, known in marks)
    return head + b"".join(struct.pack("<Q", to_ms(t.event_time))[:6] + id_hash(t.transaction_id) for t in txs)


def write_legacy(client: redis.Redis | RedisCluster, prefix: str, history: list[Transaction],
                 frauds: dict[str, datetime]) -> None:
    """Layout-1 strings of `history` (in arrival order) and of the frauds known at the given times."""
    for c in dict.fromkeys(t.customer_id for t in history):
        ev, geo = old_customer([t for t in history if t.customer_id == c])
        client.set(f"{prefix}:{{c:{c}}}:ev", ev)
        if geo:
            client.set(f"{prefix}:{{c:{c}}}:geo", geo)
    for m in dict.fromkeys(t.terminal_id for t in history):
        mine = [t for t in history if t.terminal_id == m]
        client.set(f"{prefix}:{{t:{m}}}:ev", old_terminal(mine, [(t, frauds[t.transaction_id]) for t in mine
                                                                 if t.transaction_id in frauds]))


# -- layout 2, from the builders the Lua scripts' callers use -------------------------------------
def new_customer(txs: list[Transaction]) -> tuple[bytes, bytes]:
    ev = b"".join(blobs.customer_record(to_ms(t.event_time), cents_of(t.amount), terminal_hash(t.terminal_id),
                                        id_hash(t.transaction_id), t.latitude is not None) for t in txs)
    return ev, b"".join(blobs.geo_record(to_micro(t.latitude), to_micro(t.longitude))
                        for t in txs if t.latitude is not None and t.longitude is not None)


def new_terminal(txs: list[Transaction], marks: list[tuple[Transaction, datetime]]) -> bytes:
    """An ev3 string: the events sorted by time (stably)."""
    return (struct.pack("<I", len(marks))
            + b"".join(terminal_blobs.fraud_mark(to_ms(t.event_time), to_ms(k), id_hash(t.transaction_id))
                       for t, k in marks)
            + b"".join(terminal_blobs.terminal_record(to_ms(t.event_time), id_hash(t.transaction_id))
                       for t in sorted(txs, key=lambda t: to_ms(t.event_time) // 1000)))


PARIS, LYON = (48.8566, 2.3522), (45.764, 4.8357)
HISTORY = [  # arrival order; sub-second times, some with coordinates, a late one (h6)
    tx("h1", "c1", "m1", 12.34, timedelta(seconds=0.5), PARIS),
    tx("h2", "c1", "m2", 5.00, DAY + timedelta(seconds=1.999)),
    tx("h3", "c2", "m1", 100.00, DAY + timedelta(hours=2, seconds=0.25), LYON),
    tx("h4", "c1", "m1", 7.77, 2 * DAY + timedelta(seconds=0.999), (48.86, 2.36)),
    tx("h5", "c2", "m2", 3.21, 2 * DAY + timedelta(minutes=30)),
    tx("h6", "c1", "m1", 9.99, timedelta(hours=12, seconds=0.5), (48.85, 2.34)),
]
FRAUDS = {"h4": T0 + 3 * DAY + timedelta(seconds=0.7)}  # h4 was a fraud, known from day 3 on
LATER = [
    tx("n1", "c1", "m1", 20.00, 9 * DAY + timedelta(hours=3), (48.9, 2.4)),
    tx("n2", "c2", "m2", 40.00, 9 * DAY + timedelta(hours=4), (45.7, 4.9)),
    tx("n3", "c1", "m2", 1.50, 9 * DAY + timedelta(hours=5, seconds=0.4)),
    HISTORY[2],  # h3 delivered again
]


def legacy_keys(client: redis.Redis | RedisCluster, prefix: str) -> list[bytes]:
    return sorted(k for pattern in ("ev", "geo") for k in client.scan_iter(match=f"{prefix}:{{[ct]:*}}:{pattern}"))


@pytest.mark.services
def test_converted_state_gives_the_features_of_the_events_seen_before(settings: Settings) -> None:
    store = open_redis_store(settings)
    client, prefix = store.client, settings.redis_key_prefix
    write_legacy(client, prefix, HISTORY, FRAUDS)

    assert migrate_legacy_state(store) == (2, 2)
    c1 = [t for t in HISTORY if t.customer_id == "c1"]
    assert (client.get(store.customer_keys("c1")[0]), client.get(store.customer_keys("c1")[1])) == new_customer(c1)
    assert len(client.get(store.customer_keys("c1")[1])) == 3 * 8  # h1, h4, h6
    m1 = [t for t in HISTORY if t.terminal_id == "m1"]
    assert client.get(store.terminal_key("m1")) == new_terminal(m1, [(HISTORY[3], FRAUDS["h4"])])
    assert client.get(store.terminal_key("m2")) == new_terminal([HISTORY[1], HISTORY[4]], [])
    assert legacy_keys(client, prefix) == []
    assert migrate_legacy_state(store) == (0, 0)  # idempotent

    memory = FeatureEngine(MemoryStore())
    memory.transform(HISTORY)
    memory.apply_labels([Label(transaction_id=i, customer_id="c1", terminal_id="m1", is_fraud=True,
                               event_time=HISTORY[3].event_time, reported_at=known) for i, known in FRAUDS.items()])
    expected = memory.transform(LATER)
    got = FeatureEngine(store).transform(LATER)
    assert got == expected
    n1 = got[0]
    assert n1 is not None and n1["CUSTOMER_ID_NB_TX_30DAY_WINDOW"] == 5  # h1, h2, h4, h6 and itself
    assert n1["TERMINAL_ID_RISK_1DAY_WINDOW"] == 1.0 and n1["terminal_last_is_fraud"] == 1.0  # h4, day 2
    assert n1["customer_distance_from_prev_km"] > 0 and n1["customer_distance_from_home_km"] > 0

    # h3 again: recognised as the same transaction (time, amount and terminal as converted), not appended
    again = store.update_customers([CustomerOp("c2", to_ms(HISTORY[2].event_time), 10_000, terminal_hash("m1"), "h3",
                                               *LYON)])
    assert again[0].duplicate and not again[0].conflict
    assert len(client.get(store.customer_keys("c2")[0])) == 3 * blobs.CUSTOMER_WIDTH  # h3, h5, n2
    assert len(client.get(store.terminal_key("m1"))) == 4 + 12 + 5 * terminal_blobs.TERMINAL_WIDTH  # h1, h3, h4, h6; n1


@pytest.mark.services
def test_strings_a_new_consumer_wrote_first_are_merged(settings: Settings) -> None:
    store = open_redis_store(settings)
    client, prefix = store.client, settings.redis_key_prefix
    a = tx("a", "c1", "m1", 1.00, timedelta(seconds=10.5), PARIS)
    b = tx("b", "c1", "m1", 2.00, timedelta(seconds=20.5), (10.5, 20.5))
    c = tx("c", "c1", "m1", 3.00, timedelta(seconds=30.5), LYON)
    d = tx("d", "c1", "m1", 4.00, timedelta(seconds=40.5), (10.0, -20.0))
    x = tx("x", "c9", "m1", 5.00, timedelta(seconds=5))
    y = tx("y", "c9", "m1", 6.00, timedelta(seconds=6))
    z = tx("z", "c9", "m1", 7.00, timedelta(seconds=7))
    write_legacy(client, prefix, [a, c, b], {})  # b arrived after c
    client.set(f"{prefix}:{{t:m1}}:ev", old_terminal([a, c, b], [(x, T0 + DAY), (y, T0 + 2 * DAY)]))
    # a consumer of the new version saw c (again: its old record and coordinates are dropped) and d,
    # and labels of y (known later than in the old string, whose mark came first and wins) and z
    FeatureEngine(store).transform([c, d])
    store.mark_frauds([FraudMark("m1", "y", to_ms(y.event_time), to_ms(T0 + 3 * DAY)),
                       FraudMark("m1", "z", to_ms(z.event_time), to_ms(T0 + 4 * DAY))])

    assert migrate_legacy_state(store) == (1, 1)
    events, coordinates = store.customer_keys("c1")
    assert (client.get(events), client.get(coordinates)) == new_customer([a, b, c, d])
    assert client.get(store.terminal_key("m1")) == new_terminal([a, b, c, d], [(x, T0 + DAY), (y, T0 + 2 * DAY),
                                                                               (z, T0 + 4 * DAY)])
    assert legacy_keys(client, prefix) == []
    assert migrate_legacy_state(store) == (0, 0)
    # the merged strings are what the scripts read: c and d are duplicates, e sees a, b, c, d before it
    assert [r.duplicate for r in store.update_customers([CustomerOp("c1", to_ms(t.event_time), cents_of(t.amount),
                                                                    terminal_hash("m1"), t.transaction_id, None, None)
                                                         for t in (a, c, d)])] == [True] * 3
    e = tx("e", "c1", "m1", 5.00, timedelta(seconds=50), (11.0, 21.0))
    memory = FeatureEngine(MemoryStore())
    memory.transform([a, b, c, d])
    assert FeatureEngine(store).transform([e]) == memory.transform([e])


@pytest.mark.services
def test_many_entities_in_chunks_then_nothing_left(settings: Settings) -> None:
    store = open_redis_store(settings)
    client, prefix = store.client, settings.redis_key_prefix
    history = [tx(f"t{i}", f"c{i % 23}", f"m{i % 17}", 1 + i % 50, timedelta(minutes=7 * i, seconds=i % 3 / 2),
                  PARIS if i % 4 == 0 else None) for i in range(400)]
    write_legacy(client, prefix, history, {"t5": T0 + 5 * DAY})
    client.set(f"{prefix}b:{{c:c1}}:ev", b"x" * 20)  # another prefix's: left alone
    assert migrate_legacy_state(store, chunk=7) == (23, 17)
    assert legacy_keys(client, prefix) == [] and client.get(f"{prefix}b:{{c:c1}}:ev") == b"x" * 20
    assert migrate_legacy_state(store, chunk=7) == (0, 0)
    for c in ("c0", "c4", "c22"):
        assert (client.get(store.customer_keys(c)[0]), client.get(store.customer_keys(c)[1]) or b"") == new_customer(
            [t for t in history if t.customer_id == c])
    assert client.get(store.terminal_key("m5")) == new_terminal([t for t in history if t.terminal_id == "m5"],
                                                                [(history[5], T0 + 5 * DAY)])


@pytest.mark.services
def test_a_string_that_does_not_fit_its_layout_is_left_and_logged(settings: Settings,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    store = open_redis_store(settings)
    client, prefix = store.client, settings.redis_key_prefix
    write_legacy(client, prefix, HISTORY, FRAUDS)
    broken = {f"{prefix}:{{c:short}}:ev": b"\1" * 19,  # not whole records
              f"{prefix}:{{t:short}}:ev": struct.pack("<I", 2) + b"\0" * 17,  # two marks announced, one there
              f"{prefix}:{{c:nogeo}}:ev": old_customer([tx("g", "nogeo", "m1", 1.0, DAY, PARIS)])[0]}  # no coordinates
    for key, value in broken.items():
        client.set(key, value)
    with caplog.at_level(logging.WARNING, logger="fraudstream.stream.state.migrate_state"):
        assert migrate_legacy_state(store) == (2, 2)
    for key, value in broken.items():
        assert client.get(key) == value
        assert any(key in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records), key
    assert not client.exists(store.customer_keys("short")[0], store.customer_keys("nogeo")[0],
                             store.terminal_key("short"))
    assert client.get(store.terminal_key("m1")) == new_terminal([t for t in HISTORY if t.terminal_id == "m1"],
                                                                [(HISTORY[3], FRAUDS["h4"])])
    assert len(legacy_keys(client, prefix)) == 3


@pytest.mark.services
def test_a_prefix_with_glob_characters_is_matched_literally(settings: Settings) -> None:
    mine, other = f"{settings.redis_key_prefix}*", f"{settings.redis_key_prefix}b"
    client = redis.Redis.from_url(settings.redis_url or "")
    for prefix in (mine, other):
        write_legacy(client, prefix, HISTORY[:1], {})
    assert migrate_legacy_state(RedisStore(client, prefix=mine)) == (1, 1)
    assert client.exists(f"{other}:{{c:c1}}:ev", f"{other}:{{c:c1}}:geo", f"{other}:{{t:m1}}:ev") == 3
    client.close()


@pytest.mark.services
def test_migrate_records_command_converts_and_says_how_many(settings: Settings) -> None:
    store = open_redis_store(settings)
    write_legacy(store.client, settings.redis_key_prefix, HISTORY, FRAUDS)
    env = {"FRAUDSTREAM_REDIS_URL": settings.redis_url or "", "FRAUDSTREAM_REDIS_KEY_PREFIX": settings.redis_key_prefix}
    result = CliRunner().invoke(main, ["migrate-records"], env=env)
    assert result.exit_code == 0, result.output
    assert "converted 2 customers' and 2 terminals' event strings" in result.output
    assert store.client.get(store.terminal_key("m2")) == new_terminal([HISTORY[1], HISTORY[4]], [])
    again = CliRunner().invoke(main, ["migrate-records"], env=env)
    assert again.exit_code == 0 and "converted 0 customers' and 0 terminals'" in again.output, again.output


@pytest.mark.services
def test_converts_on_a_cluster(valkey_cluster: RedisCluster) -> None:  # noqa: F811
    prefix = "fs-migrate-state"
    store = RedisStore(valkey_cluster, prefix=prefix)
    history = [tx(f"t{i}", f"c{i % 9}", f"m{i % 5}", 1 + i, timedelta(minutes=i, seconds=0.5), LYON if i % 2 else None)
               for i in range(60)]
    write_legacy(valkey_cluster, prefix, history, {"t3": T0 + DAY})
    store.update_terminals([TerminalOp("m0", to_ms(T0 + DAY), "new")])  # a new string to merge with
    assert migrate_legacy_state(store, chunk=4) == (9, 5)
    assert migrate_legacy_state(store) == (0, 0)
    for c in ("c0", "c1", "c8"):
        assert (valkey_cluster.get(store.customer_keys(c)[0]), valkey_cluster.get(store.customer_keys(c)[1])) == \
            new_customer([t for t in history if t.customer_id == c])
    m0 = [t for t in history if t.terminal_id == "m0"] + [tx("new", "c0", "m0", 1.0, DAY)]
    assert valkey_cluster.get(store.terminal_key("m0")) == new_terminal(m0, [])
    assert valkey_cluster.get(store.terminal_key("m3")) == new_terminal(
        [t for t in history if t.terminal_id == "m3"], [(history[3], T0 + DAY)])
    assert legacy_keys(valkey_cluster, prefix) == []


@pytest.mark.services
def test_a_consumer_on_unconverted_strings_warns_once(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    """A new version started on layout-1 strings (migrate-records forgotten) says so with its first
    batch, once; a store without them says nothing."""
    store = open_redis_store(settings)
    write_legacy(store.client, settings.redis_key_prefix, HISTORY, FRAUDS)
    customers = list(dict.fromkeys(t.customer_id for t in HISTORY))
    engine = FeatureEngine(store)
    with caplog.at_level(logging.WARNING, logger="fraudstream.stream.state.redis_store"):
        engine.transform([tx("n1", customers[0], "m1", 1.0, 40 * DAY), tx("n2", "someone-new", "m1", 1.0, 40 * DAY)])
        engine.transform([tx("n3", customers[0], "m1", 1.0, 41 * DAY)])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and "1 of the first 2 customers" in warnings[0]
    assert "1 of the first 1 terminals" in warnings[1] and ":{t:<id>}:ev2 or " in warnings[1]
    assert all("fraudstream migrate-records" in w for w in warnings)
    caplog.clear()
    fresh = open_redis_store(settings.model_copy(update={"redis_key_prefix": settings.redis_key_prefix + "-fresh"}))
    with caplog.at_level(logging.WARNING, logger="fraudstream.stream.state.redis_store"):
        FeatureEngine(fresh).transform([tx("n1", customers[0], "m1", 1.0, 40 * DAY)])
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]
