"""`fraudstream produce`: publish simulated transactions live (event time = now) and their labels."""

from __future__ import annotations

import json
import threading
from typing import Any

import click

from fraudstream.cli.common import handle_errors, settings_from, settings_option
from fraudstream.constants import CLOCKS, DEFAULT_LIVE_LABEL_DELAY


@click.command()
@click.option("--count", type=int, default=None, help="Stop after this many transactions. [default: until Ctrl-C]")
@click.option("--rate", type=float, default=100.0, show_default=True, help="Transactions per second.")
@settings_option("--seed", "seed", type=int)
@click.option("--label-delay", default=None,
              help="Delay before a transaction's label is published, in event time (e.g. 1d, 7d, 5s). Short by "
                   "default so that a live run sees labels; backtests and replays use FRAUDSTREAM_LABEL_DELAY. "
                   "[default: 1d on the simulated clock, 2s on the wall clock]")
@click.option("--clock", type=click.Choice(CLOCKS), default="simulated", show_default=True,
              help="Event times: the simulation's, which pass a day per ~2,200 transactions of the demo world "
                   "(consumers need FRAUDSTREAM_MAX_FUTURE_SKEW=none once it passes the present), or the wall clock's (each "
                   "customer then pays rate/customers times a second, and its windows fill without bound).")
@click.option("--customers", type=int, default=None, help="Simulated customers. [default: the demo world, 1000]")
@click.option("--terminals", type=int, default=None, help="Simulated terminals. [default: the demo world, 2000]")
@click.pass_context
@handle_errors
def produce(ctx: click.Context, count: int | None, rate: float, label_delay: str | None, clock: str,
            customers: int | None, terminals: int | None, **overrides: Any) -> None:
    """Publish simulated transactions to the transactions topic and their labels to the labels topic.

    Messages are JSON with key = customer id. Ctrl-C stops after flushing what was sent.
    """
    from dataclasses import replace

    from fraudstream.kafka_io import ensure_topics
    from fraudstream.producer.live import run_live
    from fraudstream.producer.simulator import SimulatorConfig
    from fraudstream.stream.signals import stop_on_signals
    from fraudstream.timeutil import parse_duration

    settings = settings_from(ctx, **overrides)
    ensure_topics(settings, [settings.topic_transactions, settings.topic_labels])
    config = SimulatorConfig.live_demo(settings.seed)
    if customers is not None or terminals is not None:
        config = replace(config, customers=customers or config.customers, terminals=terminals or config.terminals)
    stop = threading.Event()
    with stop_on_signals(stop):
        delay = parse_duration(label_delay or DEFAULT_LIVE_LABEL_DELAY[clock])
        stats = run_live(settings, count=count, rate=rate, seed=settings.seed, label_delay=delay, stop=stop,
                         config=config, clock=clock)  # type: ignore[arg-type]
    click.echo("produced " + json.dumps({"transactions": stats.transactions, "frauds": stats.frauds,
                                         "labels": stats.labels, "labels_not_sent": stats.labels_dropped,
                                         "seconds": round(stats.seconds, 3), "rate": round(stats.rate, 1)}))
