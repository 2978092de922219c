"""`fraudstream features`: the feature vector of every transaction of a file, as scored live.

Transactions are taken in file (event-time) order through the same `FeatureEngine` as the consumer,
on an in-memory store; each label arrives `--label-delay` after its transaction and is applied
before any transaction at or after that instant, like the consumer sees it.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from collections import deque
from collections.abc import Iterable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import click

from fraudstream.cli.common import check_time, checked_out, time_window
from fraudstream.cli.errors import handle_errors
from fraudstream.cli.settings_options import settings_from, settings_option
from fraudstream.models.events import Label, Transaction
from fraudstream import outputs

log = logging.getLogger(__name__)

BATCH = 256  # transactions per transform call (labels due in between split a batch)
REPEATED: dict[str, float] = {}  # `features_as_scored`'s features of a repeated row (compared by identity)


def features_as_scored(records: Iterable[Any], engine: Any, label_delay: timedelta,
                       batch: int = BATCH) -> Iterator[tuple[Transaction, dict[str, float] | None]]:
    """(transaction, features) for each `Recorded` in order; None for a reused transaction id,
    `REPEATED` for a row that repeats an earlier transaction (not scored twice by a consumer).

    Labels (from the records' fraud flags) are applied once `label_delay` has passed in event time,
    before the first transaction at or after their report time.

    >>> from datetime import datetime, timezone
    >>> from fraudstream.producer.recorded import Recorded
    >>> from fraudstream.stream.features import FeatureEngine
    >>> from fraudstream.stream.state import MemoryStore
    >>> t0 = datetime(2018, 4, 1, tzinfo=timezone.utc)
    >>> recs = [Recorded(Transaction(transaction_id=str(i), customer_id=str(i), terminal_id="m", amount=1.0,
    ...                              event_time=t0 + timedelta(days=i)), i == 0, None) for i in range(9)]
    >>> rows = list(features_as_scored(recs, FeatureEngine(MemoryStore()), timedelta(days=7)))
    >>> [x["TERMINAL_ID_RISK_1DAY_WINDOW"] for _, x in rows][6:]   # the fraud of day 0 counts from day 7
    [0.0, 1.0, 0.0]
    """
    from fraudstream.producer.recorded import labels_for

    pending: deque[Label] = deque()
    chunk: list[Transaction] = []
    for rec in records:
        tx = rec.transaction
        if pending and pending[0].reported_at <= tx.event_time:
            if chunk:
                yield from _featurised(chunk, engine)
                chunk = []
            due = []
            while pending and pending[0].reported_at <= tx.event_time:
                due.append(pending.popleft())
            engine.apply_labels(due)
        chunk.append(tx)
        label = labels_for(rec, label_delay)
        if label is not None:
            pending.append(label)
        if len(chunk) >= batch:
            yield from _featurised(chunk, engine)
            chunk = []
    if chunk:
        yield from _featurised(chunk, engine)


def _featurised(chunk: list[Transaction], engine: Any) -> Iterator[tuple[Transaction, dict[str, float] | None]]:
    """The chunk's transactions with their features (None: a reused id); a row repeating a transaction
    the file held before (`FeatureEngine.transform_seen`) with `REPEATED`."""
    features, seen = engine.transform_seen(chunk)
    for tx, x, again in zip(chunk, features, seen):
        yield tx, REPEATED if again else x


def show_progress(progress: Any, task: Any, tx: Transaction, written: int, began: float) -> None:
    """The spinner's line: the newest event time written, the count, the rate so far."""
    rate = written / max(time.monotonic() - began, 1e-9)
    progress.update(task, description=f"event {tx.event_time:%Y-%m-%d %H:%M:%S} | {written:,} transactions | "
                                      f"{rate:,.0f} tx/s")


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
              help="Output CSV (.csv or .csv.gz): TRANSACTION_ID and one column per feature.")
@settings_option("--label-delay", "label_delay", help="Each label arrives this long after its transaction (event time).")
@click.option("--start", callback=check_time, default=None,
              help="Only the transactions from this event time on: a slice of the file, whose features start empty "
                   "there (start 30 days earlier for warm 30-day windows) [default: the first row].")
@click.option("--end", callback=check_time, default=None, help="Only the transactions before this event time (ISO-8601).")
@click.option("--no-progress", is_flag=True, help="No progress bar (none with --log-format json).")
@click.pass_context
@handle_errors
def features(ctx: click.Context, file: str, out: str, start: str | None, end: str | None, no_progress: bool,
             **overrides: Any) -> None:
    """Compute the feature vector of every transaction of FILE as the consumer scores it.

    FILE is a recorded .jsonl/.csv (optionally .gz) or the handbook CSV, in event-time order. The
    handbook features keep the handbook's column names. Labels come from the file's fraud column.
    """
    from rich.progress import SpinnerColumn, TextColumn

    from fraudstream.cli.progress import progress_bar
    from fraudstream.cli.replay import nothing_in_window
    from fraudstream.producer.files import read_recorded
    from fraudstream.producer.recorded import Span
    from fraudstream.stream.features import FEATURE_NAMES, FeatureConfig, FeatureEngine
    from fraudstream.stream.state import MemoryStore, windows_for

    _, compressed = checked_out(out, kinds=("csv",))  # the check of `fraudstream record`
    begin, finish = time_window(start, end)
    settings = settings_from(ctx, **overrides)
    target = Path(out)
    if target.resolve() == Path(file).resolve():
        raise click.BadParameter(f"{out} is the input FILE: write the features to another file", param_hint="--out")
    engine = FeatureEngine(MemoryStore(windows_for(settings)), FeatureConfig.from_settings(settings))
    span = Span()
    records = read_recorded(file, start=begin, end=finish, span=span)  # checks the header before anything is written
    written = reused = repeated = 0
    began = time.monotonic()
    progress = progress_bar(settings, SpinnerColumn(), TextColumn("{task.description}"), shown=not no_progress)
    task = progress.add_task(f"reading {file}", total=None)
    with outputs.written(target) as partial, progress, outputs.open_text(partial, target, compressed, 3) as stream:
        writer = csv.writer(stream)
        writer.writerow(["TRANSACTION_ID", *FEATURE_NAMES])
        for tx, x in features_as_scored(records, engine, settings.label_delay):
            if x is None:
                reused += 1
                log.warning("transaction id %s reused with other content: skipped", tx.transaction_id)
                continue
            if x is REPEATED:
                repeated += 1
                log.warning("transaction %s repeated (the same id and content): skipped", tx.transaction_id)
                continue
            writer.writerow([tx.transaction_id, *[x[name] for name in FEATURE_NAMES]])
            written += 1
            if written % 2_000 == 0:  # rich redraws ~10 times a second
                show_progress(progress, task, tx, written, began)
        if written:  # the last frame shows the whole file, however small
            show_progress(progress, task, tx, written, began)
    if not written:  # a file of a header only too, as `replay` warns
        log.warning(nothing_in_window(file, start, end, span))
    seconds = time.monotonic() - began
    click.echo(json.dumps({"transactions": written, "skipped_reused_ids": reused,
                           "skipped_repeated_rows": repeated, "out": str(target),
                           "seconds": round(seconds, 3), "rate": round(written / max(seconds, 1e-9), 1)}))
