"""Offset commits without waiting for the answer (`AsyncCommits`), against the real broker: a commit
lands and is confirmed, `settle` waits for it, a refused one is carried by the next, repeated
refusals make commits wait for their answer, a revoked partition is not committed again."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from fraudstream.config import Settings
from fraudstream.kafka_io import ensure_topics, make_consumer
from fraudstream.stream.commits import MAX_REFUSALS, AsyncCommits
from tests.kafka_helpers import produce_raw

pytestmark = pytest.mark.services


@pytest.fixture
def member(settings: Settings) -> Iterator[KafkaConsumer]:
    """A consumer of the transactions topic (two partitions' worth of records) that has joined its group."""
    ensure_topics(settings)
    produce_raw(settings, settings.topic_transactions, ((str(i).encode(), b"{}") for i in range(40)))
    consumer = make_consumer(settings, [settings.topic_transactions])
    deadline = time.monotonic() + 30
    while not consumer.assignment() and time.monotonic() < deadline:
        consumer.poll(timeout_ms=100)
    assert consumer.assignment(), "the group did not form in 30 s"
    yield consumer
    consumer.close(autocommit=False)


def committed(settings: Settings, tp: TopicPartition) -> int | None:
    reader = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=settings.group_id,
                           enable_auto_commit=False)
    try:
        return reader.committed(tp)
    finally:
        reader.close(autocommit=False)


def offsets(tp: TopicPartition, offset: int) -> dict[TopicPartition, OffsetAndMetadata]:
    return {tp: OffsetAndMetadata(offset, "", -1)}


def partitions(consumer: KafkaConsumer) -> list[TopicPartition]:
    return sorted(consumer.assignment(), key=lambda tp: tp.partition)


def confirm_all(commits: AsyncCommits, member: KafkaConsumer) -> None:
    """Poll (the answers arrive there) until every commit is confirmed, for at most 10 s."""
    deadline = time.monotonic() + 10
    while commits.unconfirmed and time.monotonic() < deadline:
        member.poll(timeout_ms=50)
    assert commits.unconfirmed == {}


def refused(commits: AsyncCommits, tp: TopicPartition, offset: int) -> None:
    """As if `offset` of `tp` had been sent and the broker had refused it (its callback's answer)."""
    sent = offsets(tp, offset)
    commits.unconfirmed.update(sent)
    commits._answered(sent, KafkaError("refused"))


def test_a_commit_is_confirmed_in_a_later_poll(settings: Settings, member: KafkaConsumer) -> None:
    commits = AsyncCommits(member)
    tp = partitions(member)[0]
    commits.commit(offsets(tp, 7))
    assert tp in commits.unconfirmed  # sent, not waited for
    confirm_all(commits, member)
    assert committed(settings, tp) == 7


def test_settle_commits_every_unconfirmed_offset_and_waits(settings: Settings, member: KafkaConsumer) -> None:
    commits = AsyncCommits(member)
    tps = partitions(member)
    for i, tp in enumerate(tps):  # as if sent and never answered (or refused)
        commits.unconfirmed.update(offsets(tp, 3 + i))
    commits.settle()
    assert commits.unconfirmed == {}
    assert [committed(settings, tp) for tp in tps] == [3 + i for i in range(len(tps))]


def test_after_a_refused_commit_the_next_one_carries_its_offsets(settings: Settings, member: KafkaConsumer) -> None:
    commits = AsyncCommits(member)
    first, second = partitions(member)[:2]  # topics have 3 partitions
    refused(commits, first, 5)
    assert commits.refusals == 1 and first in commits.unconfirmed
    commits._answered(offsets(second, 1), None)  # then an older commit's late acceptance
    assert commits.refusals == 0 and first in commits.unconfirmed
    commits.commit(offsets(second, 9))  # carries the refused offset of `first` too
    confirm_all(commits, member)
    assert committed(settings, first) == 5
    assert committed(settings, second) == 9
    assert commits.refusals == 0


def test_after_repeated_refusals_a_commit_waits_for_its_answer(settings: Settings, member: KafkaConsumer) -> None:
    commits = AsyncCommits(member)
    first, second = partitions(member)[:2]
    for offset in range(1, MAX_REFUSALS + 1):
        refused(commits, first, offset)
    commits.commit(offsets(second, 4))
    assert commits.unconfirmed == {} and commits.refusals == 0  # answered before `commit` returned
    assert committed(settings, first) == MAX_REFUSALS
    assert committed(settings, second) == 4


def test_a_revoked_partition_is_not_committed_again(settings: Settings, member: KafkaConsumer) -> None:
    commits = AsyncCommits(member)
    first, second = partitions(member)[:2]
    refused(commits, first, 4)  # a resend would carry it...
    commits.forget([first])  # ...but the partition was revoked meanwhile
    commits.commit(offsets(second, 6))
    confirm_all(commits, member)
    assert committed(settings, first) is None
    assert committed(settings, second) == 6
