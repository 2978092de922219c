"""`fraudstream demo`: servers, topics, a simulated producer and the scoring consumer, in one command."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Any

import click

from fraudstream.cli.common import handle_errors, settings_from, settings_option
from fraudstream.timeutil import parse_duration


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


@click.command()
@click.option("--transactions", "count", type=int, default=None,
              help="Stop after this many transactions are scored and print a summary. [default: run until Ctrl-C]")
@click.option("--rate", type=float, default=1000.0, show_default=True, help="Simulated transactions per second.")
@click.option("--label-delay", default="2s", show_default=True,
              help="Delay before a transaction's label is published (the demo shortens the real-world 7 days).")
@click.option("--plain", is_flag=True, help="Print plain lines instead of the live dashboard.")
@settings_option("--model", "model")
@settings_option("--threshold", "alert_threshold", type=float)
@settings_option("--seed", "seed", type=int)
@click.pass_context
@handle_errors
def demo(ctx: click.Context, count: int | None, rate: float, label_delay: str, plain: bool, **overrides: Any) -> None:
    """Start everything on this machine and print alerts as they happen.

    Starts the embedded broker and Redis server unless FRAUDSTREAM_KAFKA_BOOTSTRAP / FRAUDSTREAM_REDIS_URL
    point elsewhere, creates the topics, runs the simulated producer and the scoring consumer.
    Ctrl-C stops everything cleanly, including the servers it started.
    """
    from fraudstream.kafka_io import ensure_topics
    from fraudstream.services import embedded_services
    from fraudstream.stream.app import scoring_consumer
    from fraudstream.stream.signals import stop_on_signals
    from fraudstream.cli.alerts import format_alert

    settings = settings_from(ctx, **overrides)
    delay: timedelta = parse_duration(label_delay)
    stop = threading.Event()
    with embedded_services(settings) as live:
        ensure_topics(live)
        producer = _ProducerThread(settings=live, count=count, rate=rate, seed=live.seed, label_delay=delay, stop=stop)
        with scoring_consumer(live, on_alert=lambda a: click.echo(format_alert(a))) as app:
            app.stop = stop
            producer.kwargs["ready"] = app.assigned
            with stop_on_signals(stop):
                producer.start()
                try:
                    stats = app.run(max_transactions=count)
                finally:
                    stop.set()
                    producer.join(timeout=15)
        if producer.error is not None:
            raise click.ClickException(f"producer failed: {producer.error}")
        summary = stats.summary()
        click.echo("summary " + json.dumps(summary))
