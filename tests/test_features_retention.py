"""Long streams on Redis: trimmed history and large amounts give the same features as memory."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import redis

from fraudstream.config import Settings
from fraudstream.models.events import Transaction
from fraudstream.stream.features import FeatureEngine
from fraudstream.stream.state import MemoryStore
from fraudstream.stream.state import blobs
from fraudstream.stream.state.redis_store import TRIM_SLACK_MS, RedisStore
from tests.feature_helpers import run_stream

T0 = datetime(2018, 4, 1, tzinfo=timezone.utc)


@pytest.mark.services
def test_features_after_months_of_trimming_match_memory(settings: Settings) -> None:
    # 4 customers and 5 terminals, one transaction every 3 hours for 100 days: state is trimmed
    # for 70 days, labels (frauds on terminal m0) arrive 7 days late throughout
    txs = [Transaction(transaction_id=f"t{i}", customer_id=f"c{i % 4}", terminal_id=f"m{i % 5}",
                       amount=round(3 + (i * 71) % 900 + 0.01 * (i % 97), 2), event_time=T0 + timedelta(hours=3 * i))
           for i in range(800)]
    frauds = {tx.transaction_id: tx.terminal_id == "m0" and i % 3 == 0 for i, tx in enumerate(txs)}
    client = redis.Redis.from_url(settings.redis_url or "")
    store = RedisStore(client, prefix=settings.redis_key_prefix)
    in_memory = run_stream(FeatureEngine(MemoryStore()), txs, frauds)
    in_redis = run_stream(FeatureEngine(store), txs, frauds, batch=40)
    assert in_memory == in_redis
    last = in_redis[txs[-1].transaction_id]
    assert last["CUSTOMER_ID_NB_TX_30DAY_WINDOW"] == 60  # 8 a day for 30 days, over 4 customers
    assert any(x["TERMINAL_ID_RISK_30DAY_WINDOW"] > 0 for x in in_redis.values())
    stored = blobs.parse_customer(client.get(store.customer_keys("c0")[0]))  # 100 days streamed, 30 kept
    assert stored.t[-1] - stored.t[0] <= store.windows.customer_retention + TRIM_SLACK_MS
    assert len(stored.t) < 200 // 1.5
    client.close()


@pytest.mark.services
def test_large_amounts_give_exact_window_sums(settings: Settings) -> None:
    # squared cents of ~50,000.00 are ~2.5e13, summed over 60 transactions in the 30-day window;
    # batches of 25 also cut the stored history in the middle of a batch
    txs = [Transaction(transaction_id=f"t{i}", customer_id="whale", terminal_id=f"m{i % 3}",
                       amount=40_000 + (i * 7919) % 20_000 + 0.37, event_time=T0 + timedelta(hours=12 * i))
           for i in range(300)]
    client = redis.Redis.from_url(settings.redis_url or "")
    store = RedisStore(client, prefix=settings.redis_key_prefix)
    in_memory = FeatureEngine(MemoryStore()).transform(txs)
    in_redis = [x for start in range(0, 300, 25) for x in FeatureEngine(store).transform(txs[start:start + 25])]
    assert in_memory == in_redis
    last = in_redis[-1]
    previous = [t.amount for t in txs[-60:-1]]  # the 59 before it in its 30-day window
    mean = sum(previous) / len(previous)
    std = (sum((a - mean) ** 2 for a in previous) / len(previous)) ** 0.5
    assert abs(last["customer_amount_zscore_30d"] - (txs[-1].amount - mean) / std) < 1e-9
    client.close()
