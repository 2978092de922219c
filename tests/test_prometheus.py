"""The consumer's Prometheus endpoint, scraped over HTTP after a run against the real broker and Redis.

(`tests/test_metrics.py` covers the handbook prequential metrics of `fraudstream.models.metrics`.)
"""

from __future__ import annotations

import socket
import urllib.request
from collections import Counter
from datetime import timedelta

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fraudstream import constants
from fraudstream.config import Settings
from fraudstream.errors import ServiceError
from fraudstream.kafka_io import ensure_topics
from fraudstream.models.events import Alert, Label
from fraudstream.models.metrics import roc_auc
from fraudstream.stream.app import scoring_consumer
from fraudstream.stream.metrics import serve_metrics
from tests.kafka_helpers import produce_raw, read_topic
from tests.test_pipeline import GARBAGE, publish, scripted_transactions


def scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Sample name -> [(labels, value)] from the live endpoint."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def value(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    matches = [v for lab, v in samples[name] if all(lab.get(k) == w for k, w in labels.items())]
    assert len(matches) == 1, (name, labels, samples.get(name))
    return matches[0]


@pytest.mark.services
def test_scraped_figures_equal_the_run(settings: Settings) -> None:
    settings = settings.model_copy(update={"alert_threshold": 0.0, "alert_warmup_labels": 0})
    ensure_topics(settings)
    txs = scripted_transactions(300)
    publish(settings, txs)
    produce_raw(settings, settings.topic_transactions, ((b"junk", g) for g in GARBAGE))
    labelled = txs[:200]
    fraud = {tx.transaction_id: int(tx.transaction_id[-5:]) % 25 == 24 for tx in labelled}
    produce_raw(settings, settings.topic_labels, (
        (tx.customer_id.encode(), Label(transaction_id=tx.transaction_id, customer_id=tx.customer_id,
                                        terminal_id=tx.terminal_id, is_fraud=fraud[tx.transaction_id],
                                        event_time=tx.event_time,
                                        reported_at=tx.event_time + timedelta(days=7)).to_json_bytes())
        for tx in labelled))

    with scoring_consumer(settings) as app, serve_metrics(app, 0, addr="127.0.0.1") as port:
        stats = app.run(idle_timeout=3)
        samples = scrape(port)
        version = str(app.scorer.champion.info.version)  # as scraped (closing publishes a new version)
        learned_since = app.scorer.champion.local_labels  # alerts say "<version>+<these>"

    assert (stats.processed, stats.dead_lettered, stats.alerts, stats.labels_learned) == (300, len(GARBAGE), 300, 200)
    assert value(samples, "fraudstream_transactions_processed_total") == 300
    assert value(samples, "fraudstream_transactions_dead_lettered_total") == len(GARBAGE)
    assert value(samples, "fraudstream_alerts_total") == 300
    assert value(samples, "fraudstream_labels_learned_total") == 200
    assert value(samples, "fraudstream_labels_dead_lettered_total") == 0
    assert value(samples, "fraudstream_batches_total") == stats.batches > 0
    # by reason: as the dead-letter topic's records say (their fraudstream.reason header)
    reasons = Counter(dict(r.headers)[constants.DLQ_HEADER_REASON].decode()
                      for r in read_topic(settings, settings.topic_dlq, expect=len(GARBAGE)))
    by_reason = {(lab["kind"], lab["reason"]): v for lab, v in samples["fraudstream_dead_letters_total"]}
    assert by_reason == {("transactions", reason): n for reason, n in reasons.items()} and len(reasons) > 1
    assert stats.summary()["dead_letter_reasons"] == {"labels": {}, "transactions": dict(sorted(reasons.items()))}

    # every partition of both topics is drained
    lag = {(lab["topic"], lab["partition"]): v for lab, v in samples["fraudstream_consumer_lag"]}
    expected = {(t, str(p)) for t in (settings.topic_transactions, settings.topic_labels)
                for p in range(settings.topic_partitions)}
    assert set(lag) == expected and all(v == 0 for v in lag.values())

    assert value(samples, "fraudstream_publish_to_scored_latency_seconds_count") == 300
    assert value(samples, "fraudstream_publish_to_scored_latency_seconds_bucket", le="+Inf") == 300
    latency_sum = value(samples, "fraudstream_publish_to_scored_latency_seconds_sum")
    assert latency_sum == pytest.approx(sum(stats.latencies_ms) / 1000.0)
    assert value(samples, "fraudstream_batch_duration_seconds_count") == stats.batches

    # rolling model figures, checked against the scores the alerts carried (threshold 0: one per transaction)
    alerts = {a.transaction_id: a for a in (Alert.model_validate_json(r.value)
                                            for r in read_topic(settings, settings.topic_alerts, expect=300))}
    ids = [tx.transaction_id for tx in labelled]
    y = np.array([fraud[i] for i in ids])
    scores = np.array([alerts[i].score for i in ids])
    # the champion's scores, bucket by bucket as the alerts carried them (every transaction scored once)
    every = np.array([a.score for a in alerts.values()])
    buckets = {float(lab["le"]): v for lab, v in samples["fraudstream_champion_score_bucket"]}
    assert len(every) == 300 and buckets[float("inf")] == value(samples, "fraudstream_champion_score_count") == 300
    assert buckets == {bound: (every <= bound).sum() for bound in buckets}
    assert value(samples, "fraudstream_champion_score_sum") == pytest.approx(every.sum())
    assert value(samples, "fraudstream_model_rolling_labels") == 200
    assert value(samples, "fraudstream_model_rolling_frauds") == y.sum() == 8
    assert value(samples, "fraudstream_model_rolling_auc") == pytest.approx(roc_auc(y, scores))
    assert value(samples, "fraudstream_model_rolling_precision") == pytest.approx(8 / 200)
    assert learned_since > 0  # the label is the published version, not one that changes with every batch
    assert value(samples, "fraudstream_model_info", model=settings.model, version=version) == 1
    assert value(samples, "fraudstream_alert_threshold") == 0.0


def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ServiceError, match=f"127.0.0.1:{port}"):
            with serve_metrics(None, port, addr="127.0.0.1"):  # type: ignore[arg-type]
                pass


@pytest.mark.parametrize("size", [7, 2000])  # value by value, and in one numpy pass
def test_a_batch_of_scores_is_bucketed_as_prometheus_counts_them(size: int) -> None:
    """A bucket counts the values at or below its bound; a NaN only in +Inf, and not in the sum."""
    from fraudstream.stream.rolling import SCORE_BUCKETS, Histogram

    rng = np.random.default_rng(size)
    values = np.concatenate([rng.random(size - 5) ** 6, [0.0, 0.5, 1.0, SCORE_BUCKETS[0], np.nan]])
    hist = Histogram(SCORE_BUCKETS)
    hist.observe_many(values[: size // 2].tolist())
    hist.observe_many(values[size // 2:].tolist())
    finite = values[~np.isnan(values)]
    expected = [(bound, int((finite <= bound).sum())) for bound in SCORE_BUCKETS] + [(float("inf"), size)]
    assert hist.cumulative() == expected and hist.count == size
    assert hist.total == pytest.approx(finite.sum())


def test_the_help_of_the_waiting_and_lag_gauges_says_what_the_readme_says() -> None:
    """The waiting gauge also counts a broker that stopped answering the group's heartbeats, and the
    lag the records fetched but waiting (their HELP said only an outage's retries, and the watermark)."""
    from prometheus_client import CollectorRegistry, generate_latest

    from fraudstream.stream.metrics import ConsumerCollector
    from fraudstream.stream.stats import RunStats

    registry = CollectorRegistry()
    registry.register(ConsumerCollector(RunStats))
    helps = {f.name: f.documentation for f in text_string_to_metric_families(generate_latest(registry).decode())}
    assert "has not answered the group's heartbeats" in helps["fraudstream_waiting_for_server_seconds"]
    assert "plus fetched but waiting" in helps["fraudstream_consumer_lag"]
    assert "the broker gave when last asked (every 5 s)" in helps["fraudstream_consumer_lag"]
