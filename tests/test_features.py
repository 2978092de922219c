"""Feature correctness: handbook parity, memory == Redis, idempotency, concurrency, lateness."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
import redis

from fraudstream.config import Settings
from fraudstream.models.events import Label, Transaction
from fraudstream.stream.features import FEATURE_NAMES, HANDBOOK_FEATURES, FeatureEngine
from fraudstream.stream.state import MemoryStore, open_redis_store
from fraudstream.stream.state import blobs
from fraudstream.stream.state.redis_store import TRIM_SLACK_MS, RedisStore
from tests.feature_helpers import handbook_reference, load_handbook, run_stream, to_transactions

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def tx(i: str, customer: str, terminal: str, amount: float, minutes: float, **kw: object) -> Transaction:
    return Transaction(transaction_id=i, customer_id=customer, terminal_id=terminal, amount=amount,
                       event_time=T0 + timedelta(minutes=minutes), **kw)


@pytest.mark.data
def test_handbook_parity_on_real_data(handbook_csv: Path) -> None:
    df = load_handbook(handbook_csv, days=45, customer_modulo=10)
    reference = handbook_reference(df)
    txs, frauds = to_transactions(df)
    got = run_stream(FeatureEngine(MemoryStore()), txs, frauds)
    assert len(got) == len(df) > 30_000
    ids = [str(i) for i in reference.index]
    for name in HANDBOOK_FEATURES:
        ours = np.array([got[i][name] for i in ids])
        np.testing.assert_allclose(ours, reference[name].to_numpy(), rtol=0, atol=1e-6, err_msg=name)
    # the windows were exercised: some terminal risk is positive, some 30-day counts are large
    assert reference["TERMINAL_ID_RISK_30DAY_WINDOW"].max() > 0
    assert reference["CUSTOMER_ID_NB_TX_30DAY_WINDOW"].max() >= 30


@pytest.mark.data
@pytest.mark.services
def test_memory_and_redis_give_identical_features(handbook_csv: Path, settings: Settings) -> None:
    df = load_handbook(handbook_csv, days=20, customer_modulo=25)
    txs, frauds = to_transactions(df)
    in_memory = run_stream(FeatureEngine(MemoryStore()), txs, frauds, batch=1)
    in_redis = run_stream(FeatureEngine(open_redis_store(settings)), txs, frauds, batch=250)
    assert in_memory.keys() == in_redis.keys()
    assert all(in_memory[k] == in_redis[k] for k in in_memory)
    assert any(x["TERMINAL_ID_RISK_30DAY_WINDOW"] > 0 for x in in_redis.values())  # labels were marked


@pytest.mark.data
@pytest.mark.services
def test_terminal_risk_does_not_depend_on_when_labels_are_processed(handbook_csv: Path, settings: Settings) -> None:
    """Labels count from their report time on, so applying every label before any transaction (a
    replay whose labels were consumed first) gives the features of applying each when it is due."""
    df = load_handbook(handbook_csv, days=20, customer_modulo=25)
    txs, frauds = to_transactions(df)
    when_due = run_stream(FeatureEngine(MemoryStore()), txs, frauds, batch=1)
    labels = [Label(transaction_id=t.transaction_id, customer_id=t.customer_id, terminal_id=t.terminal_id,
                    is_fraud=frauds[t.transaction_id], event_time=t.event_time,
                    reported_at=t.event_time + timedelta(days=7)) for t in txs]
    for engine in (FeatureEngine(MemoryStore()), FeatureEngine(open_redis_store(settings))):
        engine.apply_labels(labels)  # nothing scored yet: no records, only the fraud marks
        first = {t.transaction_id: x for start in range(0, len(txs), 500)
                 for t, x in zip(txs[start:start + 500], engine.transform(txs[start:start + 500]))}
        assert first == when_due
    assert any(x["TERMINAL_ID_RISK_7DAY_WINDOW"] > 0 for x in when_due.values())


def test_scripted_sequence_by_hand() -> None:
    engine = FeatureEngine(MemoryStore())
    xs = engine.transform([
        tx("a", "c1", "m1", 10.00, 0),
        tx("b", "c1", "m2", 30.00, 30),          # 30 min later, new terminal
        tx("c", "c1", "m1", 200.00, 60 * 25),    # 25 h later: only itself in the 1-day window
        tx("d", "c2", "m1", 5.00, 60 * 25),
    ])
    b, c, d = xs[1], xs[2], xs[3]
    assert b["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == 2 and b["CUSTOMER_ID_AVG_AMOUNT_1DAY_WINDOW"] == 20.0
    assert b["customer_seconds_since_prev_tx"] == 1800.0 and b["customer_nb_tx_1h"] == 2
    assert b["customer_first_use_of_terminal_30d"] == 1.0 and b["customer_nb_terminals_24h"] == 2
    assert c["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == 1 and c["CUSTOMER_ID_AVG_AMOUNT_1DAY_WINDOW"] == 200.0
    assert c["CUSTOMER_ID_NB_TX_7DAY_WINDOW"] == 3 and c["CUSTOMER_ID_AVG_AMOUNT_7DAY_WINDOW"] == 80.0
    assert c["customer_first_use_of_terminal_30d"] == 0.0           # used m1 25 h earlier
    assert c["customer_amount_over_mean_30d"] == 200.0 / 20.0      # previous mean (10 + 30) / 2
    assert c["customer_amount_zscore_30d"] == (200.0 - 20.0) / 10.0  # previous std 10
    assert d["terminal_nb_tx_1h"] == 2 and d["TERMINAL_ID_NB_TX_7DAY_WINDOW"] == 0  # nothing 7+ days old


def test_terminal_risk_counts_only_arrived_labels() -> None:
    engine = FeatureEngine(MemoryStore())
    day = 24 * 60
    first = [tx("f1", "c1", "m1", 50, 0), tx("g1", "c2", "m1", 50, 10)]
    engine.record_scored(first, engine.transform(first), [{}, {}])
    before = engine.transform([tx("p1", "c3", "m1", 5, 7 * day + 20)])[0]
    assert before["TERMINAL_ID_NB_TX_1DAY_WINDOW"] == 2 and before["TERMINAL_ID_RISK_1DAY_WINDOW"] == 0.0
    engine.apply_labels([Label(transaction_id="f1", customer_id="c1", is_fraud=True, event_time=T0,
                               reported_at=T0 + timedelta(days=7))])
    after = engine.transform([tx("p2", "c3", "m1", 5, 7 * day + 30)])[0]
    assert after["TERMINAL_ID_RISK_1DAY_WINDOW"] == 0.5 and after["TERMINAL_ID_RISK_30DAY_WINDOW"] == 0.5


@pytest.mark.services
def test_newest_due_terminal_transactions_by_hand(settings: Settings) -> None:
    """terminal_*_last_3 and friends: the terminal's newest transactions at least 7 days old, and
    their frauds as far as labels have been reported; both stores."""
    day = 24 * 60
    history = [tx("f1", "c1", "m1", 50, 0), tx("g1", "c2", "m1", 50, 10), tx("h1", "c3", "m1", 50, day),
               tx("k1", "c4", "m1", 50, 2 * day)]
    labels = [Label(transaction_id=t.transaction_id, customer_id=t.customer_id, terminal_id="m1",
                    is_fraud=t.transaction_id in ("f1", "h1"), event_time=t.event_time,
                    reported_at=t.event_time + timedelta(days=7)) for t in history]
    queries = [tx("q0", "c9", "m1", 5, 3 * day), tx("q1", "c9", "m1", 5, 7 * day + 5),
               tx("q2", "c9", "m1", 5, 8 * day + 1), tx("q3", "c9", "m1", 5, 9 * day + 1)]
    names = ("terminal_nb_last_3", "terminal_frauds_of_last_3", "terminal_last_is_fraud", "terminal_days_since_fraud")
    expected = [
        (0, 0, 0, 60.0),                # nothing 7 days old yet
        (1, 1, 1, 7 + 5 / day),         # f1, known since day 7
        (3, 2, 1, 7 + 1 / day),         # f1, g1, h1: h1 known since day 8
        (3, 1, 0, 8 + 1 / day),         # g1, h1, k1: the newest (k1) genuine
    ]
    for engine in (FeatureEngine(MemoryStore()), FeatureEngine(open_redis_store(settings))):
        engine.transform(history)
        engine.apply_labels(labels)
        got = [tuple(x[n] for n in names) for x in engine.transform(queries)]
        assert [g[:3] for g in got] == [e[:3] for e in expected]
        assert [g[3] for g in got] == pytest.approx([e[3] for e in expected], abs=1e-9)


def test_late_event_is_placed_in_event_time() -> None:
    engine = FeatureEngine(MemoryStore())
    engine.transform([tx("a", "c1", "m1", 10, 0), tx("c", "c1", "m1", 30, 120)])
    late = engine.transform([tx("b", "c1", "m1", 20, 60)])[0]    # arrives after c, happened before it
    assert late["customer_nb_tx_1h"] == 1 and late["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == 2
    assert late["customer_seconds_since_prev_tx"] == 3600.0
    after = engine.transform([tx("d", "c1", "m1", 40, 121)])[0]
    assert after["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == 4 and after["customer_nb_tx_1h"] == 2


def _dump_all(client: redis.Redis, prefix: str) -> dict[bytes, bytes]:
    return {key: client.dump(key) for key in client.scan_iter(match=f"{prefix}:*", count=1000)}


@pytest.mark.services
def test_redelivery_changes_nothing_and_gets_the_same_features(settings: Settings) -> None:
    store = open_redis_store(settings)
    engine = FeatureEngine(store)
    batch = [tx(f"t{i}", f"c{i % 3}", f"m{i % 4}", 10 + i, i * 13) for i in range(40)]
    first = engine.transform(batch)
    engine.record_scored(batch[:20], first[:20], [{"m": 0.1}] * 20)
    before = _dump_all(store.client, settings.redis_key_prefix)
    again = engine.transform(batch)
    assert _dump_all(store.client, settings.redis_key_prefix) == before
    assert again == first


def test_a_transaction_twice_in_one_batch_is_scored_once_in_both_stores(settings: Settings) -> None:
    """A producer's retry can put a transaction twice in one batch: the later copy is a repeat of the
    first (not to score again: its record is written only after the batch is scored), with its
    features; a copy with another amount is a conflict, as across batches."""
    for store in (MemoryStore(), open_redis_store(settings)):
        engine = FeatureEngine(store)
        batch = [tx(f"t{i}", f"c{i % 3}", f"m{i % 4}", 10 + i, i * 13) for i in range(12)]
        batch[7:7] = [batch[4], batch[5].model_copy(update={"amount": 999.0})]  # right after t6
        features = engine.transform_batch(batch)
        assert features.repeats == {7: 4}
        assert features.conflict == [i == 8 for i in range(14)]
        assert features.to_score() == [i for i in range(14) if i not in (7, 8)]
        np.testing.assert_array_equal(features.features[7], features.features[4])
        assert features.rows()[7] == features.rows()[4]
        later = engine.transform_batch([batch[4]])  # in a later batch, nothing recorded: scored again
        assert later.repeats == {} and later.to_score() == [0]
        np.testing.assert_array_equal(later.features[0], features.features[4])
        # a conflict first, then the copy the state holds (sent again, its record gone): scored, no repeat
        again = engine.transform_batch([batch[4].model_copy(update={"amount": 99.0}), batch[4]])
        assert again.conflict == [True, False] and again.repeats == {} and again.to_score() == [1]
        # the same id for another customer is another transaction: no repeat of it
        other = batch[4].model_copy(update={"customer_id": "c-other"})
        mixed = engine.transform_batch([other, batch[4]])
        assert mixed.repeats == {} and mixed.to_score() == [0, 1]


@pytest.mark.services
def test_concurrent_consumers_sharing_terminals(settings: Settings) -> None:
    day = 24 * 60
    stream = [tx(f"t{i}", f"c{i % 50}", f"m{i % 7}", 1 + i % 90, i * 3.0) for i in range(3000)]
    probes = [tx(f"p{k}", "probe", f"m{k}", 1.0, 3000 * 3.0 + 7 * day + 1 + k) for k in range(7)]

    def run(prefix: str, workers: int) -> list[dict[str, float]]:
        shards = [[t for t in stream if int(t.customer_id[1:]) % workers == w] for w in range(workers)]

        def work(shard: list[Transaction]) -> None:
            engine = FeatureEngine(open_redis_store(settings.model_copy(update={"redis_key_prefix": prefix})))
            for start in range(0, len(shard), 100):
                engine.transform(shard[start:start + 100])

        threads = [threading.Thread(target=work, args=(s,)) for s in shards]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        engine = FeatureEngine(open_redis_store(settings.model_copy(update={"redis_key_prefix": prefix})))
        return engine.transform(probes)

    one = run(settings.redis_key_prefix + "-one", 1)
    two = run(settings.redis_key_prefix + "-two", 2)
    for a, b in zip(one, two):
        assert a["TERMINAL_ID_NB_TX_30DAY_WINDOW"] == b["TERMINAL_ID_NB_TX_30DAY_WINDOW"] > 0
        assert {k: a[k] for k in FEATURE_NAMES if k.startswith("TERMINAL")} == \
               {k: b[k] for k in FEATURE_NAMES if k.startswith("TERMINAL")}


@pytest.mark.services
def test_state_is_trimmed_to_the_retention(settings: Settings) -> None:
    store = open_redis_store(settings)
    engine = FeatureEngine(store)
    engine.transform([tx(f"t{i}", "c1", "m1", 10, i * 24 * 60) for i in range(60)])  # one a day for 60 days
    key = store.customer_keys("c1")[0]
    raw = store.client.get(key)
    assert len(raw) % blobs.CUSTOMER_WIDTH == 0
    times = blobs.parse_customer(raw).t.tolist()
    # cut back to the retention (30 d + 1 h) whenever the oldest is 6 hours past it
    day = 86_400_000
    assert 31 <= len(times) <= 32 and times[-1] - times[0] <= store.windows.customer_retention + TRIM_SLACK_MS
    assert times[-1] == 59 * day + int(T0.timestamp() * 1000)
    assert isinstance(store, RedisStore)


@pytest.mark.services
def test_memory_and_redis_agree_with_coordinates_late_events_and_redelivery(settings: Settings) -> None:
    """Coordinates on some transactions only, equal times, late arrivals and redelivered batches."""
    stream = []
    for i in range(600):
        coords = {"latitude": 40 + (i % 13) * 0.3, "longitude": -3 + (i % 11) * 0.7} if i % 3 else {}
        stream.append(tx(f"t{i}", f"c{i % 9}", f"m{i % 17}", 1 + (i * 31) % 500 + 0.37, (i // 2) * 47.0, **coords))
    order = list(range(len(stream)))
    for i in range(5, len(order) - 3, 10):  # some arrive up to 3 places late (< 1 h of event time)
        order[i], order[i + 3] = order[i + 3], order[i]
    arrivals = [stream[i] for i in order]
    memory, redis_engine = FeatureEngine(MemoryStore()), FeatureEngine(open_redis_store(settings))
    for start in range(0, len(arrivals), 50):
        batch = arrivals[start:start + 50]
        expected = memory.transform(batch)
        assert redis_engine.transform(batch) == expected
        assert redis_engine.transform(batch[:7]) == expected[:7]  # redelivery: same features
    with_coords = [x for x in expected if x is not None and x["has_coordinates"] == 1.0]
    assert with_coords and all(x["customer_distance_from_home_km"] > 0 for x in with_coords[1:])


@pytest.mark.services
def test_the_state_keeps_event_times_to_the_second_in_both_stores(settings: Settings) -> None:
    """Redis keeps 4-byte epoch seconds, and the memory store the same whole seconds: a window,
    the time since the previous transaction and a fraud mark's report time all count whole seconds."""
    ms = 1 / 60_000  # a millisecond in minutes
    day = 24 * 60
    first = tx("a", "c1", "m1", 10, 900 * ms)  # 00:00:00.900
    batch = [first,
             tx("b", "c1", "m1", 20, 1_100 * ms),  # 00:00:01.100: 0.2 s later, 1 s by the state's seconds
             tx("c", "c1", "m2", 30, day + 200 * ms),  # 0.7 s short of a day after "a": a day to the second
             tx("d", "c2", "m1", 40, 7 * day + 950 * ms)]
    memory, store = FeatureEngine(MemoryStore()), open_redis_store(settings)
    redis_engine = FeatureEngine(store)
    expected = memory.transform(batch)
    assert redis_engine.transform(batch) == expected
    b, c = expected[1], expected[2]
    assert b is not None and c is not None
    assert b["customer_seconds_since_prev_tx"] == 1.0
    assert c["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == 2  # "b" and itself: "a" is a day before it to the second
    assert c["customer_seconds_since_prev_tx"] == day * 60 - 1
    # a fraud reported at 7 days 00:00:00.100 counts for "d" at 7 days 00:00:00.950 and for one at .050
    report = T0 + timedelta(days=7, milliseconds=100)
    label = Label(transaction_id="a", customer_id="c1", terminal_id="m1", event_time=first.event_time,
                  is_fraud=True, reported_at=report)
    for engine in (memory, redis_engine):
        engine.apply_labels([label])
    late = [tx("e", "c3", "m1", 50, 7 * day + 50 * ms), tx("f", "c3", "m1", 60, 8 * day)]
    expected = memory.transform(late)
    assert redis_engine.transform(late) == expected
    e, f = expected
    assert e is not None and f is not None
    # "e" is 7 days after "a" to the second, so "a" (and not "b", a second later) is in its delayed
    # window; in milliseconds neither would be, nor would the mark count yet
    assert (e["TERMINAL_ID_NB_TX_7DAY_WINDOW"], e["TERMINAL_ID_RISK_7DAY_WINDOW"]) == (1, 1.0)
    assert (f["TERMINAL_ID_NB_TX_7DAY_WINDOW"], f["TERMINAL_ID_RISK_7DAY_WINDOW"]) == (2, 0.5)
    raw = store.client.get(store.customer_keys("c1")[0])
    assert len(raw) == 3 * blobs.CUSTOMER_WIDTH == 51
    assert blobs.parse_customer(raw).t.tolist() == [(int(T0.timestamp()) + s) * 1000 for s in (0, 1, 86_400)]


@pytest.mark.services
def test_a_terminal_finds_its_events_by_second_and_id_in_both_stores(settings: Settings) -> None:
    """A terminal keeps 4 bytes of an id's hash: its events and their fraud marks are matched by the
    second and that hash in Redis, by the second and the id in memory, and the two agree even when
    two ids share the 4 bytes, or one id comes again at another second (another customer's)."""
    from fraudstream.stream.state.redis_store import id_hash
    assert id_hash("x80488")[:4] == id_hash("x162939")[:4] and id_hash("x80488") != id_hash("x162939")
    memory, redis_engine = FeatureEngine(MemoryStore()), FeatureEngine(open_redis_store(settings))
    first = [tx("x80488", "c1", "m1", 10, 0), tx("x162939", "c2", "m1", 20, 60),
             tx("same", "c3", "m1", 30, 120), tx("same", "c4", "m1", 40, 150)]  # an id again, another customer
    expected = memory.transform(first)
    assert redis_engine.transform(first) == expected
    fraud = Label(transaction_id="x162939", customer_id="c2", terminal_id="m1", event_time=first[1].event_time,
                  is_fraud=True, reported_at=T0 + timedelta(days=1))
    for engine in (memory, redis_engine):
        engine.apply_labels([fraud])
    probe = [tx("p1", "c5", "m1", 50, 8 * 24 * 60), tx("p2", "c5", "m1", 60, 155)]
    expected = memory.transform(probe)
    assert redis_engine.transform(probe) == expected
    p1, p2 = expected
    assert p1 is not None and p2 is not None
    # four events in p1's delayed 7-day window, one of them the fraud (not its 4-byte twin)
    assert (p1["TERMINAL_ID_NB_TX_7DAY_WINDOW"], p1["TERMINAL_ID_RISK_7DAY_WINDOW"]) == (4, 0.25)
    assert p2["terminal_nb_tx_1h"] == 3  # both "same" and itself: the second "same" is not a redelivery


@pytest.mark.services
@pytest.mark.parametrize("size", [42, 12])  # a batch as a matrix (>= MIN_MATRIX_ROWS) and one row at a time
def test_a_reused_id_is_a_conflict_and_changes_no_terminal(settings: Settings, size: int) -> None:
    """In one batch with new transactions, an id used again with another terminal or amount gets no
    features and no terminal event, in Redis as in memory."""
    store = open_redis_store(settings)
    memory, redis_engine = FeatureEngine(MemoryStore()), FeatureEngine(store)
    first = [tx(f"t{i}", f"c{i % 3}", f"m{i % 4}", 10 + i, i * 13) for i in range(40)]
    assert redis_engine.transform(first) == memory.transform(first)
    reused = [tx("t1", "c1", "m-only-here", 11, 13), tx("t2", "c2", "m2", 99, 26)]  # other terminal; other amount
    fresh = [tx(f"n{i}", f"c{i % 3}", f"m{i % 4}", 5 + i, 600 + i) for i in range(size - 2)]
    batch = fresh[:size // 2] + reused + fresh[size // 2:]
    expected = memory.transform(batch)
    assert expected[size // 2] is None and expected[size // 2 + 1] is None
    assert all(x is not None for i, x in enumerate(expected) if i not in (size // 2, size // 2 + 1))
    assert redis_engine.transform(batch) == expected
    assert not store.client.exists(store.terminal_key("m-only-here"))
