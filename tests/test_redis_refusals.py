"""A Redis that may evict the consumer's keys is named at the start; one that refuses writes for a
while (full under noeviction) is waited for, as an outage is, not a reason to stop the consumer."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis

from fraudstream.config import Settings
from fraudstream.kafka_io import ensure_topics
from fraudstream.stream.app import scoring_consumer
from tests.test_pipeline import publish, scripted_transactions


@contextmanager
def server_config(settings: Settings, **values: str) -> Iterator[redis.Redis]:
    """The test server's configuration changed for the block, then put back."""
    client = redis.Redis.from_url(settings.redis_url)
    before = {name: client.config_get(name)[name] for name in values}
    try:
        for name, value in values.items():
            client.config_set(name, value)
        yield client
    finally:
        for name, value in before.items():
            client.config_set(name, value)
        client.close()


@pytest.mark.services
def test_an_evicting_policy_is_named_at_the_start(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    ensure_topics(settings)
    with caplog.at_level(logging.WARNING, logger="fraudstream.stream.state.eviction"):
        with server_config(settings, **{"maxmemory-policy": "allkeys-lru"}), scoring_consumer(settings):
            pass
        evicting = [r.getMessage() for r in caplog.records if r.name == "fraudstream.stream.state.eviction"]
        with scoring_consumer(settings):  # the server as it was: noeviction
            pass
    assert len(evicting) == 1, evicting
    assert "maxmemory-policy allkeys-lru" in evicting[0] and "set maxmemory-policy noeviction" in evicting[0]
    assert len([r for r in caplog.records if r.name == "fraudstream.stream.state.eviction"]) == 1


@pytest.mark.services
def test_a_full_redis_is_waited_for_and_nothing_is_lost(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    """A running consumer whose Redis fills up (maxmemory just above what it holds, noeviction): the
    scripts' writes are refused (OOM) until the limit is raised; the consumer retries meanwhile, the
    wait grows across the retries, then every transaction is scored. (A consumer started against a
    full Redis stops with the error, as the README says.)"""
    ensure_topics(settings)
    txs = scripted_transactions(3000)
    publish(settings, txs)
    client = redis.Redis.from_url(settings.redis_url)
    with caplog.at_level(logging.WARNING, logger="fraudstream.stream.retry"), scoring_consumer(settings) as app:
        used = int(client.info("memory")["used_memory"])
        with server_config(settings, maxmemory=str(used + 200_000), **{"maxmemory-policy": "noeviction"}) as server:
            result: list = []
            runner = threading.Thread(target=lambda: result.append(app.run(max_transactions=len(txs), idle_timeout=60)))
            runner.start()
            deadline = time.monotonic() + 60
            while not any("Redis is full" in r.getMessage() for r in caplog.records) and time.monotonic() < deadline:
                time.sleep(0.2)
            longest = 0.0
            for _ in range(20):  # 4 s of the outage: the wait counts from its start, retry after retry
                longest = max(longest, app.stats.waits.waited_s())
                time.sleep(0.2)
            retries = app.stats.waits.retries
            server.config_set("maxmemory", "0")
            runner.join(timeout=120)
    client.close()
    assert retries >= 3 and longest >= 3.0, (retries, longest)
    assert result and result[0].processed == len(txs) and result[0].dead_lettered == 0
    assert app.stats.waits.since is None  # the wait is over


@pytest.mark.services
def test_consume_prints_its_summary_when_an_error_stops_it(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """An error that is not an outage (here a bug planted in the second batch) stops `consume`: its
    summary of what was done and committed still comes, with the error."""
    from click.testing import CliRunner

    from fraudstream.cli import main
    from fraudstream.stream.consumer import ScoringConsumer
    from tests.consumer_procs import env_for

    ensure_topics(settings)
    publish(settings, scripted_transactions(300))
    process, calls = ScoringConsumer.process, []

    def failing(self, records, prepared=None):  # type: ignore[no-untyped-def]
        calls.append(len(records))
        if len(calls) > 1:
            raise RuntimeError("a planted bug")
        process(self, records, prepared)

    monkeypatch.setattr(ScoringConsumer, "process", failing)
    result = CliRunner().invoke(main, ["consume", "--idle-timeout", "20"], env=env_for(
        settings, FRAUDSTREAM_MAX_POLL_RECORDS="100"))
    assert result.exit_code == 1, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["error"] == "a planted bug" and summary["processed"] == calls[0] > 0, summary


@pytest.mark.services
@pytest.mark.slow
def test_the_lag_keeps_counting_while_redis_is_away(settings: Settings) -> None:
    """Redis pauses every client for 13 s (longer than the consumer's 10 s socket timeout) while
    2,000 transactions are published: the step's retry asks the broker for the lag, which counts
    them, and the wait shows; once Redis is back every transaction is scored."""
    ensure_topics(settings)
    txs = scripted_transactions(2400)
    publish(settings, txs[:400])
    client = redis.Redis.from_url(settings.redis_url)
    with scoring_consumer(settings) as app:
        result: list = []
        runner = threading.Thread(target=lambda: result.append(app.run(max_transactions=len(txs), idle_timeout=60)))
        runner.start()
        deadline = time.monotonic() + 60
        while app.stats.processed < 400 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        lag_before = sum(app.stats.lag.values())
        client.execute_command("CLIENT", "PAUSE", "13000", "ALL")
        publish(settings, txs[400:])
        while app.stats.waits.retries == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.5)
        seen_lag = sum(app.stats.lag.values())
        runner.join(timeout=120)
    client.close()
    assert app.stats.waits.retries > 0
    # the 2,000 published during the pause (1,854-1,916 in three runs), less the last batch of each
    # partition with Tansu, whose ListOffsets answers that batch's base offset (kafka_io's module
    # docstring); the batch that waits counts too (333-1,581 of them: CI saw 558 without it); with the
    # loop's own lag, frozen, it stayed where it was before the pause
    assert lag_before < 100 and seen_lag >= 1600, (lag_before, seen_lag)
    assert result and result[0].processed == len(txs)
