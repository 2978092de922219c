"""Dead letters sent back to their source topic (`fraudstream dead-letters --redrive`), against the
real broker and Redis: labels that came before their transactions are learned once those are scored."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from click.testing import CliRunner

from fraudstream import constants
from fraudstream.cli import main
from fraudstream.config import Settings
from fraudstream.kafka_io import ensure_topics
from fraudstream.models.events import Label
from fraudstream.stream.app import scoring_consumer
from fraudstream.stream.redrive import redrive
from tests.consumer_procs import run_until_committed
from tests.kafka_helpers import committed_and_end, produce_raw, read_topic
from tests.test_cli_pipeline import run_cli
from tests.test_pipeline import publish, scripted_transactions


def _labels(txs: list) -> list[Label]:
    return [Label(transaction_id=tx.transaction_id, customer_id=tx.customer_id, terminal_id=tx.terminal_id,
                  is_fraud=tx.amount >= 900, event_time=tx.event_time, reported_at=tx.event_time + timedelta(days=7))
            for tx in txs]


@pytest.mark.services
def test_labels_before_their_transactions_are_learned_once_redriven(settings: Settings) -> None:
    """Labels whose transactions nobody had scored are dead-lettered as `unknown_transaction`; once
    the transactions are scored, a redrive of that reason sends them back, as they were (their own
    headers kept, one more naming the dead letter), and the consumer learns each once. Dead letters
    of other reasons stay; a second redrive sends nothing again; a redrive without a reason is refused."""
    ensure_topics(settings)
    txs = scripted_transactions(120)
    early = _labels(txs[:80])
    produce_raw(settings, settings.topic_labels, ((lb.customer_id.encode(), lb.to_json_bytes()) for lb in early),
                headers=[("trace", b"t-9")])
    produce_raw(settings, settings.topic_labels, [(b"c1", b"not json")])
    with scoring_consumer(settings) as app:
        first = run_until_committed(app, settings)
    assert (first.labels_learned, first.labels_dead_lettered) == (0, 81)

    publish(settings, txs)  # the transactions, late
    with scoring_consumer(settings) as app:
        scored = app.run(max_transactions=len(txs), idle_timeout=20)
    assert scored.processed == len(txs) and scored.labels_learned == 0

    refused = CliRunner().invoke(main, ["dead-letters", "--labels", "--redrive"])
    assert refused.exit_code == 2 and "--redrive needs --reason" in refused.output, refused.output

    sent = run_cli(settings, "dead-letters", "--labels", "--redrive", "--reason", "unknown_transaction", timeout=90)
    assert sent.returncode == 0, sent.stderr[-2000:]
    lines = sent.stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    assert summary["redriven"] == 80 and summary["to"] == {settings.topic_labels: 80}, summary
    assert summary["other_reasons"] == {"invalid_json": 1} and summary["read"] == 81
    assert len(lines) == 81 and all(line.startswith(f"-> {settings.topic_labels}: ") for line in lines[:-1])

    back = [r for r in read_topic(settings, settings.topic_labels, expect=len(early) + 1 + 80)
            if constants.REDRIVEN_FROM_HEADER in dict(r.headers)]
    assert len(back) == 80
    assert sorted(r.value for r in back) == sorted(lb.to_json_bytes() for lb in early)  # byte for byte
    assert {r.key for r in back} == {lb.customer_id.encode() for lb in early}
    headers = [dict(r.headers) for r in back]
    assert all(h["trace"] == b"t-9" and constants.DLQ_HEADER_REASON not in h for h in headers)
    assert sorted(h[constants.REDRIVEN_FROM_HEADER].decode() for h in headers) == sorted(
        f"{r.topic}[{r.partition}]@{r.offset}" for r in read_topic(settings, settings.topic_labels_dlq, expect=81)
        if dict(r.headers)[constants.DLQ_HEADER_REASON] == b"unknown_transaction")

    with scoring_consumer(settings) as app:
        learned = run_until_committed(app, settings)
        assert app.scorer.champion.labels_learned == 80
    assert (learned.labels_learned, learned.labels_dead_lettered) == (80, 0)
    committed, ends = committed_and_end(settings, settings.topic_labels)
    assert committed == ends

    again = redrive(settings, settings.topic_labels_dlq, "unknown_transaction")
    assert (again.redriven, again.read) == (0, 0)  # each dead letter once: the group went on after the first run


@pytest.mark.services
def test_a_redriven_record_that_fails_again_is_dead_lettered_again_and_waits_for_the_next_run(
        settings: Settings) -> None:
    """A run stops at the end the dead-letter topic had when it began: a label still unknown goes back,
    is dead-lettered again (naming where it was redriven from), and the next run sends it once more."""
    ensure_topics(settings)
    lost = _labels(scripted_transactions(3))  # transactions that never come
    produce_raw(settings, settings.topic_labels, ((lb.customer_id.encode(), lb.to_json_bytes()) for lb in lost))
    with scoring_consumer(settings) as app:
        assert run_until_committed(app, settings).labels_dead_lettered == 3

    stats = redrive(settings, settings.topic_labels_dlq, "unknown_transaction")
    assert (stats.redriven, stats.read) == (3, 3)
    with scoring_consumer(settings) as app:
        assert run_until_committed(app, settings).labels_dead_lettered == 3
    dead = read_topic(settings, settings.topic_labels_dlq, expect=6)
    assert [constants.REDRIVEN_FROM_HEADER in dict(r.headers) for r in sorted(dead, key=lambda r: r.timestamp)] == \
        [False] * 3 + [True] * 3

    limited = redrive(settings, settings.topic_labels_dlq, "unknown_transaction", max_records=2)
    rest = redrive(settings, settings.topic_labels_dlq, "unknown_transaction")
    assert (limited.redriven, rest.redriven) == (2, 1)  # the second goes on after the first
    assert (limited.stopped, rest.stopped) == (True, False)
    # a misspelt reason finds nothing and keeps no offsets: tried again, it reads the same and says so again
    typos = [redrive(settings, settings.topic_labels_dlq, "unknown_transactions") for _ in range(2)]
    assert [(t.redriven, t.read) for t in typos] == [(0, 6), (0, 6)]  # all six, each time


@pytest.mark.services
def test_a_batch_the_broker_did_not_acknowledge_is_not_marked_as_sent_back(settings: Settings,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Offsets are committed only after the sends are acknowledged: a broker that stops answering
    between the two (a broker of the test's own, paused) fails the run with `ServiceError`, and the
    next run sends every dead letter. One naming a topic that does not exist is not sent, and that
    topic is not created."""
    from fraudstream.stream import redrive as redriving

    from fraudstream.errors import ServiceError
    from fraudstream.kafka_io import make_consumer
    from tests.kafka_helpers import PausedBroker

    monkeypatch.setattr(redriving, "SEND_TIMEOUT_S", 2.0)
    with PausedBroker(settings) as broker:
        own = broker.settings
        ensure_topics(own, [own.topic_labels, own.topic_labels_dlq])
        dead = [(constants.DLQ_HEADER_REASON, b"unknown_transaction"), (constants.DLQ_HEADER_PARTITION, b"0")]
        produce_raw(own, own.topic_labels_dlq, [(b"c1", b'{"n": %d}' % i) for i in range(5)],
                    headers=dead + [(constants.DLQ_HEADER_TOPIC, own.topic_labels.encode())])
        produce_raw(own, own.topic_labels_dlq, [(b"c2", b'{"n": 9}')],
                    headers=dead + [(constants.DLQ_HEADER_TOPIC, b"ghost-topic")])
        acknowledge = redriving._acknowledge

        def paused_first(producer, sent):  # type: ignore[no-untyped-def]
            broker.pause_after(0.0)
            time.sleep(0.2)
            acknowledge(producer, sent)

        monkeypatch.setattr(redriving, "_acknowledge", paused_first)
        with pytest.raises(ServiceError, match="could not send dead letters back"):
            redriving.redrive(own, own.topic_labels_dlq, "unknown_transaction")
        broker.resume()
        monkeypatch.setattr(redriving, "_acknowledge", acknowledge)

        stats = redriving.redrive(own, own.topic_labels_dlq, "unknown_transaction")
        assert (stats.redriven, stats.no_source, stats.read) == (5, 1, 6)
        # the first run's sends may still land once the broker answers again: at least once, never none
        values = [r.value for r in read_topic(own, own.topic_labels)]
        assert set(values) == {b'{"n": %d}' % i for i in range(5)} and len(values) in (5, 10)
        consumer = make_consumer(own, group_id=None)
        try:
            assert not consumer.partitions_for_topic("ghost-topic")  # not created by the lookup
        finally:
            consumer.close()


def _dead_letters(settings: Settings, per_partition: dict[int, int], tag: str) -> list[bytes]:
    """Dead letters of `unknown_transaction` from the labels topic, written into the given partitions
    of the labels' dead-letter topic (so many into each); their values."""
    from kafka import KafkaProducer

    headers = [(constants.DLQ_HEADER_REASON, b"unknown_transaction"), (constants.DLQ_HEADER_PARTITION, b"0"),
               (constants.DLQ_HEADER_TOPIC, settings.topic_labels.encode())]
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=5)
    values = []
    try:
        for partition, count in per_partition.items():
            for i in range(count):
                values.append(b'{"%s": "%d-%d"}' % (tag.encode(), partition, i))
                producer.send(settings.topic_labels_dlq, key=b"c1", value=values[-1], partition=partition,
                              headers=headers)
        producer.flush()
    finally:
        producer.close()
    return values


def _committed(settings: Settings, topic: str, reason: str) -> dict[int, int | None]:
    """The offsets the redrive group of `reason` committed in `topic`, by partition."""
    from kafka import KafkaConsumer, TopicPartition

    from fraudstream.stream.redrive import redrive_group

    reader = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False,
                           group_id=redrive_group(settings.group_id, topic, reason))
    try:
        parts = sorted(reader.partitions_for_topic(topic) or [])
        return {p: reader.committed(TopicPartition(topic, p)) for p in parts}
    finally:
        reader.close(autocommit=False)


@pytest.mark.services
def test_a_run_the_broker_stops_answering_stops_short_says_so_and_commits_nothing_more(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """A broker that stops answering once the run has its partitions (a broker of the test's own,
    paused): after the command's wait (2 s here, 30 s as shipped) the run stops short, names the
    partitions left before their end, says stopped in its summary and exits with status 1; it commits nothing,
    and does not claim the topic has no dead letter of the reason. The next run goes on after the
    last one sent."""
    import threading

    from fraudstream.cli import dead_letters as listing
    from fraudstream.stream import redrive as redriving
    from tests.kafka_helpers import PausedBroker
    from tests.consumer_procs import env_for

    monkeypatch.setattr(listing, "END_WAIT_S", 2.0)
    with PausedBroker(settings) as broker:
        own = broker.settings
        dlq = own.topic_labels_dlq
        ensure_topics(own, [own.topic_labels, dlq])
        values = _dead_letters(own, {0: 5}, "n")
        assert redrive(own, dlq, "unknown_transaction", max_records=2).redriven == 2
        make_producer = redriving.make_producer

        def then_silent(*args, **kwargs):  # type: ignore[no-untyped-def]
            producer = make_producer(*args, **kwargs)
            broker.pause()  # the run has its partitions and its producer: from now on, nothing answers
            return producer

        monkeypatch.setattr(redriving, "make_producer", then_silent)
        unstick = threading.Timer(25.0, broker.resume)  # a run that waits for ever fails below, not hangs
        unstick.start()
        started = time.monotonic()
        try:
            result = CliRunner().invoke(main, ["dead-letters", "--labels", "--redrive", "--reason",
                                               "unknown_transaction"], env=env_for(own))
        finally:
            took = time.monotonic() - started
            unstick.cancel()
            broker.resume()
        monkeypatch.setattr(redriving, "make_producer", make_producer)

        assert result.exit_code == 1, result.output  # not complete: a script sees it
        assert 2.0 < took < 15.0, (took, result.output)
        shown = ", ".join(f"{dlq}[{p}]" for p in range(own.topic_partitions))
        assert (f"Warning: stopped short of the end of {shown}: nothing came from the broker for 2 s; "
                "run again to go on") in result.stderr, result.stderr
        assert "has the reason" not in result.stderr  # nothing was read: it cannot say what the topic has
        lines = result.stdout.strip().splitlines()
        summary = json.loads(lines[-1])
        assert len(lines) == 1 and (summary["read"], summary["redriven"], summary["stopped"]) == (0, 0, True), lines
        assert _committed(own, dlq, "unknown_transaction") == {0: 2, **{p: None for p in
                                                                        range(1, own.topic_partitions)}}

        rest = redrive(own, dlq, "unknown_transaction")
        assert (rest.redriven, rest.read, rest.stopped, rest.stopped_short) == (3, 3, False, [])
        assert sorted(r.value for r in read_topic(own, own.topic_labels, expect=5)) == sorted(values)  # each once


@pytest.mark.services
def test_offsets_past_the_end_of_the_dead_letter_topic_are_redriven_from_its_start(settings: Settings) -> None:
    """The redrive group's offsets past the end of the logs (committed by hand here; as after a log
    lost under offsets the broker kept): the next redrive sends the dead letters from each
    partition's start, on Tansu (which answers a fetch from past the end with nothing) as on Apache
    Kafka (OFFSET_OUT_OF_RANGE), and leaves no offset past the end, even of a partition still empty:
    the dead letters that later fill it beyond the old offset are all sent by the run after.
    (A topic deleted and created again is not such a case: Tansu 0.6 with memory storage drops the
    group's offsets of a deleted topic, as Apache Kafka does.)"""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    from fraudstream.stream.redrive import redrive_group

    dlq, reason = settings.topic_labels_dlq, "unknown_transaction"
    ensure_topics(settings, [settings.topic_labels, dlq])
    hand = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False,
                         group_id=redrive_group(settings.group_id, dlq, reason))
    try:
        hand.commit({TopicPartition(dlq, p): OffsetAndMetadata(4, "", -1) for p in range(settings.topic_partitions)})
    finally:
        hand.close(autocommit=False)
    first = _dead_letters(settings, {0: 2}, "first")
    assert _committed(settings, dlq, reason) == {p: 4 for p in range(settings.topic_partitions)}

    again = redrive(settings, dlq, reason)
    assert (again.redriven, again.read, again.stopped, again.stopped_short) == (2, 2, False, [])
    assert _committed(settings, dlq, reason) == {0: 2, **{p: 0 for p in range(1, settings.topic_partitions)}}

    later = _dead_letters(settings, {1: 6}, "later")  # past the old offset 4
    assert redrive(settings, dlq, reason).redriven == 6
    values = [r.value for r in read_topic(settings, settings.topic_labels, expect=8)]
    assert sorted(values) == sorted(first + later)  # each once


@pytest.mark.services
def test_a_listing_the_broker_stops_answering_stops_short_with_status_1(settings: Settings,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """`fraudstream dead-letters` (no --follow) against a broker that stops answering once it has the
    partitions: after the wait (2 s here, 30 s as shipped) it warns which partitions it did not read
    to their end, prints its count, and exits with status 1 (a script sees the listing is not whole)."""
    from fraudstream import kafka_io
    from fraudstream.cli import dead_letters as listing
    from tests.kafka_helpers import PausedBroker
    from tests.consumer_procs import env_for

    monkeypatch.setattr(listing, "END_WAIT_S", 2.0)
    with PausedBroker(settings) as broker:
        own = broker.settings
        ensure_topics(own, [own.topic_labels, own.topic_labels_dlq])
        _dead_letters(own, {0: 3}, "n")
        partitions_of = kafka_io.partitions_of

        def then_silent(*args, **kwargs):  # type: ignore[no-untyped-def]
            parts = partitions_of(*args, **kwargs)
            broker.pause()
            return parts

        monkeypatch.setattr(kafka_io, "partitions_of", then_silent)
        started = time.monotonic()
        try:
            result = CliRunner().invoke(main, ["dead-letters", "--labels"], env=env_for(own))
        finally:
            took = time.monotonic() - started
            broker.resume()
    assert result.exit_code == 1, result.output
    assert 2.0 < took < 15.0, (took, result.output)
    assert "Warning: stopped short of the end of " in result.stderr and "nothing came for 2 s" in result.stderr, \
        result.stderr
    assert result.stdout == "" and "0 dead letters read" in result.stderr, result.output
