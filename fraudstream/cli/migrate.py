"""`fraudstream migrate-records`: move scored records kept by an older fraudstream into the hourly hashes."""

from __future__ import annotations

import click

from fraudstream.cli.common import handle_errors, settings_from


@click.command("migrate-records")
@click.pass_context
@handle_errors
def migrate_records(ctx: click.Context) -> None:
    """Move scored records written before the hourly record hashes (one key per transaction) into
    them, so that labels of transactions scored before an upgrade are learned. Run it once, with the
    consumers stopped; running it again moves nothing."""
    from fraudstream.stream.state import open_redis_store
    from fraudstream.stream.state.redis_records import migrate_legacy_records

    settings = settings_from(ctx)
    if not settings.redis_url:
        raise click.UsageError("set FRAUDSTREAM_REDIS_URL to the Redis the consumers use")
    store = open_redis_store(settings)
    moved = migrate_legacy_records(store.records, store.client)
    click.echo(f"moved {moved:,} scored records into the hourly hashes")
