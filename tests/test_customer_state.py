"""Busy customers: their older events counted by binary search (`busy_customers`) give exactly the
aggregates of counting every (op, event) pair, on random layouts and through Redis."""

from __future__ import annotations

import logging
import random
from datetime import timedelta

import numpy as np
import pytest

from fraudstream.config import Settings
from fraudstream.models.events import Transaction
from fraudstream.stream.features import FeatureEngine
from fraudstream.stream.state import MemoryStore, blobs, busy_customers, memory_customers, open_redis_store, windows_for
from fraudstream.stream.state.base import CustomerOp, Windows
from fraudstream.stream.state.blobs import CustomerEvents, CustomerWindows
from tests.test_terminal_state import T0, arrival_order, delivered


def random_batch(rng: random.Random) -> dict:
    """Several customers' strings as one array (arrival order, some late, equal seconds, some with
    coordinates) and a batch's ops on them: new ones at each string's end, some redeliveries of
    older records, a customer's ops in any order."""
    t, cents, term, flag, start, own = [], [], [], [], [], []
    big = rng.random() < 0.1
    for _ in range(rng.randint(1, 5)):
        first, size = len(t), rng.randint(1, 120)
        for k in range(size):
            t.append(1_000 * max(0, 50_000 + k * rng.choice([1, 30, 600]) - rng.choice([0, 0, 0, 2_000, 40_000])))
            cents.append(rng.choice([1, 250, 99_999, 2 ** 38 if big else 7]))
            term.append(rng.randrange(6))
            flag.append(rng.random() < 0.5)
        new = rng.randint(1, min(size, 15))
        mine = list(range(first + size - new, first + size))
        mine += [rng.randrange(first, first + size) for _ in range(rng.randint(0, 2))]  # redeliveries
        rng.shuffle(mine)
        start += [first] * len(mine)
        own += mine
    ev = CustomerEvents(np.array(t, dtype=np.int64), np.array(cents, dtype=np.int64), np.array(term, dtype=np.int64),
                        np.array(flag))
    counted = np.cumsum(ev.flag) - ev.flag  # coordinates rows in record order (one customer after the other)
    lat = np.array([rng.randrange(-90_000_000, 90_000_000) for _ in range(int(ev.flag.sum()))], dtype=np.int64)
    lon = np.array([rng.randrange(-180_000_000, 180_000_000) for _ in range(len(lat))], dtype=np.int64)
    need = ev.flag[np.array(own)]  # as the store asks: for the ops with coordinates
    if rng.random() < 0.5:  # windows that end exactly on some records' times
        seconds = sorted({abs(a - b) // 1_000 for a, b in zip(t, t[1:])} - {0}) or [1]
        widths = sorted(rng.choice(seconds) for _ in range(5))[::-1]
    else:
        widths = sorted(rng.sample(range(1, 60_000), 5), reverse=rng.random() < 0.9)  # nested, or not
    return dict(ev=ev, geo=(lat, lon), start=np.array(start), own=np.array(own),
                w=CustomerWindows(*(1_000 * s for s in widths)), geo_index=counted, need_coordinates=need)


@pytest.mark.parametrize("seed", range(40))
def test_older_events_by_binary_search_equal_the_pairs(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(25):
        batch = random_batch(rng)
        pairs = blobs.customer_aggregates(**batch, split_pairs=10 ** 12)
        assert blobs.customer_aggregates(**batch, split_pairs=0) == pairs
        assert blobs.customer_aggregates(**batch) == pairs  # the default: some split, most not


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("chunk", [1, 2, 5])
def test_chunks_of_a_customers_ops_equal_the_pairs(seed: int, chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A split customer's ops cut into chunks (each pairing its ops with the batch's records from the
    chunk's first own record on) give the aggregates of the pairs too."""
    rng = random.Random(1_000 + seed)
    chunked = 0
    for _ in range(25):
        batch = random_batch(rng)
        monkeypatch.setattr(busy_customers, "CHUNK_OPS", 10 ** 9)
        pairs = blobs.customer_aggregates(**batch, split_pairs=10 ** 12)
        monkeypatch.setattr(busy_customers, "CHUNK_OPS", chunk)
        split = busy_customers.split_points(batch["start"], batch["own"], 10 ** 12)
        chunked += len(np.unique(split)) > len(np.unique(batch["start"]))
        assert blobs.customer_aggregates(**batch, split_pairs=10 ** 12) == pairs  # chunks, the first one paired
        assert blobs.customer_aggregates(**batch, split_pairs=0) == pairs  # chunks, every one split
    assert chunked  # some customer of these batches had more than one chunk


def test_a_split_customers_ops_are_chunked_in_the_order_of_their_records() -> None:
    start = np.array([0, 0, 0, 0, 0, 50])
    own = np.array([13, 10, 12, 11, 14, 51])  # in the batch's order; a redelivery may own any record
    assert busy_customers.split_points(start, own, 0, chunk=2).tolist() == [12, 10, 12, 10, 14, 51]
    assert busy_customers.split_points(start, own, 0, chunk=5).tolist() == [10, 10, 10, 10, 10, 51]
    assert busy_customers.split_points(start, own, 10 ** 6, chunk=5).tolist() == [0, 0, 0, 0, 0, 50]  # not split
    assert busy_customers.split_points(start, own, 10 ** 6, chunk=2).tolist() == [12, 0, 12, 0, 14, 50]  # chunked
    # a transaction delivered again owns an old record: a chunk of its own, not one whose ops pair with all since
    redelivered = np.array([0, *range(1_000, 1_010)])
    assert busy_customers.split_points(np.zeros(11, dtype=np.int64), redelivered, 0, chunk=4).tolist() == \
        [0, 1_000, 1_000, 1_000, 1_000, 1_004, 1_004, 1_004, 1_004, 1_008, 1_008]


def test_only_the_coordinates_in_the_windows_are_looked_up() -> None:
    """Coordinates of records outside every op's 30 days are not read, split or not (a short
    coordinates string made the split raise where the pairs did not)."""
    day = 86_400_000
    ev = CustomerEvents(np.array([0, 1_000, 40 * day]), np.array([100, 200, 300]), np.array([1, 2, 3]),
                        np.array([True, True, True]))
    batch = dict(ev=ev, geo=(np.array([10]), np.array([20])), start=np.array([0]), own=np.array([2]),
                 w=CustomerWindows(30 * day, 7 * day, day, day // 24, day // 144), geo_index=np.array([0, 1, 2]),
                 need_coordinates=np.array([True]))
    assert blobs.customer_aggregates(**batch, split_pairs=0) == blobs.customer_aggregates(**batch, split_pairs=10 ** 12)


def test_only_customers_whose_pairs_would_be_many_are_split() -> None:
    start = np.array([0, 0, 0, 50, 60])
    own = np.array([47, 48, 49, 59, 61])
    # the first customer saves 3 * 47 pairs, the second 1 * 9, the third 1 * 1
    assert busy_customers.split_points(start, own, 100).tolist() == [47, 47, 47, 50, 60]
    assert busy_customers.split_points(start, own, 5).tolist() == [47, 47, 47, 59, 60]
    assert busy_customers.split_points(start, own, 0).tolist() == [47, 47, 47, 59, 61]


@pytest.mark.services
@pytest.mark.parametrize("seed", [1, 2])
def test_memory_and_redis_agree_on_a_busy_customer(settings: Settings, seed: int,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Most transactions on one card, in bursts of equal seconds, some with coordinates, some late,
    some twice in a batch or delivered again; every customer with older events split, its ops in
    chunks."""
    monkeypatch.setattr(busy_customers, "SPLIT_PAIRS", 0)
    monkeypatch.setattr(busy_customers, "CHUNK_OPS", 7)  # the card's ops of a batch in chunks
    rng = random.Random(seed)
    stream = []
    for i in range(1_200):
        step = rng.choice([1, 1, 60, 3600])
        second = rng.randrange(36 * 86_400) // step * step
        coordinates = {"latitude": rng.uniform(-60, 60), "longitude": rng.uniform(-170, 170)} if rng.random() < 0.4 else {}
        stream.append(Transaction(transaction_id=f"t{i}", customer_id="busy" if rng.random() < 0.8 else f"c{i % 5}",
                                  terminal_id=f"m{rng.randrange(25)}", amount=rng.choice([0.01, 1.5, 20.0, 3_000.0]),
                                  event_time=T0 + timedelta(seconds=second), **coordinates))
    arrivals = arrival_order(rng, sorted(stream, key=lambda t: t.event_time))
    settings = settings.model_copy(update={"allowed_lateness": timedelta(days=13)})
    memory = FeatureEngine(MemoryStore(windows_for(settings)))
    redis_engine = FeatureEngine(open_redis_store(settings))
    compared = 0
    for batch in delivered(rng, arrivals, [1, 5, 40, 150]):
        expected = memory.transform(batch)
        assert redis_engine.transform(batch) == expected
        compared += len(batch)
    assert compared > len(arrivals)
    busy = [x for x, t in zip(expected, batch) if x is not None and t.customer_id == "busy"]
    assert busy and all(x["CUSTOMER_ID_NB_TX_30DAY_WINDOW"] > 100 for x in busy)


@pytest.mark.parametrize("seed", range(10))
def test_an_indexed_history_gives_the_aggregates_of_a_plain_one(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A card's events, most in time order, some late, some at equal times, trimmed now and then:
    every event's aggregates (distinct terminals of the day by the terminals' newest times for the
    newest event) are those the slices and scans give, and so are an earlier event's as it was."""
    day = 86_400_000
    windows = memory_customers.nested_windows(Windows())
    histories = {}
    for indexed_from in (1, 10 ** 9):
        monkeypatch.setattr(memory_customers, "INDEXED_FROM", indexed_from)
        history, rows, t = memory_customers.CustomerHistory(), [], 0
        ops_rng = random.Random(seed)
        for i in range(600):
            t += ops_rng.choice([0, 1_000, 600_000, 3 * 3_600_000])
            late = ops_rng.random() < 0.1
            op = CustomerOp("c1", max(0, t - (ops_rng.randrange(2 * day) if late else 0)), ops_rng.randrange(1, 10_000),
                            ops_rng.randrange(12), f"t{i}", None, None)
            p = history.insert(op)
            rows.append(memory_customers.aggregates(history, p, windows))
            if ops_rng.random() < 0.05:
                history.trim(ops_rng.choice([day, 3 * day, 30 * day]))
            if ops_rng.random() < 0.05:  # an earlier event, as it was when it arrived
                view, q = history.as_of(ops_rng.randrange(len(history.times)))
                rows.append(memory_customers.aggregates(view, q, windows))
        histories[indexed_from] = (rows, history)
    (indexed, history), (plain, _) = histories[1], histories[10 ** 9]
    assert history.sums is not None and indexed == plain
    assert history.newest == sorted(times[-1] for times in history.by_terminal.values())
    assert max(row[11] for row in plain) > 5  # distinct terminals of a day: several


@pytest.mark.services
@pytest.mark.parametrize("indexed_from", [memory_customers.INDEXED_FROM, 1])
def test_a_trimmed_string_keeps_its_coordinates_in_step(settings: Settings, indexed_from: int,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """80 days of a card, half its transactions with coordinates, some late: the events older than
    the retention are cut with their coordinates, and both stores give the same features throughout
    (the memory store's customer indexed from its first event, or not at all)."""
    monkeypatch.setattr(memory_customers, "INDEXED_FROM", indexed_from)
    rng = random.Random(7)
    stream = [Transaction(transaction_id=f"t{i}", customer_id="c1", terminal_id=f"m{i % 7}", amount=5.0 + i % 13,
                          event_time=T0 + timedelta(hours=8 * i + rng.random()),
                          **({"latitude": 40 + rng.random(), "longitude": -3 + rng.random()} if rng.random() < 0.5 else {}))
              for i in range(240)]
    for i in range(5, len(stream) - 3, 9):  # some a day late, within the allowed lateness
        stream[i], stream[i + 3] = stream[i + 3], stream[i]
    settings = settings.model_copy(update={"allowed_lateness": timedelta(days=2)})
    memory, redis_store = FeatureEngine(MemoryStore(windows_for(settings))), open_redis_store(settings)
    redis_engine = FeatureEngine(redis_store)
    for start in range(0, len(stream), 10):
        batch = stream[start:start + 10]
        assert redis_engine.transform(batch) == memory.transform(batch)
    assert redis_engine.transform(stream[:1]) == memory.transform(stream[:1])  # cut long ago: new again
    events_key, coordinates_key = redis_store.customer_keys("c1")  # type: ignore[attr-defined]
    events = blobs.parse_customer(redis_store.client.get(events_key))  # type: ignore[attr-defined]
    coordinates = redis_store.client.get(coordinates_key)  # type: ignore[attr-defined]
    assert len(events.t) < 120 and len(coordinates) == int(events.flag.sum()) * blobs.GEO_WIDTH


@pytest.mark.services
def test_a_transaction_again_with_coordinates_it_did_not_have(settings: Settings) -> None:
    """A transaction stored without coordinates comes again with them, the same (a duplicate) or
    changed (a conflict), at a customer with no coordinates stored: no coordinates are looked up
    (this batch raised IndexError for ever before), and both stores agree."""
    first = Transaction(transaction_id="t1", customer_id="c1", terminal_id="m1", amount=5.0, event_time=T0)
    again = first.model_copy(update={"latitude": 40.0, "longitude": -3.0})
    changed = again.model_copy(update={"amount": 5.01})
    memory, redis_engine = FeatureEngine(MemoryStore(windows_for(settings))), FeatureEngine(open_redis_store(settings))
    for batch in ([first], [again], [changed], [again, changed]):
        assert redis_engine.transform(batch) == memory.transform(batch)
    assert redis_engine.transform([changed]) == [None]  # a conflict


@pytest.mark.services
@pytest.mark.parametrize("lost", ["coordinates", "events"])
def test_a_key_an_evicting_redis_dropped_costs_coordinates_not_the_consumer(
        settings: Settings, lost: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server with an evicting maxmemory-policy dropped a customer's coordinates string (or its
    events string) while the other stayed: the rows left belong to the newest flagged records, so
    the older ones count without coordinates, as if they had had none. This raised IndexError out of
    the consumer, on the same batch after every restart."""
    from fraudstream.stream.state import redis_entities

    monkeypatch.setattr(redis_entities, "_lost_coordinates", redis_entities.LostCoordinates())  # warns afresh
    rng = random.Random(3)
    stream = [Transaction(transaction_id=f"t{i}", customer_id="c1", terminal_id=f"m{i % 5}", amount=5.0 + i % 11,
                          event_time=T0 + timedelta(hours=5 * i), latitude=40 + rng.random(), longitude=-3 + rng.random())
              for i in range(40)]
    old, new = stream[:20], stream[20:]
    redis_store = open_redis_store(settings)
    redis_engine = FeatureEngine(redis_store)
    redis_engine.transform(old)
    events_key, coordinates_key = redis_store.customer_keys("c1")  # type: ignore[attr-defined]
    redis_store.client.delete(coordinates_key if lost == "coordinates" else events_key)  # type: ignore[attr-defined]
    # the reference: the old transactions without coordinates (lost: coordinates), or not at all (lost: events)
    memory = FeatureEngine(MemoryStore(windows_for(settings)))
    if lost == "coordinates":
        memory.transform([tx.model_copy(update={"latitude": None, "longitude": None}) for tx in old])
    else:
        memory.transform([tx.model_copy(update={"customer_id": "elsewhere"}) for tx in old])  # the terminals only
    with caplog.at_level(logging.WARNING, logger="fraudstream.stream.state.redis_entities"):
        # first a batch of a redelivery alone: its coordinates string comes back empty, and no new
        # record adds a row (the review's case: IndexError)
        assert redis_engine.transform([old[-1]]) == memory.transform([old[-1]])
        for start in range(0, len(new), 5):
            assert redis_engine.transform(new[start:start + 5]) == memory.transform(new[start:start + 5])
    warned = [r.getMessage() for r in caplog.records if r.name == "fraudstream.stream.state.redis_entities"]
    assert len(warned) == 1 and "events and coordinates of customer c1 in Redis disagree" in warned[0], warned
