"""`fraudstream prune-state`: delete the feature state of the customers and terminals that stopped
transacting (their keys have no time to live)."""

from __future__ import annotations

from datetime import datetime, timedelta

import click

from fraudstream.cli.common import check_time
from fraudstream.cli.errors import handle_errors
from fraudstream.cli.settings_options import settings_from
from fraudstream.timeutil import parse_time


@click.command("prune-state")
@click.option("--before", default=None, callback=check_time, metavar="TIME",
              help="Prune as of this event time (ISO-8601) [default: the event time every partition the "
                   "consumers recorded in this Redis has reached: the slowest one's].")
@click.option("--force", is_flag=True, help="Prune as of a --before more than a day after the newest event time "
              "the consumers recorded (which would delete the state of customers still transacting).")
@click.pass_context
@handle_errors
def prune_state(ctx: click.Context, before: str | None, force: bool) -> None:
    """Delete the feature state of customers and terminals with no event in their retention.

    A customer's and a terminal's events are kept in Redis without a time to live (they are cut
    when written), so a card that is never used again, or a closed merchant's terminal, keeps its
    last events for ever. This deletes the keys of every customer whose newest event is more than
    its retention (30 days and the allowed lateness) and 6 hours older than --before, and of every
    terminal whose newest event or fraud mark is more than its retention (37 days, or the label
    delay and a day if longer, and the allowed lateness) and 6 hours older: nothing a later
    transaction's features would count. The retentions are this command's settings: run it with the
    consumers' FRAUDSTREAM_LABEL_DELAY and FRAUDSTREAM_ALLOWED_LATENESS. Safe while consumers run
    (each entity is checked and deleted at once); run it now and then, e.g. daily."""
    from fraudstream.stream.newest_times import partitions_recorded
    from fraudstream.stream.state import open_redis_store
    from fraudstream.stream.state.prune_state import prune_idle_state

    settings = settings_from(ctx)
    if not settings.redis_url:
        raise click.UsageError("set FRAUDSTREAM_REDIS_URL to the Redis the consumers use")
    store = open_redis_store(settings)
    recorded = partitions_recorded(store.client, store.prefix)
    now = _as_of(parse_time(before) if before else None, min(recorded, default=None), max(recorded, default=None),
                 force)
    pruned = prune_idle_state(store, now)
    click.echo(f"deleted the state of {pruned.customers:,} of {pruned.customers_scanned:,} customers and "
               f"{pruned.terminals:,} of {pruned.terminals_scanned:,} terminals (no event in their retention "
               f"before {now.isoformat()})")


def _as_of(before: datetime | None, slowest: datetime | None, newest: datetime | None, force: bool) -> datetime:
    """The event time to prune as of: `before`, or else the `slowest` partition's newest event time
    the consumers recorded (a customer of a partition behind the others still counts the events of
    the retention before that partition's time: pruned as of the newest partition's, its state would
    go while its windows still count it). Time in Redis is event time: a replay of 2018's data pruned
    as of today's clock would lose every customer's state, so a `before` more than a day after the
    `newest` the consumers have seen is refused unless `force`, and with neither known there is
    nothing to go by."""
    if before is None:
        if slowest is None:
            raise click.UsageError("no consumer has recorded an event time in this Redis (none ran in the last 30 "
                                   "days): give --before, the newest event time of the transactions")
        return slowest
    if newest is not None and before - newest > timedelta(days=1) and not force:
        raise click.UsageError(f"--before {before.isoformat()} is more than a day after the newest event time the "
                               f"consumers recorded ({newest.isoformat()}): the customers still transacting would lose "
                               "their state; leave --before out, or give --force")
    return before
