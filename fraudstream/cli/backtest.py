"""`fraudstream backtest FILE`: replay a recorded file through the live feature and scoring code."""

from __future__ import annotations

import csv
import gzip
import json
import logging
import math
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import click

from fraudstream.cli.common import check_time, handle_errors, require_directory, settings_from, settings_option

log = logging.getLogger(__name__)


def count_rows(path: Path) -> int | None:
    """Data rows of a CSV/JSON-lines file (non-empty lines, minus a CSV header), for the progress bar.

    >>> import tempfile, os
    >>> p = Path(tempfile.mkdtemp()) / "a.csv"
    >>> _ = p.write_text("h1,h2\\n1,2\\n3,4")
    >>> count_rows(p)
    2
    """
    try:
        with path.open("rb") as probe:
            gz = probe.read(2) == b"\x1f\x8b"
        opener = gzip.open if gz else open
        with opener(path, "rb") as stream:  # type: ignore[operator]
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
@click.option("--eval-end", callback=check_time, default=None, help="Last day of the evaluation window, inclusive [default: last day].")
@settings_option("--model", "model")
@settings_option("--seed", "seed", type=int)
@settings_option("--threshold", "alert_threshold", type=float)
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
                   "features [default: with --from-model, the checkpoint's last learned transaction if a "
                   "backtest wrote it, so nothing is learned twice; else every label].")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar on stderr.")
@click.pass_context
@handle_errors
def backtest(ctx: click.Context, file: Path, start: str | None, eval_start: str | None, eval_end: str | None,
             redis_url: str | None,
             json_out: Path | None, scores_out: Path | None, report_out: Path | None, model_out: Path | None,
             model_in: Path | None, learn: bool, learn_after: str | None, progress: bool, **overrides: Any) -> None:
    """Replay FILE (our .jsonl/.csv or the handbook CSV, optionally .gz) in event-time order: features,
    score, and learning from each label once event time passes its time plus the label delay.

    Prints the handbook's prequential figures (weekly AUC ROC, average precision, card precision@100,
    averaged over 7-day weeks from --eval-start; a last, shorter week counts as one, and the JSON's
    "weeks" give each week's dates) as JSON.
    """
    from fraudstream.stream.backtest import BacktestOptions, run_backtest
    from fraudstream.stream.features import FeatureConfig, FeatureEngine
    from fraudstream.timeutil import parse_time

    settings = settings_from(ctx, **overrides)
    start_model = _start_model(model_in, learn, learn_after, model_out, overrides.get("model"), settings)
    options = BacktestOptions(
        model=start_model.info.kind if start_model else settings.model, seed=settings.seed,
        label_delay=settings.label_delay, learn=learn,
        learn_after=_learn_after(learn_after, start_model) if learn else None,
        start_model=_described(start_model.info, model_in) if start_model else None,
        start=parse_time(start) if start else None,
        eval_start=parse_time(eval_start).date() if eval_start else None,
        eval_end=parse_time(eval_end).date() if eval_end else None,
        threshold=settings.alert_threshold,
    )
    _warn_if_cold(options)
    from fraudstream.models import zoo

    if start_model is None:
        zoo.make_model(options.model, options.seed)  # unknown names fail before any reading
    for option, path in (("--json", json_out), ("--scores", scores_out), ("--report", report_out),
                         ("--save-model", model_out)):
        if path is not None:  # not after a replay of many minutes
            require_directory(path, option)
    store = _store(settings, redis_url)
    engine = FeatureEngine(store, FeatureConfig.from_settings(settings))
    try:
        model = start_model.model if start_model else None
        if progress:
            result = _with_progress(file, options, engine, model)
        else:
            result = run_backtest(file, options, engine, model=model)
    finally:
        if redis_url is not None:
            _drop_state(store)
    summary = _json_safe(result.summary())
    if json_out:
        json_out.write_text(json.dumps(summary, indent=2) + "\n")
    if scores_out:
        _write_scores(scores_out, result)
    if report_out:
        _write_report(report_out, result, summary)
    if model_out:
        _save_model(model_out, result, settings, start_model.info if start_model else None)
    brief = {k: v for k, v in summary.items() if k != "weeks"}
    click.echo(json.dumps(brief))


def _store(settings: Any, redis_url: str | None) -> Any:
    from fraudstream.stream.state import MemoryStore, open_redis_store, windows_for

    if redis_url is None:
        return MemoryStore(windows_for(settings))
    import uuid

    from fraudstream.cli.common import load_settings

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


def _warn_if_cold(options: Any) -> None:
    """A slice that starts less than the longest feature window before its evaluation window scores
    that window's first days with features that have not seen a whole window yet."""
    from fraudstream.stream.backtest import DEFAULT_WARMUP

    if options.start is not None and options.eval_start is not None:
        warm = options.eval_start - options.start.date()
        if warm < DEFAULT_WARMUP:
            log.warning("--eval-start is %d days after --start: the first days of the window are scored with "
                        "features that have not seen %d days yet (start the slice earlier)", warm.days,
                        DEFAULT_WARMUP.days)


def _signing_key(settings: Any) -> str:
    import os

    key = getattr(settings, "model_signing_key", None)
    return key.get_secret_value() if key is not None else os.environ.get("FRAUDSTREAM_MODEL_SIGNING_KEY", "")


def _start_model(path: Path | None, learn: bool, learn_after: str | None, model_out: Path | None,
                 model_option: str | None, settings: Any) -> Any:
    """The verified checkpoint of `--from-model` (None without it), after the options' checks."""
    from fraudstream.errors import ConfigError
    from fraudstream.models.checkpoint import load_file

    if path is None:
        if not learn:
            raise ConfigError("--no-learn needs --from-model: a fresh model that never learns scores every "
                              "transaction alike")
        return None
    if not learn and model_out is not None:
        raise ConfigError("--save-model with --no-learn would write the --from-model checkpoint back unchanged")
    if not learn and learn_after is not None:
        raise ConfigError("--learn-after has no effect with --no-learn")
    checkpoint = load_file(path, _signing_key(settings))
    if model_option is not None and model_option != checkpoint.info.kind:
        raise ConfigError(f"--model {model_option} differs from the kind of --from-model {path}: "
                          f"{checkpoint.info.kind} (leave --model out)")
    log.info("starting from %s", _described(checkpoint.info, path))
    return checkpoint


def _learn_after(given: str | None, checkpoint: Any) -> datetime | None:
    """The time after which labels are learned: `--learn-after`, else what the checkpoint of a
    backtest learned up to (a live or imported version does not say: the consumers learn from a label
    stream, whatever its times, and the header they copy on may hold an older backtest's)."""
    from fraudstream.timeutil import parse_time

    until = None
    if checkpoint is not None and checkpoint.info.source == "backtest" and checkpoint.info.extra.get("learned_until"):
        until = parse_time(checkpoint.info.extra["learned_until"])
    if given is not None:
        chosen = parse_time(given)
        if until is not None and chosen < until:
            log.warning("--learn-after %s is before %s, the checkpoint's last learned transaction: the labels "
                        "between them are learned a second time", given, until.isoformat())
        return chosen
    if checkpoint is None:
        return None
    if until is None:
        log.info("the checkpoint (%s) does not say which transactions it learned: every label of the replay is "
                 "learned (--learn-after to leave some out)", checkpoint.info.source)
    else:
        log.info("labels of transactions up to %s are not learned again (the checkpoint learned them; "
                 "--learn-after changes it)", until.isoformat())
    return until


def _described(info: Any, path: Path | None) -> str:
    """>>> from fraudstream.models.checkpoint import CheckpointInfo
    >>> _described(CheckpointInfo("gbt_window", "gbt_window", 7, labels_learned=12000), Path("c.fsmodel"))
    'gbt_window v7 (gbt_window, 12,000 labels learned) from c.fsmodel'
    """
    return f"{info.name} v{info.version} ({info.kind}, {info.labels_learned:,} labels learned) from {path}"


def _with_progress(file: Path, options: Any, engine: Any, model: Any = None) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from fraudstream.stream.backtest import run_backtest

    total = count_rows(file)
    columns = (TextColumn("[bold]backtest[/] {task.fields[when]}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]:>7} tx/s"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task("replay", total=total, when="", rate="")

        def update(done: int, when: Any) -> None:
            elapsed = bar.tasks[0].elapsed or 0.0
            bar.update(task, completed=done, when=when.strftime("%Y-%m-%d %H:%M"),
                       rate=f"{done / elapsed:,.0f}" if elapsed > 0 else "")

        result = run_backtest(file, options, engine, progress=update, model=model)
        bar.update(task, completed=total or len(result.replay.scores))
    return result


def _write_scores(path: Path, result: Any) -> None:
    import numpy as np

    ids = result.replay.transaction_ids
    scores = np.frombuffer(result.replay.scores, dtype=np.float64)
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["transaction_id", "score"])
        for i in np.flatnonzero(result.window):
            writer.writerow([ids[i], repr(float(scores[i]))])


def _write_report(path: Path, result: Any, summary: dict[str, Any]) -> None:
    import numpy as np

    from fraudstream.models.report import ReportData, render_html

    kept = result.metrics.kept
    days = np.asarray(result.replay.days, dtype=np.int64)
    daily = [(w.start + i, cp) for w in result.metrics.weeks for i, cp in enumerate(w.daily_card_precision)]
    data = ReportData(summary=summary, labels=np.frombuffer(result.replay.labels, dtype=np.int8)[kept],
                      scores=np.frombuffer(result.replay.scores, dtype=np.float64)[kept], days=days[kept],
                      daily_card_precision=daily, threshold=result.options.threshold)
    path.write_text(render_html(data), encoding="utf-8")


def _save_model(path: Path, result: Any, settings: Any, started: Any = None) -> None:
    """The trained model as a signed checkpoint; one that started from a checkpoint (`started`) keeps
    its name and counts its labels on from it."""
    from fraudstream.models.checkpoint import CheckpointInfo, save_file, warn_if_demo_key

    def epoch_time(us: int) -> datetime:
        return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=us)

    key = _signing_key(settings)
    warn_if_demo_key(key, log)
    if result.replay.n_labels_learned == 0:
        log.warning("%s: the model learned from no label (none was due before the file ended): it is saved %s",
                    path, "as it started" if started else "untrained")
    extra = {"eval_start": result.eval_start.isoformat(), "eval_end": result.eval_end.isoformat(),
             "seed": result.options.seed}
    if started is not None:
        extra["started_from"] = result.options.start_model
    if result.replay.last_learned_us >= 0:
        extra["learned_until"] = epoch_time(result.replay.last_learned_us).isoformat()
    elif started is not None and started.extra.get("learned_until"):
        extra["learned_until"] = started.extra["learned_until"]
    info = CheckpointInfo(name=started.name if started else result.options.model, kind=result.options.model,
                          version=started.version + 1 if started else 1, labels_learned=result.replay.n_labels_learned + (started.labels_learned if started else 0),
                          frauds_learned=result.replay.n_frauds_learned + (started.frauds_learned if started else 0),
                          source="backtest", extra=extra)
    save_file(path, result.model, info, key)
