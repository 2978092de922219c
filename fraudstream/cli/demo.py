"""`fraudstream demo`: servers, topics, a simulated producer and the scoring consumer, in one command."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click

from fraudstream.cli.common import FiniteFloat, live_clock_options, live_label_delay
from fraudstream.cli.errors import CommandError, handle_errors, notice
from fraudstream.cli.settings_options import setting_source, settings_from, settings_option
from fraudstream.cli.progress import drawn
from fraudstream.constants import EMBEDDED_FETCH_MAX_WAIT_MS, EMBEDDED_PRODUCER_LINGER_MS, EMBEDDED_TOPIC_PARTITIONS

if TYPE_CHECKING:
    from fraudstream.stream.consumer import ScoringConsumer
    from fraudstream.stream.dashboard import Dashboard
    from fraudstream.stream.stats import RunStats

log = logging.getLogger(__name__)
# after --transactions, the consumer goes on until it has read the labels the producer still sends
# (for a label delay after the last transaction), or until no label has arrived for this long
LAST_LABELS_PATIENCE_S = 5.0
# A run at 1,000 tx/s on the embedded Tansu (memory storage: each fetch costs more the more batches
# a partition holds) on a shared 2-core machine, 2026-12-07: with 50 ms batching, 3 partitions and a
# 20 ms fetch wait, the p99 latency passed 5 s after 8 minutes, the consumer stalled after ~18-20
# (the broker at 1.3 GB and most of a core; docs/performance.md, "The embedded broker over time").
# With 100 ms, 1 partition and 50 ms (constants.EMBEDDED_*), the same day: after 14 minutes p50 101
# ms, p99 267 ms, lag under 250, the broker at 0.20 of a core (0.05 at the start, growing ~0.012 a
# minute) and 575 MB (~42 MB a minute); by the measured cost the consumer would stall after ~90
# minutes. Twice the minutes seen, not more:
EMBEDDED_BROKER_MINUTES = 30


@contextlib.contextmanager
def live_dashboard(dashboard: Dashboard, app: ScoringConsumer) -> Iterator[None]:
    """Show `dashboard` for `app` while the block runs; log lines are printed above it."""
    from rich.console import Console
    from rich.live import Live

    dashboard.app = app
    dashboard.status = "joining the consumer group"
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler)]
    console = Console()
    try:
        with Live(dashboard, console=console, refresh_per_second=2, redirect_stderr=True, redirect_stdout=True):
            previous = [h.setStream(sys.stderr) for h in handlers]  # rich's proxy: logs go above the dashboard
            watcher = threading.Thread(target=_running_when_assigned, args=(dashboard, app), daemon=True)
            watcher.start()
            try:
                yield
            finally:
                for handler, stream in zip(handlers, previous):
                    if stream is not None:
                        handler.setStream(stream)
    finally:
        if not console.is_terminal:  # rich ends its last frame with a newline only on a terminal
            console.line()


def _running_when_assigned(dashboard: Dashboard, app: ScoringConsumer) -> None:
    while not app.stop.is_set():
        if app.assigned.wait(0.5):
            if dashboard.status.startswith("joining"):
                dashboard.status = "running (Ctrl-C stops)"
            return


class _ProducerThread(threading.Thread):
    """Runs the live producer; keeps its exception for the main thread."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(name="demo-producer", daemon=True)
        self.kwargs = kwargs
        self.error: BaseException | None = None
        self.result: Any = None

    def run(self) -> None:
        from fraudstream.producer.live import run_live

        try:
            ready: threading.Event = self.kwargs.pop("ready")
            ready.wait(60)  # start once the consumer owns its partitions, so latencies mean something
            self.result = run_live(**self.kwargs)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            self.error = exc
            self.kwargs["stop"].set()  # the consumer stops too: the demo ends with the error, not idle


def _stop_when_labels_read(stats: RunStats, producer: _ProducerThread, stop: threading.Event,
                           patience_s: float = LAST_LABELS_PATIENCE_S) -> None:
    """Set `stop` once the producer has finished (it sends the last transactions' labels for up to a
    label delay after them) and the consumer has processed as many labels as it sent, so that the
    summary counts every label; or, with a warning, once no label has been read for `patience_s`."""
    read, since = -1, time.monotonic()
    while not stop.wait(0.1):
        now = stats.labels_learned + stats.labels_dead_lettered  # a label delivered again is not another one
        if now != read:
            read, since = now, time.monotonic()
        if not producer.is_alive() and read >= (producer.result.labels if producer.result is not None else 0):
            break
        if time.monotonic() - since >= patience_s:
            waiting = "is still waiting to send labels due later" if producer.is_alive() else "has finished"
            log.warning("stopping: no label read for %.0f s (%d read; the producer %s)", patience_s, read, waiting)
            break
    stop.set()


@click.command()
@click.option("--transactions", "count", type=click.IntRange(min=1), default=None,
              help="Stop after this many transactions are scored and print a summary. [default: run until Ctrl-C]")
@click.option("--rate", type=FiniteFloat(0.0), default=1000.0, show_default=True, help="Simulated transactions per second.")
@live_clock_options
@click.option("--plain", is_flag=True, help="Print one line per alert instead of the live dashboard (logs, CI; so does --log-format json).")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=None,
              help="Serve the consumer's Prometheus metrics on http://0.0.0.0:PORT/metrics.")
@settings_option("--model", "model")
@settings_option("--threshold", "alert_threshold", type=FiniteFloat(0.0, inclusive=True, maximum=1.0))
@settings_option("--seed", "seed", type=int)
@click.pass_context
@handle_errors
def demo(ctx: click.Context, count: int | None, rate: float, label_delay: str | None, clock: str, plain: bool,
         metrics_port: int | None, **overrides: Any) -> None:
    """Start everything on this machine and show a live dashboard of it (alerts, throughput, lag, model quality).

    Starts the embedded broker and Redis server unless FRAUDSTREAM_KAFKA_BOOTSTRAP / FRAUDSTREAM_REDIS_URL
    point elsewhere, creates the topics, runs the simulated producer and the scoring consumer.
    Ctrl-C stops everything cleanly, including the servers it started.
    """
    from fraudstream.kafka_io import ensure_topics
    from fraudstream.services import embedded_services
    from fraudstream.stream.app import scoring_consumer
    from fraudstream.stream.dashboard import Dashboard
    from fraudstream.stream.metrics import check_metrics_port, serve_metrics
    from fraudstream.stream.signals import stop_on_signals
    from fraudstream.cli.alerts import format_alert
    from fraudstream.models.custom import is_spec
    from fraudstream.stream.model_loading import spec_refusal

    if metrics_port is not None:
        check_metrics_port(metrics_port)  # before the servers start
    settings = settings_from(ctx, **overrides)
    if clock == "simulated" and "max_future_skew" not in settings.model_fields_set:
        # simulated event times pass the present after ~40 min at 1,000 tx/s: not a clock error here
        settings = settings.model_copy(update={"max_future_skew": None})
    if settings.kafka_bootstrap is None:  # the embedded broker: fewer batches, and fewer listings of them, each
        # unless set (constants.EMBEDDED_*); the latency shown counts from send(), so it includes the
        # batching (50 ms on average)
        embedded = {"producer_linger_ms": EMBEDDED_PRODUCER_LINGER_MS, "topic_partitions": EMBEDDED_TOPIC_PARTITIONS,
                    "fetch_max_wait_ms": EMBEDDED_FETCH_MAX_WAIT_MS}
        settings = settings.model_copy(update={field: value for field, value in embedded.items()
                                               if field not in settings.model_fields_set})
    own = [(name, name != settings.model) for name in (settings.model, *settings.challengers) if is_spec(name)]
    if own and settings.redis_url is None:  # before the servers start: the consumer's check would name steps
        raise CommandError(f"model {own[0][0]}: the demo's servers are new each run, so it starts zoo models only "
                           "(`fraudstream models zoo`); to see a model of your own live, run `fraudstream up` and "
                           "take it through `backtest`, `models import` and `models promote` there (README, "
                           "\"Model lifecycle\")")
    if own:  # servers of the user's: the consumer's refusal, before the demo starts its broker
        raise spec_refusal(*own[0])
    delay = live_label_delay(label_delay, clock)
    stop = threading.Event()
    _note_servers_from_settings(ctx, settings)
    if long_on_embedded_broker(settings.kafka_bootstrap, count, rate):
        notice("note: the embedded broker keeps every record in memory, and each fetch costs it more the more it "
               "holds: at 1,000 tx/s the p99 latency stayed under 0.5 s for the 14 minutes measured, and it grows with the "
               "minutes run (the consumer may fall behind after an hour or more). "
               "For longer runs use `docker compose up` (Apache Kafka), or --transactions", logging.INFO)
    dashboard = Dashboard() if drawn(settings, not plain) else None  # JSON logs: lines, no screen
    on_alert = (lambda a: click.echo(format_alert(a))) if dashboard is None else dashboard.on_alert
    with embedded_services(settings) as live:
        ensure_topics(live)
        producer = _ProducerThread(settings=live, count=count, rate=rate, seed=live.seed, label_delay=delay, stop=stop,
                                   clock=clock)
        with scoring_consumer(live, on_alert=on_alert) as app:
            app.stop = stop
            producer.kwargs["ready"] = app.assigned
            metrics = serve_metrics(app, metrics_port) if metrics_port is not None else contextlib.nullcontext()
            screen = live_dashboard(dashboard, app) if dashboard is not None else contextlib.nullcontext()
            with stop_on_signals(stop), metrics, screen:
                producer.start()
                try:
                    stats = app.run(max_transactions=count)
                    if count is not None and not stop.is_set():  # the labels the producer still sends
                        if dashboard is not None:
                            dashboard.status = "learning the last labels"
                        patience = max(LAST_LABELS_PATIENCE_S, 3.0 / rate)  # a label every 1/rate s or so
                        threading.Thread(target=_stop_when_labels_read, args=(app.stats, producer, stop, patience),
                                         name="demo-drain", daemon=True).start()
                        stats = app.run()
                finally:
                    stop.set()
                    if dashboard is not None:
                        dashboard.status = "stopping"
                    producer.join(timeout=15)
        if producer.error is not None:
            raise CommandError(f"producer failed: {producer.error}")
        summary = stats.summary()
        if producer.result is not None:
            summary["labels_sent"] = producer.result.labels
        click.echo(json.dumps(summary))
        if settings.kafka_bootstrap and stats.dead_lettered > stats.processed:  # processed: scored ones
            notice(f"Warning: {stats.dead_lettered:,} of {stats.processed + stats.dead_lettered:,} transactions "
                   "were dead-lettered "
                   "(`fraudstream dead-letters` gives the reasons). With servers that an earlier demo or replay "
                   "filled, its newer event times make the demo's too late: unset FRAUDSTREAM_KAFKA_BOOTSTRAP "
                   "and FRAUDSTREAM_REDIS_URL for servers of the demo's own", logging.WARNING)


def long_on_embedded_broker(bootstrap: str | None, count: int | None, rate: float) -> bool:
    """Whether a demo runs on the embedded broker (no `bootstrap`) for longer than it keeps up.

    >>> long_on_embedded_broker(None, None, 1000.0), long_on_embedded_broker(None, 60_000, 1000.0)
    (True, False)
    >>> long_on_embedded_broker(None, 1_900_000, 1000.0), long_on_embedded_broker("kafka:9092", None, 1000.0)
    (True, False)
    """
    return bootstrap is None and (count is None or count / rate > EMBEDDED_BROKER_MINUTES * 60)


def _note_servers_from_settings(ctx: click.Context, settings: Any) -> None:
    """Say which servers the demo uses that it does not start (it starts the ones left unset)."""
    given = [f"{what} at {where} ({setting_source(ctx, field)})" for what, where, field in (
        ("the Kafka broker", settings.kafka_bootstrap, "kafka_bootstrap"),
        ("Redis", settings.redis_url_masked() if settings.redis_url else None, "redis_url")) if where]
    if given:
        notice(f"using {' and '.join(given)}, not servers of the demo's own", logging.INFO)
