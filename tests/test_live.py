"""Live producer against the real broker: counts, keys, simulated or wall-clock event times, labels after the delay."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from kafka.partitioner.default import murmur2

from fraudstream.config import Settings
from fraudstream.kafka_io import ensure_topics
from fraudstream.models.events import Label, Transaction
from fraudstream.producer.live import run_live
from fraudstream.producer.simulator import Simulator, SimulatorConfig
from fraudstream.timeutil import utcnow
from tests.kafka_helpers import read_topic


@pytest.mark.services
def test_run_live_publishes_the_simulation_with_its_event_times_and_delayed_labels(settings: Settings) -> None:
    """The default, simulated clock: the simulator's event times (the same seed, the same stream), each
    label published once a transaction at or after its report time was sent."""
    ensure_topics(settings, [settings.topic_transactions, settings.topic_labels])
    stats = run_live(settings, count=400, rate=2000.0, seed=3, label_delay=timedelta(hours=1))
    assert (stats.transactions, stats.labels, stats.labels_dropped) == (400, 400, 0)
    records = read_topic(settings, settings.topic_transactions, expect=400)
    txs = [Transaction.model_validate_json(r.value) for r in records]
    assert len(txs) == 400 and len({t.transaction_id for t in txs}) == 400
    assert all(r.key == t.customer_id.encode() for r, t in zip(records, txs))
    # the cached partition is the one kafka-python's default partitioner would choose
    assert all(r.partition == (murmur2(r.key) & 0x7FFFFFFF) % settings.topic_partitions for r in records)
    simulated = {rec.transaction.transaction_id: rec.transaction.event_time
                 for rec, _ in zip(Simulator(SimulatorConfig.live_demo(3)).records(), range(400))}
    assert {t.transaction_id: t.event_time for t in txs} == simulated
    span = max(simulated.values()) - min(simulated.values())
    assert span > timedelta(hours=2)  # hours of the simulated world in 0.2 s
    label_records = read_topic(settings, settings.topic_labels, expect=400)
    labels = [Label.model_validate_json(r.value) for r in label_records]
    assert {lab.transaction_id for lab in labels} == {t.transaction_id for t in txs}
    assert all(lab.reported_at - lab.event_time == timedelta(hours=1) for lab in labels)
    assert sum(lab.is_fraud for lab in labels) == stats.frauds > 0
    by_time = sorted(zip((t.event_time for t in txs), (r.timestamp for r in records)))
    checked = 0
    for lab, rec in zip(labels, label_records):
        passed = [ts for event_time, ts in by_time if event_time >= lab.reported_at]
        if passed:  # else published after the last transaction, as simulated time went on
            assert rec.timestamp >= passed[0]  # not before the clock reached its report time
            checked += 1
    assert checked > 200


@pytest.mark.services
def test_run_live_on_the_wall_clock(settings: Settings) -> None:
    ensure_topics(settings, [settings.topic_transactions, settings.topic_labels])
    before = utcnow()
    stats = run_live(settings, count=200, rate=2000.0, seed=3, label_delay=timedelta(milliseconds=700), clock="wall")
    after = utcnow()
    assert (stats.transactions, stats.labels, stats.labels_dropped) == (200, 200, 0)
    txs = [Transaction.model_validate_json(r.value)
           for r in read_topic(settings, settings.topic_transactions, expect=200)]
    assert all(before <= t.event_time <= after for t in txs)
    labels = [Label.model_validate_json(r.value) for r in read_topic(settings, settings.topic_labels, expect=200)]
    assert all(lab.reported_at - lab.event_time == timedelta(milliseconds=700) for lab in labels)
    # a label is sent only once its report time has passed; the run lasts at least the last delay
    assert stats.seconds >= 200 / 2000.0 + 0.7 - 0.05


@pytest.mark.services
def test_run_live_stops_when_asked(settings: Settings) -> None:
    ensure_topics(settings, [settings.topic_transactions, settings.topic_labels])
    stop = threading.Event()
    seen: list[int] = []

    def on_sent(n: int) -> None:
        seen.append(n)
        if n >= 50:
            stop.set()

    stats = run_live(settings, count=None, rate=500.0, seed=3, label_delay=timedelta(days=7), stop=stop,
                     on_sent=on_sent)
    assert 50 <= stats.transactions < 100
    assert stats.labels == 0 and stats.labels_dropped == stats.transactions
    assert seen == sorted(seen) and seen[-1] == stats.transactions
    assert len(read_topic(settings, settings.topic_transactions, expect=stats.transactions)) == stats.transactions


def cli_env(settings: Settings) -> dict[str, str]:
    """Environment that points the CLI at this test's servers and topics."""
    return {"FRAUDSTREAM_KAFKA_BOOTSTRAP": settings.kafka_bootstrap or "",
            "FRAUDSTREAM_TOPIC_TRANSACTIONS": settings.topic_transactions,
            "FRAUDSTREAM_TOPIC_LABELS": settings.topic_labels}


@pytest.mark.services
def test_produce_command(settings: Settings) -> None:
    from click.testing import CliRunner

    from fraudstream.cli import main

    result = CliRunner().invoke(main, ["produce", "--count", "120", "--rate", "1000", "--seed", "5",
                                       "--label-delay", "200ms"], env=cli_env(settings))
    assert result.exit_code == 0, result.output
    assert '"transactions": 120' in result.output and '"labels": 120' in result.output
    assert len(read_topic(settings, settings.topic_transactions, expect=120)) == 120
    assert len(read_topic(settings, settings.topic_labels, expect=120)) == 120


@pytest.mark.services
@pytest.mark.parametrize(("count", "status"), [(None, 0), (1_000_000, 130)])
def test_ctrl_c_ends_produce_with_0_and_a_count_not_reached_with_130(settings: Settings, count: int | None, status: int,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --count Ctrl-C is how produce ends; with it, a script must not take the run for done."""
    import json

    from click.testing import CliRunner

    from fraudstream.cli import main
    from fraudstream.stream import signals
    from tests.test_replay import ctrl_c_after

    monkeypatch.setattr(signals, "stop_on_signals", ctrl_c_after(0.5, signals.stop_on_signals))
    args = ["produce", "--rate", "200", "--label-delay", "1h"] + ([] if count is None else ["--count", str(count)])
    result = CliRunner().invoke(main, args, env=cli_env(settings))
    assert result.exit_code == status, result.output
    summary = json.loads(result.stdout)
    assert 0 < summary["transactions"] < 1_000, summary
    assert summary["labels"] + summary["labels_not_sent"] == summary["transactions"], summary  # each counted


@pytest.mark.services
def test_produce_reports_the_rate_of_sending_not_of_waiting_for_labels(settings: Settings) -> None:
    import json

    from click.testing import CliRunner

    from fraudstream.cli import main

    result = CliRunner().invoke(main, ["produce", "--count", "300", "--rate", "500", "--clock", "wall",
                                       "--label-delay", "1s"], env=cli_env(settings))
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["labels"] == 300 and 420 <= summary["rate"] <= 510, summary  # 300 sent in ~0.6 s
    assert summary["seconds"] >= summary["sending_seconds"] + 0.9, summary  # then 1 s for the last labels


@pytest.mark.services
def test_produce_whose_broker_stops_answering_ends_soon_with_its_summary_and_the_error(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Delivery is confirmed every `DELIVERED_EVERY_S`: a broker of the test's own, paused, ends the
    run once a confirmation takes `DELIVERY_WAIT_S` (exit 1), with what was sent until then."""
    import json

    from click.testing import CliRunner

    from fraudstream.cli import main
    from fraudstream.producer import publisher as publishing
    from tests.kafka_helpers import PausedBroker

    monkeypatch.setattr(publishing, "DELIVERED_EVERY_S", 0.3)
    monkeypatch.setattr(publishing, "DELIVERY_WAIT_S", 2.0)
    with PausedBroker(settings) as broker:
        broker.pause_after(2.0)
        result = CliRunner().invoke(main, ["produce", "--rate", "500", "--label-delay", "1h"],
                                    env=cli_env(broker.settings))
    assert result.exit_code == 1, (result.output, result.exception)
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["transactions"] > 0 and "could not deliver to Kafka within 2.0 s" in summary["error"], summary
    assert "Error: could not deliver to Kafka within 2.0 s" in result.stderr, result.stderr[-2000:]
