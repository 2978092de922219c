"""`fraudstream consume`: run the scoring consumer."""

from __future__ import annotations

import contextlib
import json

import click

from fraudstream.cli.common import FiniteFloat
from fraudstream.cli.errors import handle_errors
from fraudstream.cli.settings_options import settings_from, settings_option


@click.command()
@settings_option("--group", "group_id")
@settings_option("--model", "model")
@settings_option("--threshold", "alert_threshold", type=FiniteFloat(0.0, inclusive=True, maximum=1.0))
@click.option("--max-transactions", type=click.IntRange(min=1), default=None, help="Stop after the batch in which this many transactions were handled (a poll brings up to "
              "FRAUDSTREAM_MAX_POLL_RECORDS, 2,000 by default).")
@click.option("--idle-timeout", type=FiniteFloat(0.0), default=None, help="Stop after this many seconds without records.")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=None,
              help="Serve Prometheus metrics on http://0.0.0.0:PORT/metrics while running (0: a free port, logged).")
@click.pass_context
@handle_errors
def consume(ctx: click.Context, max_transactions: int | None, idle_timeout: float | None, metrics_port: int | None,
            **overrides: object) -> None:
    """Score transactions from Kafka, publish alerts, learn from delayed labels.

    Needs a broker and Redis (FRAUDSTREAM_KAFKA_BOOTSTRAP, FRAUDSTREAM_REDIS_URL; see `fraudstream up`).
    Prints a JSON summary on exit, also when an error stops it (then with the error).
    """
    from fraudstream.kafka_io import ensure_topics
    from fraudstream.stream.app import scoring_consumer
    from fraudstream.stream.metrics import check_metrics_port, serve_metrics
    from fraudstream.stream.signals import stop_on_signals

    settings = settings_from(ctx, **overrides)
    missing = [f"FRAUDSTREAM_{name.upper()}" for name in ("kafka_bootstrap", "redis_url") if not getattr(settings, name)]
    if missing:  # only those unset (it named both when the broker was set)
        raise click.UsageError(f"set {' and '.join(missing)} (see `fraudstream up`)")
    if metrics_port is not None:
        check_metrics_port(metrics_port)  # before the group join, not after it
    ensure_topics(settings)
    with scoring_consumer(settings) as app, stop_on_signals(app.stop):
        try:
            with serve_metrics(app, metrics_port) if metrics_port is not None else contextlib.nullcontext():
                stats = app.run(max_transactions=max_transactions, idle_timeout=idle_timeout)
        except Exception as exc:  # what was done and committed until then, for the operator's records
            click.echo(json.dumps({**app.stats.summary(), "error": str(exc)[:500] or type(exc).__name__}))
            raise
    click.echo(json.dumps(stats.summary()))
