"""`fraudstream prune-state`: delete the feature state of the customers and terminals that stopped
transacting (their keys have no time to live)."""

from __future__ import annotations

from datetime import datetime, timezone

import click

from fraudstream.cli.common import check_time
from fraudstream.cli.errors import handle_errors
from fraudstream.cli.settings_options import settings_from
from fraudstream.timeutil import parse_time


@click.command("prune-state")
@click.option("--before", default=None, callback=check_time, metavar="TIME",
              help="Prune as of this event time (ISO-8601) [default: now; give the newest event time when the "
                   "consumers run on data of the past, e.g. a replay of the handbook].")
@click.pass_context
@handle_errors
def prune_state(ctx: click.Context, before: str | None) -> None:
    """Delete the feature state of customers and terminals with no event in their retention.

    A customer's and a terminal's events are kept in Redis without a time to live (they are cut
    when written), so a card that is never used again, or a closed merchant's terminal, keeps its
    last events for ever. This deletes the keys of every customer whose newest event is more than
    its retention (30 days and the allowed lateness) and 6 hours older than --before, and of every
    terminal whose newest event or fraud mark is more than its retention (37 days and the allowed
    lateness) and 6 hours older: nothing a later transaction's features would count. Safe while
    consumers run (each entity is checked and deleted at once); run it now and then, e.g. daily."""
    from fraudstream.stream.state import open_redis_store
    from fraudstream.stream.state.prune_state import prune_idle_state

    settings = settings_from(ctx)
    if not settings.redis_url:
        raise click.UsageError("set FRAUDSTREAM_REDIS_URL to the Redis the consumers use")
    now = parse_time(before) if before else datetime.now(timezone.utc)
    pruned = prune_idle_state(open_redis_store(settings), now)
    click.echo(f"deleted the state of {pruned.customers:,} of {pruned.customers_scanned:,} customers and "
               f"{pruned.terminals:,} of {pruned.terminals_scanned:,} terminals (no event in their retention "
               f"before {now.isoformat()})")
