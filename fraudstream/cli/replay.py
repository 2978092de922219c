"""`fraudstream replay`: publish a recorded file (ours or the handbook CSV) in event-time order."""

from __future__ import annotations

import json
import logging
import threading
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import click

from fraudstream.cli.common import FiniteFloat, check_time, time_window
from fraudstream.cli.errors import CommandError, handle_errors, notice
from fraudstream.cli.settings_options import command_line, require_bootstrap, settings_from, settings_option

if TYPE_CHECKING:
    from fraudstream.producer.recorded import Span


def describe(event_time: datetime | None, rate: float, eta: float | None) -> str:
    """The progress line: replayed event time, rate and estimated time left.

    >>> describe(datetime(2018, 4, 1, 3), 51234.4, 75.0)
    'event 2018-04-01 03:00:00 | 51,234 tx/s | ETA 0:01:15'
    """
    when = event_time.strftime("%Y-%m-%d %H:%M:%S") if event_time else "-"
    left = str(timedelta(seconds=round(eta))) if eta is not None else "?"
    return f"event {when} | {rate:,.0f} tx/s | ETA {left}"


def nothing_in_window(file: str, start: str | None, end: str | None, span: Span) -> str:
    """The warning of a replay that found no transaction of `file` in its window; `span`: what it
    read of the file.

    >>> from datetime import timezone
    >>> from fraudstream.producer.recorded import Span
    >>> t = datetime(2018, 4, 1, tzinfo=timezone.utc)
    >>> nothing_in_window("f.csv", "2030-01-01", None, Span(t, t + timedelta(days=2), complete=True))
    'no transaction of f.csv is in the window --start 2030-01-01; its rows from 2018-04-01T00:00:00+00:00 to 2018-04-03T00:00:00+00:00'
    >>> nothing_in_window("f.csv", None, "2017-01-01", Span(t, t))  # the first row ended the reading
    'no transaction of f.csv is in the window --end 2017-01-01; its rows from 2018-04-01T00:00:00+00:00 on'
    >>> nothing_in_window("f.csv", None, None, Span())
    'f.csv has no transactions'
    """
    if span.first is None:
        return f"{file} has no transactions"
    window = " ".join(f"{flag} {value}" for flag, value in (("--start", start), ("--end", end)) if value)
    return f"no transaction of {file} is in the window {window}; its {span.describe()}"


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--speed", type=FiniteFloat(0.0), default=None, help="Replay X times faster than event time (gaps scaled by 1/X).")
@click.option("--as-fast-as-possible", "fast", is_flag=True, help="No pacing (the default when --speed is not given).")
@settings_option("--label-delay", "label_delay", help="Publish each label this long after its transaction (event time).")
@click.option("--start", callback=check_time, default=None, help="Replay from this event time (ISO-8601); use it to resume.")
@click.option("--end", callback=check_time, default=None, help="Stop before this event time (ISO-8601).")
@click.option("--no-final-labels", is_flag=True, help="Drop the labels still pending when the input ends.")
@click.option("--no-progress", is_flag=True, help="No progress bar (none with --log-format json).")
@click.pass_context
@handle_errors
def replay(ctx: click.Context, file: str, speed: float | None, fast: bool, start: str | None, end: str | None,
           no_final_labels: bool, no_progress: bool, **overrides: Any) -> None:
    """Publish the transactions of FILE to the transactions topic and their labels to the labels topic.

    Reads .jsonl/.csv files written by `fraudstream record` (optionally .gz) and the handbook CSV,
    detected from the header. Ctrl-C stops after flushing, prints the command that resumes (the same
    options, another --start) and exits 130 (SIGTERM: 143), so that a script does not go on as if the
    replay had finished.
    """
    from rich.progress import BarColumn, TextColumn

    from fraudstream.cli.progress import drawn, progress_bar
    from fraudstream.kafka_io import ensure_topics
    from fraudstream.producer.file_end import last_event_time
    from fraudstream.producer.replay import AheadOfNowError, DeliveryFailed, ReplayStats, RowFailed
    from fraudstream.producer.replay import replay as run_replay
    from fraudstream.stream.signals import stop_on_signals

    if fast and speed is not None:
        raise click.UsageError("use either --speed or --as-fast-as-possible")
    settings = settings_from(ctx, **overrides)
    require_bootstrap(settings)
    begin, finish = time_window(start, end)
    ensure_topics(settings, [settings.topic_transactions, settings.topic_labels])
    stop = threading.Event()
    progress = progress_bar(settings, TextColumn("{task.description}"), BarColumn(), shown=not no_progress)
    task = progress.add_task(describe(None, 0.0, None), total=None)
    # where the bar ends: --end, else the file's last event time (read only when a bar is drawn)
    until = finish if finish is not None or not drawn(settings, not no_progress) else last_event_time(file)
    origin: list[datetime] = []

    def on_progress(stats: ReplayStats) -> None:
        eta = None
        if stats.event_time is not None:
            if not origin:
                origin.append(begin or stats.event_time)
            if until is not None and speed is not None:
                eta = max((until - stats.event_time).total_seconds() / speed, 0.0)
            if until is not None:
                span = (until - origin[0]).total_seconds()
                done = (stats.event_time - origin[0]).total_seconds()
                progress.update(task, total=max(span, 1.0), completed=done)
                if eta is None and done > 0:
                    eta = stats.seconds * (span - done) / done
        progress.update(task, description=describe(stats.event_time, stats.rate, eta))

    with progress, stop_on_signals(stop) as received:
        try:
            stats = run_replay(settings, file, speed=speed, start=begin, end=finish, stop=stop,
                               on_progress=on_progress, final_labels=not no_final_labels)
        except (RowFailed, AheadOfNowError) as exc:  # the resume command with the user's other options too
            at = exc.resume_from.isoformat()
            hint = command_line(ctx, start=at)
            raise CommandError(str(exc).replace(f"resume with --start {at}", f"resume with: {hint}", 1)) from exc
        except DeliveryFailed as exc:  # the hint with the user's other options (an --end, say), as on Ctrl-C
            hint = command_line(ctx, start=exc.resume_from.isoformat())
            raise CommandError(f"{exc.cause}; the first {exc.delivered:,} transactions (up to "
                               f"{exc.resume_from.isoformat()}) and their labels due by then were delivered: once "
                               f"the broker is back, resume with: {hint}") from exc
    summary = {"transactions": stats.transactions, "labels": stats.labels, "seconds": round(stats.seconds, 3),
               "rate": round(stats.rate, 1), "last_event_time": stats.event_time.isoformat() if stats.event_time else None}
    if stats.labels_not_sent:
        summary["labels_not_sent"] = stats.labels_not_sent
    if stats.resume_from is not None:
        summary["resume_from"] = stats.resume_from.isoformat()
        hint = command_line(ctx, start=stats.resume_from.isoformat())  # the user's other options as given
        notice(f"stopped; resume with: {hint}", logging.INFO)
    if stats.transactions == 0 and not stats.stopped:
        message = nothing_in_window(file, start, end, stats.file_span)
        notice(f"Warning: {message}", logging.WARNING)
    click.echo(json.dumps(summary))
    if stats.resume_from is not None:  # stopped before the end of the window
        ctx.exit(received.exit_code)
