"""Prometheus metrics of a scoring consumer (``fraudstream consume --metrics-port PORT``).

Every scrape reads the consumer's `RunStats` and champion through a custom collector in a registry
of its own (nothing is registered at import). The consumer thread writes the figures; the HTTP
thread only reads numbers and copies of small containers.

Metrics (prefix ``fraudstream_``): counters ``transactions_processed_total``, ``alerts_total``,
``transactions_dead_lettered_total``, ``labels_learned_total``, ``labels_dead_lettered_total``,
``labels_duplicate_total``, ``batches_total``, ``events_mis_keyed_total``, ``step_retries_total``,
``dead_letters_total{kind,reason}``; gauges
``waiting_for_server_seconds`` and ``consumer_lag{topic,partition}``; histograms
``publish_to_scored_latency_seconds``, ``batch_duration_seconds`` and ``champion_score``; gauges
``model_rolling_auc``, ``model_rolling_precision``, ``model_rolling_labels``,
``model_rolling_frauds``, ``model_labels_learned``, ``alert_threshold``, ``models_not_checkpointed``;
``model_info{model,version}``.

>>> from fraudstream.stream.stats import RunStats
>>> stats = RunStats(processed=7, alerts=2)
>>> text = exposition(ConsumerCollector(lambda: stats))
>>> "fraudstream_transactions_processed_total 7.0" in text, "fraudstream_alerts_total 2.0" in text
(True, True)
"""

from __future__ import annotations

import contextlib
import logging
import math
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from fraudstream.errors import ServiceError

if TYPE_CHECKING:
    from fraudstream.stream.consumer import ScoringConsumer
    from fraudstream.stream.rolling import Histogram
    from fraudstream.stream.stats import RunStats

log = logging.getLogger(__name__)

PREFIX = "fraudstream_"


@dataclass(frozen=True)
class ModelView:
    """What the collector shows about the champion (plain values, read at scrape time)."""

    name: str
    version: str
    labels_learned: int
    threshold: float
    not_checkpointed: int = 0  # active models this consumer, as the learner, cannot checkpoint


def model_view(app: ScoringConsumer) -> ModelView:
    """The champion's published version (``7``, not ``7+12`` as alerts say: a label whose value changed
    with every batch made a new time series each time; the labels learned since are in
    ``model_labels_learned``)."""
    champion, lifecycle = app.scorer.champion, app.scorer.lifecycle
    failing = len(lifecycle.failing.positions(app.scorer)) if lifecycle is not None else 0
    return ModelView(champion.name, str(champion.info.version), int(champion.labels_learned),
                     float(app.scorer.threshold), failing)


class ConsumerCollector(Collector):
    """Reads a `RunStats` (and optionally the champion) on every scrape."""

    def __init__(self, stats: Callable[[], RunStats], model: Callable[[], ModelView] | None = None) -> None:
        self._stats = stats
        self._model = model

    def _read_model(self) -> ModelView | None:
        if self._model is None:
            return None
        try:
            return self._model()
        except (KeyError, AttributeError):  # a promotion swapping the champion between two reads
            log.debug("champion unavailable during this scrape", exc_info=True)
            return None

    def collect(self) -> Iterator[Any]:
        s = self._stats()
        for name, doc, value in (
            ("transactions_processed", "Transactions scored (acknowledged work only).", s.processed),
            ("alerts", "Alerts published.", s.alerts),
            ("transactions_dead_lettered", "Transactions sent to the dead-letter topic.", s.dead_lettered),
            ("labels_learned", "Labels applied to a scored record.", s.labels_learned),
            ("labels_dead_lettered", "Labels sent to the labels dead-letter topic.", s.labels_dead_lettered),
            ("labels_duplicate", "Labels delivered again after they were learned (skipped).", s.labels_duplicate),
            ("batches", "Batches processed and committed.", s.batches),
            ("events_mis_keyed", "Transactions and labels whose Kafka key is not their customer id (handled as usual).",
             s.mis_keyed),
            ("step_retries", "Steps retried because Redis or the broker failed (an outage, a full or read-only Redis).",
             s.waits.retries),
        ):
            yield CounterMetricFamily(PREFIX + name, doc, value=value)
        by_reason = CounterMetricFamily(PREFIX + "dead_letters", "Records sent to a dead-letter topic, by kind "
                                        "(transactions, labels) and reason (the fraudstream.reason header).",
                                        labels=["kind", "reason"])
        for (kind, reason), count in sorted(dict(s.dead_letter_reasons).items()):
            by_reason.add_metric([kind, reason], count)
        yield by_reason
        yield GaugeMetricFamily(PREFIX + "waiting_for_server_seconds",
                                "How long the current step has been retried through an outage, or, with nothing to "
                                "do, how long the broker has not answered the group's heartbeats (0: not waiting).",
                                value=s.waits.waited_s())
        lag = GaugeMetricFamily(PREFIX + "consumer_lag", "Records not yet processed per assigned partition (behind "
                                "the high watermark, plus fetched but waiting): the last fetch's watermark, or the "
                                "log's end the broker gave when last asked (every 5 s) if larger.",
                                labels=["topic", "partition"])
        for (topic, partition), behind in sorted(dict(s.lag).items()):
            lag.add_metric([topic, str(partition)], behind)
        yield lag
        yield _histogram("publish_to_scored_latency_seconds",
                         "From the record's publish timestamp to its score.", s.latency_histogram, scale=0.001)
        yield _histogram("batch_duration_seconds", "Time to process and commit one batch.", s.batch_histogram)
        yield _histogram("champion_score", "The champion's scores of the transactions scored (not of those delivered "
                         "again): their shape moves as soon as the model or the traffic does, days before the labels "
                         "show it.", s.score_histogram)
        threshold = math.nan
        view = self._read_model()
        if view is not None:
            threshold = view.threshold
            yield InfoMetricFamily(PREFIX + "model", "The champion model.", value={"model": view.name, "version": view.version})
            yield GaugeMetricFamily(PREFIX + "model_labels_learned", "Labels the champion has learned.",
                                    value=view.labels_learned)
            yield GaugeMetricFamily(PREFIX + "alert_threshold", "Champion score at which an alert is raised.",
                                    value=view.threshold)
            yield GaugeMetricFamily(PREFIX + "models_not_checkpointed", "Active models this consumer, as the learner, "
                                    "cannot checkpoint: their newest versions stay as they were (`fraudstream models`).",
                                    value=view.not_checkpointed)
        window = s.labelled.figures(threshold if not math.isnan(threshold) else 0.5)
        yield GaugeMetricFamily(PREFIX + "model_rolling_auc",
                                "ROC AUC of the champion's scores over the newest labelled transactions.", value=window.auc)
        yield GaugeMetricFamily(PREFIX + "model_rolling_precision",
                                "Share of frauds among the newest labelled transactions scored at or above the threshold.",
                                value=window.precision)
        yield GaugeMetricFamily(PREFIX + "model_rolling_labels", "Labelled transactions in the rolling window.",
                                value=window.n)
        yield GaugeMetricFamily(PREFIX + "model_rolling_frauds", "Frauds in the rolling window.", value=window.frauds)


def _histogram(name: str, doc: str, hist: Histogram, scale: float = 1.0) -> HistogramMetricFamily:
    buckets = [("+Inf" if math.isinf(bound) else _fmt(bound * scale), count) for bound, count in hist.cumulative()]
    return HistogramMetricFamily(PREFIX + name, doc, buckets=buckets, sum_value=hist.total * scale)


def _fmt(value: float) -> str:
    """A bucket bound as Prometheus writes it.

    >>> _fmt(0.0025), _fmt(1.0), _fmt(30.0)
    ('0.0025', '1.0', '30.0')
    """
    return repr(float(round(value, 12)))


def consumer_registry(app: ScoringConsumer) -> CollectorRegistry:
    """A registry of its own holding the collector of `app`."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ConsumerCollector(lambda: app.stats, lambda: model_view(app)))
    return registry


def exposition(collector: Collector) -> str:
    """The text exposition of one collector (tests, doctests)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry).decode()


def _cannot_serve(addr: str, port: int, exc: OSError) -> ServiceError:
    return ServiceError(f"cannot serve metrics on {addr}:{port}: {exc}")


def check_metrics_port(port: int, addr: str = "0.0.0.0") -> None:
    """`ServiceError` now, before a consumer joins its group, when `serve_metrics` could not bind
    `port` (0: any free port, always fine)."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the HTTP server binds
        try:
            probe.bind((addr, port))
        except OSError as exc:
            raise _cannot_serve(addr, port, exc) from exc


@contextlib.contextmanager
def serve_metrics(app: ScoringConsumer, port: int, addr: str = "0.0.0.0") -> Iterator[int]:
    """Serve ``/metrics`` for `app` on `port` (0: a free port) while the block runs; yields the port."""
    try:
        server, thread = start_http_server(port, addr=addr, registry=consumer_registry(app))
    except OSError as exc:
        raise _cannot_serve(addr, port, exc) from exc
    bound = int(server.server_port)
    log.info("metrics on http://%s:%d/metrics", addr, bound, extra={"metrics_port": bound})
    try:
        yield bound
    finally:
        server.shutdown()
        server.server_close()
        if isinstance(thread, threading.Thread):
            thread.join(timeout=5)
