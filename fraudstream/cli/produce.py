"""`fraudstream produce`: publish simulated transactions live, at a given rate, and their labels after a delay
(event times from the simulated clock by default, or the wall clock: `--clock`)."""

from __future__ import annotations

import json
import threading
from typing import Any

import click

from fraudstream.cli.common import FiniteFloat, live_clock_options, live_label_delay
from fraudstream.cli.errors import handle_errors
from fraudstream.cli.settings_options import require_bootstrap, settings_from, settings_option


@click.command()
@click.option("--count", type=click.IntRange(min=1), default=None,
              help="Stop after this many transactions. [default: until Ctrl-C]")
@click.option("--rate", type=FiniteFloat(0.0), default=100.0, show_default=True, help="Transactions per second.")
@settings_option("--seed", "seed", type=int)
@live_clock_options
@click.option("--customers", type=click.IntRange(min=1), default=None, help="Simulated customers. [default: the demo world, 1000]")
@click.option("--terminals", type=click.IntRange(min=1), default=None, help="Simulated terminals. [default: the demo world, 2000]")
@click.pass_context
@handle_errors
def produce(ctx: click.Context, count: int | None, rate: float, label_delay: str | None, clock: str,
            customers: int | None, terminals: int | None, **overrides: Any) -> None:
    """Publish simulated transactions to the transactions topic and their labels to the labels topic.

    Messages are JSON with key = customer id. Ctrl-C stops after flushing what was sent; with --count,
    before that many transactions and their labels were sent, it exits with status 130 (SIGTERM: 143).
    """
    from dataclasses import replace

    from fraudstream.kafka_io import ensure_topics
    from fraudstream.errors import ServiceError
    from fraudstream.producer.live import ProduceStats, run_live
    from fraudstream.producer.simulator import SimulatorConfig
    from fraudstream.stream.signals import stop_on_signals

    settings = settings_from(ctx, **overrides)
    require_bootstrap(settings)
    delay = live_label_delay(label_delay, clock)
    config = SimulatorConfig.live_demo(settings.seed)
    if customers is not None or terminals is not None:
        config = replace(config, customers=customers or config.customers, terminals=terminals or config.terminals)
    ensure_topics(settings, [settings.topic_transactions, settings.topic_labels])
    stop = threading.Event()
    stats = ProduceStats()
    with stop_on_signals(stop) as received:
        try:
            run_live(settings, count=count, rate=rate, seed=settings.seed, label_delay=delay, stop=stop,
                     config=config, clock=clock, stats=stats)  # type: ignore[arg-type]
        except ServiceError as exc:  # the broker went away: what was sent until then, and the error
            click.echo(json.dumps({**_summary(stats), "error": str(exc)[:500]}))
            raise
    click.echo(json.dumps(_summary(stats)))
    if count is not None and received.signum is not None and (stats.transactions < count or stats.labels_dropped):
        ctx.exit(received.exit_code)  # stopped before the job given was done


def _summary(stats: Any) -> dict[str, Any]:
    """rate: of the transactions while they were sent; seconds: in all, with the wait for the last labels
    (sent, not confirmed: a summary after an error counts what was handed to the broker's client)."""
    return {"transactions": stats.transactions, "frauds": stats.frauds,
            "sending_seconds": round(stats.sending_seconds, 3), "rate": round(stats.rate, 1),
            "labels": stats.labels, "labels_not_sent": stats.labels_dropped, "seconds": round(stats.seconds, 3)}
