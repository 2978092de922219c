"""`fraudstream migrate-records`: move scored records and label markers kept by an older fraudstream
into the layout this one reads, and convert its customers' and terminals' event strings (the feature
state) into the current layout."""

from __future__ import annotations

import click

from fraudstream.cli.errors import CommandError, handle_errors
from fraudstream.cli.settings_options import settings_from


@click.command("migrate-records")
@click.option("--force", is_flag=True, help="Move the records even though a consumer holds the learner role "
              "(the event strings are then not converted: a running consumer appends to them).")
@click.pass_context
@handle_errors
def migrate_records(ctx: click.Context, force: bool) -> None:
    """Convert what an older fraudstream kept in Redis (scored records, label markers, event strings).

    Move scored records written before the hourly record hashes (one key per transaction) into
    them, so that labels of transactions scored before an upgrade are learned, and labels' "applied"
    markers written before the marker hashes (one key per label) into the legacy marker hash, so
    that a label delivered again after the upgrade is not learned twice; then convert customers' and
    terminals' event strings of the layout before 2026-12-06 (times in ms) into the current one, and
    terminals' strings of arrival order (`:ev2`) into ones sorted by time (`:ev3`), so that
    features go on from the events seen before the upgrade. Run it once, with the
    consumers stopped (it refuses while one holds the learner role, which a running consumer of
    this version renews every few seconds); running it again moves and converts nothing."""
    from fraudstream.stream.legacy_markers import migrate_legacy_markers
    from fraudstream.stream.registry import registry_for
    from fraudstream.stream.state import open_redis_store
    from fraudstream.stream.state.migrate_state import migrate_legacy_state
    from fraudstream.stream.state.redis_records import migrate_legacy_records

    settings = settings_from(ctx)
    if not settings.redis_url:
        raise click.UsageError("set FRAUDSTREAM_REDIS_URL to the Redis the consumers use")
    store = open_redis_store(settings)
    registry = registry_for(settings, store.client)
    learner = registry.learner()
    if learner is not None and not force:
        raise CommandError(f"a consumer of this Redis is running: {learner} holds the learner role. Stop "
                           "every consumer, then run migrate-records (--force moves the records anyway)")
    moved = migrate_legacy_records(store.records, store.client)
    click.echo(f"moved {moved:,} scored records into the hourly hashes")
    markers = migrate_legacy_markers(registry)
    click.echo(f"moved {markers:,} label markers into the legacy marker hash")
    if force:
        click.echo("event strings not converted (--force: a running consumer may append to them); "
                   "run migrate-records again without --force once every consumer is stopped")
        return
    customers, terminals = migrate_legacy_state(store)
    click.echo(f"converted {customers:,} customers' and {terminals:,} terminals' event strings into the current layout")
