"""Event time as a real feed stresses it: a transaction dated ahead of the consumer's clock (a
terminal whose clock is wrong, local time written with a `Z`) and the lateness rule."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from fraudstream import constants
from fraudstream.config import Settings
from fraudstream.kafka_io import ensure_topics
from fraudstream.models.events import Transaction
from fraudstream.stream.app import scoring_consumer
from tests.kafka_helpers import produce_raw, read_topic


def publish(settings: Settings, times: list[datetime], first: int) -> None:
    """Transactions of one customer (so one partition) at `times`, ids from `first` on."""
    txs = [Transaction(transaction_id=f"t{first + i}", customer_id="c1", terminal_id="m1", amount=10.0, event_time=t)
           for i, t in enumerate(times)]
    produce_raw(settings, settings.topic_transactions, ((b"c1", tx.to_json_bytes()) for tx in txs))


@pytest.mark.services
def test_a_transaction_dated_ahead_of_the_clock_does_not_make_the_present_too_late(settings: Settings) -> None:
    """A transaction 10 h ahead of now is within the allowed future skew (1 d) and is scored; it must
    not become the partition's newest event time, else every transaction of the present on that
    partition would be dead-lettered as `too_late` for the next 9 hours (and after a restart too)."""
    ensure_topics(settings)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    publish(settings, [now - timedelta(minutes=5), now + timedelta(hours=10), now, now + timedelta(seconds=30)], first=0)
    with scoring_consumer(settings) as app:
        stats = app.run(max_transactions=4, idle_timeout=20)
    assert (stats.processed, stats.dead_lettered) == (4, 0)
    # the rule still holds against the present, also for the next process of the group
    publish(settings, [now - timedelta(hours=2), now + timedelta(minutes=1)], first=4)
    with scoring_consumer(settings) as app:
        stats = app.run(max_transactions=2, idle_timeout=20)
    assert (stats.processed, stats.dead_lettered) == (1, 1)
    dead = read_topic(settings, settings.topic_dlq, expect=1)
    assert [dict(r.headers)[constants.DLQ_HEADER_REASON] for r in dead] == [b"too_late"]


@pytest.mark.services
def test_times_that_are_numbers_are_dead_lettered_as_recorded_files_refuse_them(settings: Settings) -> None:
    """Times are ISO 8601 on the topics as in files: pydantic alone would read 1717236000 (or
    "1717236000", or 1717236000000) as Unix seconds or milliseconds, guessing which by size."""
    ensure_topics(settings)
    good = {"transaction_id": "t0", "customer_id": "c1", "terminal_id": "m1", "amount": 10.0,
            "event_time": "2024-06-01T10:00:00Z"}
    numbers = [1717236060, "1717236120", 1717236180000, 1717236240.5]
    txs = [good] + [{**good, "transaction_id": f"t{i + 1}", "event_time": t} for i, t in enumerate(numbers)]
    produce_raw(settings, settings.topic_transactions, ((b"c1", json.dumps(tx).encode()) for tx in txs))
    label = {"transaction_id": "t0", "customer_id": "c1", "is_fraud": False, "event_time": "2024-06-01T10:00:00Z",
             "reported_at": 1717840800}
    produce_raw(settings, settings.topic_labels, [(b"c1", json.dumps(label).encode())])
    with scoring_consumer(settings) as app:
        stats = app.run(max_transactions=5, idle_timeout=20)
    assert (stats.processed, stats.dead_lettered, stats.labels_dead_lettered) == (1, 4, 1)
    dead = read_topic(settings, settings.topic_dlq, expect=4) + read_topic(settings, settings.topic_labels_dlq, expect=1)
    assert {dict(r.headers)[constants.DLQ_HEADER_REASON] for r in dead} == {b"invalid_fields"}
    assert all(b"must be ISO-8601 text" in dict(r.headers)[constants.DLQ_HEADER_ERROR] for r in dead)


@pytest.mark.services
def test_windows_hold_the_events_after_t_minus_w_up_to_t_in_both_stores(settings: Settings) -> None:
    """As the README says: a window of length w at t holds (t - w, t]; one event exactly 600 s, 1 h or
    86,400 s earlier is out of the 10-minute, 1-hour or 1-day window, events of the same second that
    arrived before are in; the terminal's windows ending 7 days ago hold (t - 7 d - w, t - 7 d]. The
    night and weekend flags are of UTC time (a Friday 22:00 in New York is Saturday 03:00 UTC)."""
    from fraudstream.stream.features import FeatureEngine
    from fraudstream.stream.state import MemoryStore, open_redis_store

    t0 = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)  # a Wednesday

    def at(tid: str, seconds: int, customer: str = "c1") -> Transaction:
        return Transaction(transaction_id=tid, customer_id=customer, terminal_id="m1", amount=10.0,
                           event_time=t0 + timedelta(seconds=seconds))

    txs = [at("a", 0), at("b", 0), at("c", 0), at("d", 600), at("e", 3600), at("f", 86_400),
           at("g", 7 * 86_400, "c2"), at("h", 8 * 86_400, "c3")]
    ny = Transaction.model_validate_json(b'{"transaction_id": "ny", "customer_id": "c4", "terminal_id": "m2", '
                                         b'"amount": 1, "event_time": "2024-03-08T22:00:00-05:00"}')
    for store in (MemoryStore(), open_redis_store(settings)):
        x = dict(zip([tx.transaction_id for tx in [*txs, ny]], FeatureEngine(store).transform([*txs, ny])))
        assert [x[t]["customer_nb_tx_10min"] for t in "abcd"] == [1, 2, 3, 1]  # ties in, 600 s earlier out
        assert x["e"]["customer_nb_tx_1h"] == 2 and x["e"]["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == 5  # d, e: a, b, c out
        assert x["f"]["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == 3  # a, b, c exactly a day earlier: out
        assert x["f"]["customer_seconds_since_prev_tx"] == 82_800
        assert x["g"]["TERMINAL_ID_NB_TX_1DAY_WINDOW"] == 3  # (t0 - 1 d, t0]: a, b, c
        assert x["h"]["TERMINAL_ID_NB_TX_1DAY_WINDOW"] == 3  # (t0, t0 + 1 d]: d, e, f
        assert (x["ny"]["TX_DURING_WEEKEND"], x["ny"]["TX_DURING_NIGHT"]) == (1.0, 1.0)
