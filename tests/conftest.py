"""Shared fixtures: real servers once per session, fresh topics, group and key prefix per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fraudstream.config import Settings
from tests.servers import Endpoints, start_servers

DATA_FILE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fdh_dev.csv.gz"


@pytest.fixture(scope="session")
def servers() -> Iterator[Endpoints]:
    with start_servers() as endpoints:
        yield endpoints


@pytest.fixture
def settings(servers: Endpoints) -> Settings:
    """Settings pointing at the session's servers, with topics, group and Redis prefix of this test only."""
    uid = uuid.uuid4().hex[:10]
    return Settings(
        kafka_bootstrap=servers.kafka_bootstrap,
        redis_url=servers.redis_url,
        topic_transactions=f"tx-{uid}",
        topic_labels=f"labels-{uid}",
        topic_alerts=f"alerts-{uid}",
        topic_dlq=f"tx-dlq-{uid}",
        topic_labels_dlq=f"labels-dlq-{uid}",
        group_id=f"group-{uid}",
        redis_key_prefix=f"fs-{uid}",
        # A shorter group session than the default 6,000 ms: Tansu's joins are shorter with it (a first
        # join took 3.5 s with 6,000, 2.5 s with 3,000), and a member killed with -9 holds the group
        # until its session expires (the next member's join took 11.5 s against 7.5 s; 2026-12-07,
        # kafka-python consumers polling every 500 ms). Every test's consumers join, the reliability
        # tests' after each SIGKILL. 3,000 leaves six heartbeats of 500 ms before a live member of a
        # busy machine is expired. (A test that needs a long join sets 6,000 again: test_rebalance.)
        session_timeout_ms=3000,
        heartbeat_interval_ms=500,
    )


@pytest.fixture
def handbook_csv() -> Path:
    """The handbook's dev data set; tests that need it skip with the reason when it is absent."""
    if not DATA_FILE.exists():
        pytest.skip(f"handbook data not found at {DATA_FILE} (CI has it; see shared/data/README.md)")
    return DATA_FILE
