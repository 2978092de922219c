"""Terminals' sorted event strings: Redis and the memory store agree on busy terminals (many events
a second, late arrivals, labels before and after their transactions, redeliveries within and across
batches); the strings of arrival order before are migrated sorted; marks are added once."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from fraudstream.config import Settings
from fraudstream.models.events import Label, Transaction
from fraudstream.stream.feature_math import NO_FRAUD_DAYS
from fraudstream.stream.features import FeatureEngine
from fraudstream.stream.state import MemoryStore, open_redis_store, terminal_blobs, windows_for
from fraudstream.stream.state.base import FraudMark, TerminalOp
from fraudstream.stream.state.migrate_state import migrate_legacy_state
from fraudstream.stream.state.redis_store import RedisStore, id_hash

pytestmark = pytest.mark.services

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def tx(i: int, customer: int, terminal: str, seconds: int) -> Transaction:
    return Transaction(transaction_id=f"t{i}", customer_id=f"c{customer}", terminal_id=terminal, amount=1 + i % 97,
                       event_time=T0 + timedelta(seconds=seconds))


def busy_stream(rng: random.Random, size: int) -> list[Transaction]:
    """Over 36 days (no trimming), most at one terminal in bursts of equal seconds."""
    out = []
    for i in range(size):
        second = rng.randrange(36 * 86_400) // rng.choice([1, 1, 60, 3600]) * rng.choice([1, 1, 60, 3600])
        terminal = "busy" if rng.random() < 0.8 else rng.choice(["m1", "m2", "m3"])
        out.append(tx(i, rng.randrange(40), terminal, min(second, 36 * 86_400 - 1)))
    return sorted(out, key=lambda t: t.event_time)


def arrival_order(rng: random.Random, stream: list[Transaction]) -> list[Transaction]:
    """Mostly in time order; some arrive a few places late, some 8 to 12 days late."""
    order = list(stream)
    for i in range(0, len(order) - 5, 7):
        j = i + rng.randrange(1, 5)
        order[i], order[j] = order[j], order[i]
    late = rng.sample(range(len(order)), len(order) // 40)
    moved = [order[i] for i in late]
    order = [t for i, t in enumerate(order) if i not in set(late)]
    for t in moved:
        after = t.event_time + timedelta(days=rng.uniform(8, 12))
        at = next((k for k, u in enumerate(order) if u.event_time > after), len(order))
        order.insert(at, t)
    return order


def delivered(rng: random.Random, arrivals: list[Transaction], sizes: list[int]) -> Iterator[list[Transaction]]:
    """`arrivals` in batches of random `sizes`; some with a transaction twice, some led by part of the
    batch before (a redelivery)."""
    start, previous = 0, []
    while start < len(arrivals):
        batch = arrivals[start:start + rng.choice(sizes)]
        start += len(batch)
        if rng.random() < 0.3:  # a transaction twice in one batch
            batch = batch + [batch[rng.randrange(len(batch))]]
        if previous and rng.random() < 0.2:  # a redelivery of part of the batch before, ahead of this one
            batch = previous[rng.randrange(len(previous)):] + batch
        yield batch
        previous = batch


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_memory_and_redis_agree_on_a_busy_terminal(settings: Settings, seed: int) -> None:
    rng = random.Random(seed)
    stream = busy_stream(rng, 1_500)
    arrivals = arrival_order(rng, stream)
    frauds = rng.sample(stream, 150)
    labels = [Label(transaction_id=t.transaction_id, customer_id=t.customer_id, terminal_id=t.terminal_id,
                    event_time=t.event_time, is_fraud=True,
                    reported_at=t.event_time + timedelta(hours=rng.uniform(0, 12 * 24))) for t in frauds]
    # events up to 12 days late are within the allowed lateness (which the retentions include)
    settings = settings.model_copy(update={"allowed_lateness": timedelta(days=13)})
    memory = FeatureEngine(MemoryStore(windows_for(settings)))
    redis_engine = FeatureEngine(open_redis_store(settings))
    compared = 0
    for batch in delivered(rng, arrivals, [1, 2, 7, 30, 80, 200]):
        expected = memory.transform(batch)
        got = redis_engine.transform(batch)
        for e, g, t in zip(expected, got, batch):
            assert e == g, (t, compared, batch.index(t), len(batch))
        compared += len(batch)
        due = [lb for lb in labels if lb.reported_at <= batch[-1].event_time + timedelta(days=rng.choice([0, 0, 3]))]
        if due:  # some before their transactions arrive (a late one), some long after
            labels = [lb for lb in labels if lb not in due]
            memory.apply_labels(due)
            redis_engine.apply_labels(due)
    assert compared > len(arrivals)
    probe = [tx(10_000 + k, 99, "busy", 36 * 86_400 + k * 3600) for k in range(8)]
    expected = memory.transform(probe)
    assert redis_engine.transform(probe) == expected
    assert all(x is not None and x["TERMINAL_ID_RISK_30DAY_WINDOW"] > 0 for x in expected)


def test_a_terminal_string_of_arrival_order_is_migrated_sorted(settings: Settings) -> None:
    """A terminal's ev2 string as the version before wrote it (events in arrival order) is merged by
    `migrate-records` with the ev3 string a new consumer started meanwhile, sorted by time, and
    gives the features of all those events."""
    store = open_redis_store(settings)
    assert isinstance(store, RedisStore)
    old = [tx(1, 1, "m1", 7_200), tx(2, 2, "m1", 3_600), tx(3, 3, "m1", 3_600), tx(4, 4, "m1", 0)]
    t0 = int(T0.timestamp() * 1000)

    def ms(t: Transaction) -> int:
        return t0 + int((t.event_time - T0).total_seconds() * 1000)

    records = [terminal_blobs.terminal_record(ms(t), id_hash(t.transaction_id)) for t in old]
    mark = terminal_blobs.fraud_mark(t0, t0 + 86_400_000, id_hash("t4"))  # "t4" at T0, known a day later
    base = store.terminal_key("m1").rsplit(":", 1)[0]
    store.client.set(f"{base}:ev2", (1).to_bytes(4, "little") + mark + b"".join(records))
    FeatureEngine(store).transform([tx(5, 5, "m1", 5_000)])  # a new consumer's first event, in ev3
    assert migrate_legacy_state(store) == (0, 1)
    assert not store.client.exists(f"{base}:ev2") and migrate_legacy_state(store) == (0, 0)
    marks, events = terminal_blobs.split_terminal(store.client.get(store.terminal_key("m1")))
    assert marks == mark
    seconds = [int.from_bytes(events[i:i + 4], "little") - t0 // 1000 for i in range(0, len(events), 8)]
    assert seconds == [0, 3_600, 3_600, 5_000, 7_200]
    memory = MemoryStore()
    memory.update_terminals([TerminalOp("m1", ms(t), t.transaction_id) for t in old + [tx(5, 5, "m1", 5_000)]])
    memory.mark_frauds([FraudMark("m1", "t4", t0, t0 + 86_400_000)])
    probe = [tx(6, 6, "m1", 8 * 86_400), tx(7, 6, "m1", 7 * 86_400 + 3_600)]
    expected = FeatureEngine(memory).transform(probe)
    assert FeatureEngine(store).transform(probe) == expected
    assert [x["TERMINAL_ID_NB_TX_1DAY_WINDOW"] for x in expected] == [4, 3]  # type: ignore[index]
    assert expected[0]["TERMINAL_ID_RISK_7DAY_WINDOW"] == 0.2  # type: ignore[index]


def test_fraud_marks_are_added_once_and_keep_the_events(settings: Settings) -> None:
    store = open_redis_store(settings)
    assert isinstance(store, RedisStore)
    engine = FeatureEngine(store)
    engine.transform([tx(1, 1, "m1", 60), tx(2, 2, "m1", 0), tx(3, 3, "m1", 30)])
    before = store.client.get(store.terminal_key("m1"))
    t0 = int(T0.timestamp() * 1000)
    first, again = FraudMark("m1", "t2", t0, t0 + 1000), FraudMark("m1", "t2", t0, t0 + 999_000)
    store.mark_frauds([first, again, FraudMark("m1", "t3", t0 + 30_000, t0 + 2000)])
    store.mark_frauds([again])
    marks, events = terminal_blobs.split_terminal(store.client.get(store.terminal_key("m1")))
    assert events == terminal_blobs.split_terminal(before)[1]
    assert marks == (terminal_blobs.fraud_mark(first.t_ms, first.known_ms, id_hash("t2"))
                     + terminal_blobs.fraud_mark(t0 + 30_000, t0 + 2000, id_hash("t3")))  # the first mark wins
    later = engine.transform([tx(4, 4, "m1", 7 * 86_400 + 60)])[0]
    assert later is not None and later["TERMINAL_ID_RISK_1DAY_WINDOW"] == pytest.approx(2 / 3)


def test_what_an_op_sees_in_a_batch_that_sorts_events_in_among_the_stored(settings: Settings) -> None:
    """Events sorted in among the stored ones: one of an equal second goes after those stored (the
    newest in arrival order is the newest of the second), and one added later in the same call is
    not seen by the ops before it, neither counted nor taken as the newest fraud."""
    day = 86_400
    memory, redis_engine = FeatureEngine(MemoryStore()), FeatureEngine(open_redis_store(settings))

    def both(batch: list[Transaction]) -> list[dict[str, float] | None]:
        expected = memory.transform(batch)
        assert redis_engine.transform(batch) == expected
        return expected

    def label(t: Transaction, known_days: float) -> None:
        lb = Label(transaction_id=t.transaction_id, customer_id=t.customer_id, terminal_id=t.terminal_id,
                   event_time=t.event_time, is_fraud=True, reported_at=t.event_time + timedelta(days=known_days))
        memory.apply_labels([lb])
        redis_engine.apply_labels([lb])

    fraud, tie, late = tx(1, 1, "m1", 100), tx(2, 2, "m1", 100), tx(3, 3, "m1", 50)
    both([fraud, tx(4, 4, "m1", 200)])
    label(fraud, 1)
    both([late, tie])  # `late` sorts before the stored ones, so the call merges; `tie` goes after `fraud`
    probe = both([tx(5, 5, "m1", 7 * day + 150)])[0]
    assert probe is not None
    assert probe["TERMINAL_ID_NB_TX_1DAY_WINDOW"] == 3 and probe["terminal_last_is_fraud"] == 0
    assert probe["terminal_frauds_of_last_3"] == 1

    early = tx(6, 6, "m2", 0)
    label(early, 1)  # its label is processed before the transaction arrives
    seen, _ = both([tx(7, 7, "m2", 8 * day), early])  # `early` comes after the op at 8 days
    assert seen is not None
    assert seen["TERMINAL_ID_NB_TX_30DAY_WINDOW"] == 0 and seen["terminal_days_since_fraud"] == NO_FRAUD_DAYS
    after = both([tx(8, 8, "m2", 8 * day + 60)])[0]
    assert after is not None and after["TERMINAL_ID_RISK_30DAY_WINDOW"] == 1.0
    assert after["terminal_days_since_fraud"] == pytest.approx(8 + 60 / day)


def test_migration_converts_a_flagged_string_and_names_one_it_cannot(settings: Settings,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    """An ev2 string whose header has its top bit set (as one unreleased commit wrote them) is
    converted; a terminal whose ev2 string does not fit is left whole, the warning naming that key."""
    store = open_redis_store(settings)
    assert isinstance(store, RedisStore)
    t0 = int(T0.timestamp() * 1000)
    records = [terminal_blobs.terminal_record(t0 + s * 1000, id_hash(f"t{s}")) for s in (60, 0)]
    flagged = store.terminal_key("flagged").rsplit(":", 1)[0]
    store.client.set(f"{flagged}:ev2", (1 << 31).to_bytes(4, "little") + b"".join(records))
    broken = store.terminal_key("broken").rsplit(":", 1)[0]
    store.client.set(f"{broken}:ev2", b"\0\0\0\0" + records[0] + b"xyz")
    store.client.set(f"{broken}:ev", b"\0\0\0\0")  # layout 1, fits: found by both patterns
    with caplog.at_level(logging.WARNING, logger="fraudstream.stream.state.migrate_state"):
        assert migrate_legacy_state(store) == (0, 1)
    assert store.client.get(store.terminal_key("flagged")) == b"\0\0\0\0" + records[1] + records[0]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith(f"event string {broken}:ev2 cannot be converted")
    assert store.client.exists(f"{broken}:ev2", f"{broken}:ev") == 2 and not store.client.exists(f"{broken}:ev3")
