"""`fraudstream topics`: create the topics (idempotent)."""

from __future__ import annotations

import click

from fraudstream.cli.common import handle_errors, require_bootstrap, settings_from, settings_option


@click.command()
@settings_option("--partitions", "topic_partitions", type=click.IntRange(min=1))
@click.pass_context
@handle_errors
def topics(ctx: click.Context, **overrides: object) -> None:
    """Create the transactions, labels, alerts and dead-letter topics if they do not exist."""
    from fraudstream.kafka_io import all_topics, ensure_topics

    settings = settings_from(ctx, **overrides)
    require_bootstrap(settings)
    created = ensure_topics(settings)
    for topic in all_topics(settings):
        click.echo(f"{topic}\t{'created' if topic in created else 'exists'}")
