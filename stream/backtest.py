"""The backtest: replay a recorded file through the live feature and scoring code, in event-time order.

Per transaction: first every label whose report time (event time + label delay) is at or before its
event time is applied (terminal risk state, and the model learns from the features that label's
transaction was scored with), then the transaction is featurised and scored, then its features and
score are kept for its own label. Score before learn; no label is used before it would have arrived.
Metrics: `fraudstream.models.metrics` (the handbook's prequential rule). `run_backtest` computes the
same on two cores (`fraudstream.stream.backtest_pipeline`).
"""

from __future__ import annotations

import logging
import time
from array import array
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from fraudstream.errors import ConfigError
from fraudstream.models import alert_budget, metrics, zoo
from fraudstream.producer.files import read_recorded
from fraudstream.producer.recorded import Recorded, Span, labels_for
from fraudstream.stream.features import FeatureEngine
from fraudstream.stream.learned_spans import LearnedSpans
from fraudstream.timeutil import epoch_us

log = logging.getLogger(__name__)

DEFAULT_WARMUP = timedelta(days=30)  # default evaluation start: first event day + this
Progress = Callable[[int, datetime], None]


@dataclass(frozen=True)
class BacktestOptions:
    """What to replay and how to judge it."""

    model: str
    seed: int = 42
    label_delay: timedelta = timedelta(days=7)
    start: datetime | None = None  # replay from this event time on (features start empty there); default: all
    eval_start: date | None = None  # default: first event day + 30 days
    eval_end: date | None = None  # inclusive; default: last event day
    threshold: float = 0.5
    top_k: int = 100
    progress_every: int = 5000
    learn: bool = True  # False: score with the starting model as it is (a checkpoint's frozen figures)
    not_learned: LearnedSpans = LearnedSpans()  # labels of these transactions are not learned (a checkpoint has them)
    start_model: str | None = None  # the checkpoint the model started from (for the summary); None: fresh

    def __post_init__(self) -> None:
        if self.label_delay < timedelta(0):
            raise ConfigError("label delay must not be negative")
        if self.eval_start and self.eval_end and self.eval_end < self.eval_start:
            raise ConfigError(f"--eval-end {self.eval_end} is before --eval-start {self.eval_start}")
        if self.start and self.eval_start and self.eval_start < self.start.date():
            raise ConfigError(f"--eval-start {self.eval_start} is before --start {self.start.isoformat()}")
        if self.top_k < 1:
            raise ConfigError("top_k must be at least 1")

    @property
    def read_until(self) -> datetime | None:
        """Nothing after the evaluation window matters: stop reading there."""
        if self.eval_end is None:
            return None
        return datetime.combine(self.eval_end + timedelta(days=1), datetime.min.time(), timezone.utc)


@dataclass
class Replay:
    """Per transaction, in file order: id, customer, UTC day, label (unknown = 0) and score."""

    transaction_ids: list[str] = field(default_factory=list)
    customer_ids: list[str] = field(default_factory=list)
    days: array = field(default_factory=lambda: array("l"))
    labels: array = field(default_factory=lambda: array("b"))
    scores: array = field(default_factory=lambda: array("d"))
    unlabelled_days: array = field(default_factory=lambda: array("l"))  # the UTC day of each unlabelled one
    unreported_days: array = field(default_factory=lambda: array("l"))  # of each fraud labelled genuine (`unreported`)
    n_conflicts: int = 0  # transaction ids reused with other content: not scored
    n_repeated: int = 0  # transactions the file held before (the same id and content): not scored again
    n_labels_learned: int = 0
    n_frauds_learned: int = 0
    first_learned_us: int | None = None  # event times (epoch µs) of the first and the last transaction
    last_learned_us: int | None = None  # whose label was learned (every one between was, or is in `not_learned`)
    elapsed_s: float = 0.0

    @property
    def n_unlabelled(self) -> int:
        return len(self.unlabelled_days)


def replay(records: Iterable[Recorded], engine: FeatureEngine, model: Any, model_name: str,
           label_delay: timedelta, progress: Progress | None = None, progress_every: int = 5000,
           learn: bool = True, not_learned: LearnedSpans = LearnedSpans()) -> Replay:
    """Run every record through labels → features → score → record; learn in place into `model`
    (with `learn` false, labels still mark terminals as they fall due, but the model is not changed;
    the labels of transactions `not_learned` covers are not learned)."""
    out = Replay()
    pending: deque = deque()  # labels in report-time order (constant delay keeps file order)
    score_one = zoo.score_one
    learn_one = model.learn_one
    transform, record_scored, apply_labels = engine.transform_seen, engine.record_scored, engine.apply_labels
    ids_append, cust_append = out.transaction_ids.append, out.customer_ids.append
    day_append, label_append, score_append = out.days.append, out.labels.append, out.scores.append
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    started = time.perf_counter()
    n = 0
    for rec in records:
        tx = rec.transaction
        now = tx.event_time
        if pending and pending[0].reported_at <= now:
            due = []
            while pending and pending[0].reported_at <= now:
                due.append(pending.popleft())
            for label, scored in zip(due, apply_labels(due)):
                if scored is None or scored.unreadable is not None:  # (an unreadable one is logged)
                    continue
                t = epoch_us(label.event_time)
                if learn and not not_learned.covers(t):
                    learn_one(scored.features, label.is_fraud)
                    out.n_labels_learned += 1
                    out.n_frauds_learned += label.is_fraud
                    if out.first_learned_us is None:
                        out.first_learned_us = t
                    out.last_learned_us = t
        (x,), (again,) = transform([tx])
        if x is None:
            out.n_conflicts += 1
            continue
        if again:
            out.n_repeated += 1
            continue
        score = score_one(model, x)
        record_scored([tx], [x], [{model_name: score}])
        label = labels_for(rec, label_delay)
        if label is None:
            out.unlabelled_days.append((now - epoch).days)
        else:
            pending.append(label)
        ids_append(tx.transaction_id)
        cust_append(tx.customer_id)
        day_append((now - epoch).days)
        label_append(1 if rec.is_fraud else 0)
        score_append(score)
        if rec.unreported:
            out.unreported_days.append((now - epoch).days)
        n += 1
        if progress is not None and n % progress_every == 0:
            progress(n, now)
    out.elapsed_s = time.perf_counter() - started
    if progress is not None and n:
        progress(n, now)
    return out


@dataclass
class BacktestResult:
    """The replay, the window's metrics and the trained model."""

    options: BacktestOptions
    replay: Replay
    metrics: metrics.PrequentialMetrics
    eval_start: date
    eval_end: date
    window: np.ndarray  # mask over the replay: transactions dated inside the evaluation window
    model: Any

    @property
    def throughput_tps(self) -> float:
        return len(self.replay.scores) / self.replay.elapsed_s if self.replay.elapsed_s > 0 else float("nan")

    def alert_stats(self) -> dict[str, float]:
        """Alerts per day, precision and recall at the threshold, over every transaction of the window
        (`n_window_transactions`, `n_window_frauds`: known-compromised cards included, unlike the
        prequential metrics' `n_transactions`, `n_frauds`)."""
        f = alert_budget.alert_figures(*self.window_arrays(), self.options.threshold, *self.window_days)
        return {"alerts": f.alerts, "alerts_per_day": f.alerts_per_day, "precision_at_threshold": f.precision,
                "recall_at_threshold": f.recall}

    def window_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Days, customers, labels and scores of the window's transactions (as `alert_budget` takes them)."""
        run, w = self.replay, self.window
        return (np.asarray(run.days, dtype=np.int64)[w], np.asarray(run.customer_ids)[w],
                np.frombuffer(run.labels, dtype=np.int8)[w], np.frombuffer(run.scores, dtype=np.float64)[w])

    @property
    def window_days(self) -> tuple[int, int]:
        """The window's first and last day, as `metrics.day_number`s."""
        return metrics.day_number(self.eval_start), metrics.day_number(self.eval_end)

    def unreported_in_window(self) -> int:
        """Transactions of the window whose fraud_scenario says fraud and whose label says genuine:
        counted as genuine by every figure here, as the live model would see them."""
        s, e = self.window_days
        return sum(s <= day <= e for day in self.replay.unreported_days)

    def summary(self) -> dict[str, Any]:
        """The JSON document of `--json`."""
        m = self.metrics
        return {
            "model": self.options.model,
            "start_model": self.options.start_model,
            "learn": self.options.learn,
            "not_learned": self.options.not_learned.to_json(),
            "seed": self.options.seed,
            "label_delay_days": self.options.label_delay.total_seconds() / 86400.0,
            "eval_start": self.eval_start.isoformat(),
            "eval_end": self.eval_end.isoformat(),
            "n_transactions": m.n_transactions,
            "n_frauds": m.n_frauds,
            "n_window_transactions": int(self.window.sum()),
            "n_window_frauds": int(np.frombuffer(self.replay.labels, dtype=np.int8)[self.window].sum()),
            "n_window_frauds_unreported": self.unreported_in_window(),
            "auc_roc": m.auc_roc,
            "average_precision": m.average_precision,
            f"card_precision_at_{self.options.top_k}": m.card_precision_at_k,
            "threshold": self.options.threshold,
            **self.alert_stats(),
            "throughput_tps": self.throughput_tps,
            "elapsed_s": self.replay.elapsed_s,
            "n_processed": len(self.replay.scores),
            "n_labels_learned": self.replay.n_labels_learned,
            "n_frauds_learned": self.replay.n_frauds_learned,
            "n_unlabelled": self.replay.n_unlabelled,
            "n_conflicts": self.replay.n_conflicts,
            "n_repeated": self.replay.n_repeated,
            "weeks": [
                {"start": metrics.day_date(w.start).isoformat(), "end": metrics.day_date(w.end).isoformat(), "n_transactions": w.n_transactions,
                 "n_frauds": w.n_frauds, "auc_roc": w.auc_roc, "average_precision": w.average_precision,
                 f"card_precision_at_{self.options.top_k}": w.card_precision_at_k}
                for w in m.weeks
            ],
        }


def evaluate(run: Replay, options: BacktestOptions, model: Any, file_ended: bool = True) -> BacktestResult:
    """The handbook metrics of a replay over the evaluation window; `file_ended`: the replay read the
    file to its end (so its last day is the data's), not only up to the window's end."""
    days = np.frombuffer(run.days, dtype=np.int64) if run.days.itemsize == 8 else np.array(run.days, dtype=np.int64)
    if days.size == 0:
        raise ConfigError("no transactions to evaluate (empty file or window)")
    first_day, last_day = metrics.day_date(int(days[0])), metrics.day_date(int(days[-1]))
    start = options.eval_start or first_day + DEFAULT_WARMUP
    end = options.eval_end or last_day
    if start < first_day:  # as the end: alerts per day, the weeks and their days count the data's days only
        log.warning("--eval-start %s is before the first day replayed, %s: evaluating from %s", start, first_day,
                    first_day)
        start = first_day
    if file_ended and end > last_day:  # alerts per day and the weekly means count the data's days only
        if last_day >= start:
            log.warning("--eval-end %s is after the data's last day, %s: evaluating up to %s", end, last_day, last_day)
        end = last_day
    if end < start:
        if options.eval_start is None:
            raise ConfigError(f"the data holds {first_day}..{last_day}: the default evaluation start, "
                              f"{DEFAULT_WARMUP.days} days after its first day ({start}), is after its end; give "
                              "--eval-start (the features then have less history) or a longer file")
        if start > last_day:
            raise ConfigError(f"--eval-start {start} is after the data's last day, {last_day}")
        raise ConfigError(f"evaluation window {start}..{end} is empty")
    s, e = metrics.day_number(start), metrics.day_number(end)
    unknown = sum(s <= day <= e for day in run.unlabelled_days)
    if unknown:
        raise ConfigError(f"{unknown:,} transactions of the evaluation window {start}..{end} have no label (is_fraud): "
                          "the metrics would count them as genuine; backtest a file with labels (our is_fraud, the "
                          "handbook's TX_FRAUD) or a window whose transactions all have one")
    labels = np.frombuffer(run.labels, dtype=np.int8)
    scores = np.frombuffer(run.scores, dtype=np.float64)
    customers = np.asarray(run.customer_ids)
    delay_days = metrics.delay_in_days(options.label_delay)
    m = metrics.prequential_metrics(days, customers, labels, scores, s, e, delay_days, options.top_k)
    window = (days >= s) & (days <= e)
    return BacktestResult(options, run, m, start, end, window, model)


def run_backtest(path: str | Path, options: BacktestOptions, engine: FeatureEngine, progress: Progress | None = None,
                 model: Any | None = None, forked: Callable[[], None] | None = None) -> BacktestResult:
    """Replay `path` with `model` (a checkpoint's, changed in place), or a fresh model of
    `options.model`, and evaluate it: features in a forked worker process, the model here
    (`fraudstream.stream.backtest_pipeline`; same scores as `replay`); `forked`: called once the
    worker is forked (`forked_chunks`)."""
    from fraudstream.stream.backtest_pipeline import forked_chunks, score_chunks
    from fraudstream.stream.gc_tuning import fewer_collections

    if model is None:
        model = zoo.make_model(options.model, options.seed)
    span = Span()
    records = read_recorded(path, start=options.start, end=options.read_until, span=span)
    run = Replay()
    with fewer_collections():
        score_chunks(forked_chunks(records, engine, options.label_delay, span, forked), model, run, progress, options.progress_every,
                     learn=options.learn, not_learned=options.not_learned)
    if not run.scores:
        asked = " in the window asked for" if options.start is not None or options.read_until is not None else ""
        reused = f" ({run.n_conflicts:,} reused an earlier transaction's id)" if run.n_conflicts else ""
        raise ConfigError(f"no transactions to evaluate{asked}{reused}: {span.describe()} of {path}")
    if run.n_conflicts:
        log.warning("%d transactions reused an earlier transaction's id with other content and were not scored",
                    run.n_conflicts)
    if run.n_repeated:
        log.warning("%d rows repeated an earlier transaction (id and content): not scored again, their labels not "
                    "learned again (as a consumer does with a transaction delivered again)", run.n_repeated)
    log.info("replayed %d transactions in %.1f s (%d labels learned)", len(run.scores), run.elapsed_s,
             run.n_labels_learned)
    return evaluate(run, options, model, file_ended=span.complete)

