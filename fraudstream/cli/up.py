"""`fraudstream up`: run the embedded broker and Redis server in the foreground."""

from __future__ import annotations

import time

import click

from fraudstream.cli.common import handle_errors, settings_from


@click.command()
@click.option("--partitions", type=click.IntRange(min=1), default=None, help="Partitions of the topics created. [default: from settings]")
@click.pass_context
@handle_errors
def up(ctx: click.Context, partitions: int | None) -> None:
    """Start the embedded Kafka-protocol broker (Tansu) and Redis server (Valkey) and create the topics.

    Prints the FRAUDSTREAM_* lines to export in other terminals; Ctrl-C stops both servers.
    """
    from fraudstream.kafka_io import ensure_topics
    from fraudstream.services import embedded_services

    settings = settings_from(ctx, topic_partitions=partitions)
    try:
        with embedded_services(settings) as live:
            ensure_topics(live)
            click.echo(f"FRAUDSTREAM_KAFKA_BOOTSTRAP={live.kafka_bootstrap}")
            click.echo(f"FRAUDSTREAM_REDIS_URL={live.redis_url}")
            click.echo("# export the lines above in other terminals; Ctrl-C stops the servers", err=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        click.echo("stopped", err=True)
