"""`fraudstream backtest FILE`: replay a recorded file through the live feature and scoring code."""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
from pathlib import Path
from typing import Any

import click

from fraudstream.cli.backtest_model import (described, not_learned, save_model, start_model,
                                               warn_if_evaluated_on_learned)
from fraudstream.cli.common import FiniteFloat, check_time, require_directory, separate_outputs
from fraudstream.cli.errors import handle_errors
from fraudstream.cli.settings_options import settings_from, settings_option
from fraudstream.cli.progress import drawn
from fraudstream.config import Settings
from fraudstream.errors import ConfigError
from fraudstream.outputs import write_text, written
from fraudstream.stream.learned_spans import LearnedSpans

log = logging.getLogger(__name__)


def count_rows(path: Path) -> int | None:
    """Data rows of a CSV/JSON-lines file (non-empty lines, minus a CSV header), for the progress bar.

    >>> import tempfile, os
    >>> p = Path(tempfile.mkdtemp()) / "a.csv"
    >>> _ = p.write_text("h1,h2\\n1,2\\n3,4")
    >>> count_rows(p)
    2
    >>> import shutil; shutil.rmtree(p.parent)
    """
    from fraudstream.producer.file_text import open_bytes

    try:
        with open_bytes(path) as stream:
            first = stream.readline()
            lines, last = 0, b"\n"
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                lines += chunk.count(b"\n")
                last = chunk[-1:]
        lines += last != b"\n"
        return lines + (1 if first.lstrip().startswith(b"{") else 0)
    except (OSError, EOFError):  # unreadable or truncated: the reader reports it
        return None


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@settings_option("--label-delay", "label_delay", help="Delay after which a transaction's label is known (e.g. 7d).")
@click.option("--start", callback=check_time, default=None,
              help="Replay only from this event time on: a slice of the file, whose features start empty there "
                   "[default: the first row].")
@click.option("--eval-start", callback=check_time, default=None, help="First day of the evaluation window [default: first day + 30 d].")
@click.option("--eval-end", callback=check_time, default=None, help="Last day of the evaluation window, inclusive; at most the last day with transactions [default: last day].")
@settings_option("--model", "model")
@settings_option("--seed", "seed", type=int)
@settings_option("--threshold", "alert_threshold", type=FiniteFloat(0.0, inclusive=True, maximum=1.0))
@click.option("--alerts-per-day", "alerts_per_day", type=FiniteFloat(0.0), default=None,
              help="An alert budget: also report the threshold at which the window's alerts average at most this "
                   "many a day, and what it catches (JSON \"budget\").")
@click.option("--redis", "redis_url", default=None, help="Keep feature state in this Redis instead of in memory (under a key prefix of its own, deleted after the run).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), help="Write the figures as JSON.")
@click.option("--scores", "scores_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write transaction_id,score for every transaction of the evaluation window.")
@click.option("--report", "report_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a self-contained HTML report with plots.")
@click.option("--save-model", "model_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the trained model as a signed checkpoint.")
@click.option("--from-model", "model_in", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Start from this signed checkpoint (`models export`, `backtest --save-model`) instead of a fresh "
                   "model: its kind is the model. To validate it on later data before `models import`.")
@click.option("--learn/--no-learn", default=True,
              help="Learn from each label as it falls due, as the live consumers do [default: --learn]; "
                   "--no-learn scores with the --from-model checkpoint as it is.")
@click.option("--learn-after", callback=check_time, default=None,
              help="Learn only the labels of transactions after this event time; the earlier ones only warm the "
                   "features [default: every label but those of the transactions a --from-model checkpoint of a "
                   "backtest learned (it records them), so none is learned twice].")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar on stderr (none with --log-format json).")
@click.pass_context
@handle_errors
def backtest(ctx: click.Context, file: Path, start: str | None, eval_start: str | None, eval_end: str | None,
             alerts_per_day: float | None, redis_url: str | None,
             json_out: Path | None, scores_out: Path | None, report_out: Path | None, model_out: Path | None,
             model_in: Path | None, learn: bool, learn_after: str | None, progress: bool, **overrides: Any) -> None:
    """Replay FILE (our .jsonl/.csv or the handbook CSV, optionally .gz) in event-time order: features,
    score, and learning from each label once event time passes its time plus the label delay.

    Prints the handbook's prequential figures (weekly AUC ROC, average precision, card precision@100,
    averaged over 7-day weeks from --eval-start; a last, shorter week counts as one) as JSON; the --json
    file also has "weeks", each week's dates and figures. With --alerts-per-day, "budget": the threshold
    of that many alerts a day over the window and its figures there, and held out (README, "Backtest figures").
    """
    from fraudstream.stream.backtest import BacktestOptions, run_backtest
    from fraudstream.stream.features import FeatureConfig, FeatureEngine
    from fraudstream.models.events import MAX_EVENT_TIME
    from fraudstream.timeutil import epoch_us, parse_time

    settings = settings_from(ctx, **overrides)
    started = start_model(model_in, learn, learn_after, model_out, overrides.get("model"), settings)
    header = started.info if started else None
    options = BacktestOptions(
        model=header.kind if header else settings.model, seed=settings.seed,
        label_delay=settings.label_delay, learn=learn,
        not_learned=not_learned(learn_after, header) if learn else LearnedSpans.up_to(epoch_us(MAX_EVENT_TIME)),
        start_model=described(header, model_in) if header else None,
        start=parse_time(start) if start else None,
        eval_start=parse_time(eval_start).date() if eval_start else None,
        eval_end=parse_time(eval_end).date() if eval_end else None,
        threshold=settings.alert_threshold,
    )
    from fraudstream.models import zoo

    if started is None:
        zoo.make_model(options.model, options.seed)  # unknown names fail before any reading
    outputs = {"--json": json_out, "--scores": scores_out, "--report": report_out, "--save-model": model_out}
    for option, path in outputs.items():
        if path is not None:  # not after a replay of many minutes
            require_directory(path, option)
    separate_outputs(file, outputs)
    _check_window(options, file)
    store = _store(settings, redis_url)
    engine = FeatureEngine(store, FeatureConfig.from_settings(settings))
    try:
        model = started.model if started else None
        if drawn(settings, progress):  # else no bar, nor the row count it needs
            result = _with_progress(file, options, engine, settings, model)
        else:
            result = run_backtest(file, options, engine, model=model)
    finally:
        if redis_url is not None:
            _drop_state(store)
    if header is not None:
        warn_if_evaluated_on_learned(header, result.eval_start, result.eval_end)
    summary = _json_safe({"file": str(file), **result.summary()})
    if alerts_per_day is not None:
        from fraudstream.models.alert_budget import budget_report

        summary["budget"] = _json_safe(budget_report(*result.window_arrays(), *result.window_days, alerts_per_day))
    if summary["n_window_frauds_unreported"]:
        log.warning("%s frauds of the evaluation window were never reported (their fraud_scenario says fraud, their "
                    "label genuine: recorded with --report-share below 1); every figure counts them as genuine, as "
                    "the live model would see them (n_window_frauds_unreported)",
                    f"{summary['n_window_frauds_unreported']:,}")
    if json_out:
        write_text(json_out, json.dumps(summary, indent=2) + "\n")
    if scores_out:
        _write_scores(scores_out, result)
    if model_out:  # before the report: the model is the run's costliest result
        save_model(model_out, result, settings, header)
    if report_out:
        _write_report(report_out, result, summary)
    brief = {k: v for k, v in summary.items() if k != "weeks"}
    if "budget" in brief:  # its weeks too are in the --json file only
        brief["budget"] = {k: v for k, v in brief["budget"].items() if k != "weeks"}
    click.echo(json.dumps(brief))


def _store(settings: Any, redis_url: str | None) -> Any:
    from fraudstream.stream.state import MemoryStore, open_redis_store, windows_for

    if redis_url is None:
        return MemoryStore(windows_for(settings))
    import uuid

    from fraudstream.cli.settings_options import load_settings

    # a key prefix of its own, never the live consumers' state (deleted after the run, `_drop_state`)
    prefix = f"{settings.redis_key_prefix}:backtest:{uuid.uuid4().hex[:8]}"
    log.info("feature state in Redis under the key prefix %s, deleted after the backtest", prefix)
    return open_redis_store(load_settings({"redis_url": redis_url, "redis_key_prefix": prefix}, base=settings),
                            windows_for(settings))


def _drop_state(store: Any) -> None:
    """Delete every key of a backtest's Redis store (its prefix is its own)."""
    from fraudstream.stream.state.redis_records import glob_escaped, scanned_in_chunks

    for keys in scanned_in_chunks(store.client, f"{glob_escaped(store.prefix)}:*", 1000):
        store.client.delete(*keys)  # a cluster client splits it by hash slot


def _check_window(options: Any, file: Path) -> None:
    """Before the replay (not after minutes of it): a `ConfigError` for an evaluation window that
    starts after the data's last day (found by `file_end.last_event_time`, without parsing the rows) or
    ends before the replay's first day,
    and a warning when the replay starts (at --start or the file's first row) less than the longest
    feature window before the evaluation window, whose first days are then scored with features that
    have not seen a whole window yet. `evaluate` checks the window again on what was replayed."""
    from fraudstream.producer.file_end import last_event_time
    from fraudstream.producer.files import read_recorded
    from fraudstream.stream.backtest import DEFAULT_WARMUP

    rows = read_recorded(file)
    with contextlib.closing(rows):
        first = next(rows, None)
    if first is None:
        return
    begin, since = first.transaction.event_time.date(), "the data's first day"
    if options.start is not None and options.start.date() >= begin:
        begin, since = options.start.date(), "--start"
    if options.eval_end is not None and options.eval_end < begin:  # nothing to score: say so, not after a replay
        raise ConfigError(f"--eval-end {options.eval_end} is before {since} ({begin}): the evaluation window "
                          "holds no transaction")
    last = last_event_time(file)
    past_the_end = last is not None and options.start is not None and options.start.date() > last.date()
    if last is not None and not past_the_end:  # a --start past the data: the replay says what the file holds
        last_day = last.date()
        if options.eval_start is not None and options.eval_start > last_day:
            raise ConfigError(f"--eval-start {options.eval_start} is after the data's last day, {last_day}")
        if options.eval_start is None and begin + DEFAULT_WARMUP > last_day:
            after = "its first day" if since == "the data's first day" else since
            raise ConfigError(f"the data holds {first.transaction.event_time.date()}..{last_day}: the default "
                              f"evaluation start, {DEFAULT_WARMUP.days} days after {after} ({begin + DEFAULT_WARMUP}), "
                              "is after its end; give --eval-start (the features then have less history) or a longer file")
    if options.eval_start is None:  # the default evaluation start is a whole window after the replay's
        return
    warm = options.eval_start - begin
    if warm < DEFAULT_WARMUP:
        log.warning("--eval-start is %s %s (%s): the first days of the window are scored with features that have "
                    "not seen %d days yet (start the replay earlier)",
                    f"{warm.days} day{'s' if warm.days > 1 else ''} after" if warm.days > 0 else "not after", since, begin, DEFAULT_WARMUP.days)


def _with_progress(file: Path, options: Any, engine: Any, settings: Settings, model: Any = None) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from fraudstream.cli.progress import progress_bar
    from fraudstream.stream.backtest import run_backtest

    total = count_rows(file)
    columns = (TextColumn("[bold]backtest[/] {task.fields[when]}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]:>7} tx/s"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    # shown once the feature worker is forked (`run_backtest`'s `forked`): rich's refresh thread, which holds
    # the console's lock as it draws (logging to the console takes it), must not run at the fork
    bar = progress_bar(settings, *columns)
    task = bar.add_task("replay", total=total, when="", rate="")

    def update(done: int, when: Any) -> None:
        elapsed = bar.tasks[0].elapsed or 0.0
        bar.update(task, completed=done, when=when.strftime("%Y-%m-%d %H:%M"),
                   rate=f"{done / elapsed:,.0f}" if elapsed > 0 else "")

    try:
        result = run_backtest(file, options, engine, progress=update, model=model, forked=bar.start)
        done = len(result.replay.scores)  # fewer than the file's rows after --start or before --eval-end's stop
        bar.update(task, total=done, completed=done)
    finally:
        if bar.live.is_started:
            bar.stop()
    return result


def _write_scores(path: Path, result: Any) -> None:
    import numpy as np

    ids = result.replay.transaction_ids
    scores = np.frombuffer(result.replay.scores, dtype=np.float64)
    with written(path) as partial, partial.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["transaction_id", "score"])
        for i in np.flatnonzero(result.window):
            writer.writerow([ids[i], repr(float(scores[i]))])


def _write_report(path: Path, result: Any, summary: dict[str, Any]) -> None:
    import numpy as np

    from fraudstream.models.report import ReportData, render_html

    kept = result.metrics.kept
    days = np.asarray(result.replay.days, dtype=np.int64)
    daily = [(day, cp) for w in result.metrics.weeks for day, cp in zip(w.days_with_transactions, w.daily_card_precision)]
    data = ReportData(summary=summary, labels=np.frombuffer(result.replay.labels, dtype=np.int8)[kept],
                      scores=np.frombuffer(result.replay.scores, dtype=np.float64)[kept], days=days[kept],
                      daily_card_precision=daily, threshold=result.options.threshold)
    write_text(path, render_html(data))
