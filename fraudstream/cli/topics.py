"""`fraudstream topics`: create the topics (idempotent)."""

from __future__ import annotations

import click

from fraudstream.cli.errors import handle_errors
from fraudstream.cli.settings_options import require_bootstrap, settings_from, settings_option


@click.command()
@settings_option("--partitions", "topic_partitions", type=click.IntRange(min=1))
@click.pass_context
@handle_errors
def topics(ctx: click.Context, **overrides: object) -> None:
    """Create the transactions, labels, alerts and dead-letter topics if they do not exist."""
    from fraudstream.kafka_io import all_topics, ensure_topics, make_consumer, partitions_of

    settings = settings_from(ctx, **overrides)
    require_bootstrap(settings)
    created = ensure_topics(settings)
    consumer = make_consumer(settings, group_id=None)
    try:
        counts = {topic: len(partitions_of(consumer, topic)) for topic in all_topics(settings)}
    finally:
        consumer.close()
    # asked for by the option or FRAUDSTREAM_TOPIC_PARTITIONS (the default, 3, is no request)
    asked = settings.topic_partitions if "topic_partitions" in settings.model_fields_set else None
    for topic, count in counts.items():
        kept = f" (not {asked}: an existing topic keeps its partitions)" if asked and count != asked else ""
        click.echo(f"{topic}\t{'created' if topic in created else 'exists'}\t{count} partitions{kept}")
