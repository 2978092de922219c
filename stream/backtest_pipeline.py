"""The backtest on two cores: features in a forked worker process, scoring and learning in this one.

Features never depend on the model (terminal risk comes from labels, counted from their report
time on), so the file can be featurised ahead of the model. The worker reads the file, applies
each label's fraud mark (`FeatureEngine.apply_labels`) and computes features (`transform`) in
chunks, and sends them over a queue; this process scores every transaction, then keeps its
features until its label is due and learns from them, exactly as `fraudstream.stream.backtest.replay`
does in one process (the tests hold the scores of both equal).

A chunk never holds a transaction at or after the report time of a label of an earlier transaction
in the same chunk (with a 7-day delay a chunk holds `CHUNK` transactions; with no delay, one), and
the marks of every label reported by the chunk's last event time are applied before it: so each
transaction's features are those it gets when labels are applied one at a time as they fall due.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
import traceback
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fraudstream.errors import FraudstreamError
from fraudstream.models import zoo
from fraudstream.models.events import Label
from fraudstream.producer.recorded import Recorded, Span, labels_for
from fraudstream.stream.features import FeatureEngine
from fraudstream.stream.gc_tuning import fewer_collections
from fraudstream.stream.learned_spans import LearnedSpans
from fraudstream.timeutil import epoch_us, from_epoch_us

log = logging.getLogger(__name__)

CHUNK = 2000  # transactions per chunk sent to the model process
QUEUE_CHUNKS = 8  # chunks featurised ahead at most (bounded memory)
DEFERRED_MAX_ROWS = 20_000  # transactions waiting to be scored in one batch at most


@dataclass
class FeatureChunk:
    """Featurised transactions in file order; times in epoch microseconds, report -1: no label."""

    transaction_ids: list[str]
    customer_ids: list[str]
    times_us: list[int]
    report_us: list[int]
    frauds: list[int]
    features: list[dict[str, float] | None]  # None: id reused with other content (not scored)
    seen: list[bool]  # a transaction the file held before (a repeated row): not scored again
    unreported: list[bool]  # a fraud by its scenario, labelled genuine (`Recorded.unreported`)


class _WorkerFailed:
    """The worker's error: a `FraudstreamError`'s message (bad input: one line for the user), or the
    traceback of anything else (a bug)."""

    def __init__(self, text: str, expected: bool) -> None:
        self.text = text
        self.expected = expected


def feature_chunks(records: Iterable[Recorded], engine: FeatureEngine, label_delay: timedelta,
                   chunk_size: int = CHUNK) -> Iterator[FeatureChunk]:
    """Features of every record, in chunks, with fraud marks applied as their labels fall due."""
    pending: deque[Label] = deque()  # labels in report-time order (constant delay keeps file order)
    chunk: list[Recorded] = []
    first_report: datetime | None = None  # earliest report time of a label from the current chunk
    for rec in records:
        if chunk and (len(chunk) >= chunk_size or (first_report is not None and rec.transaction.event_time >= first_report)):
            yield _featurise(chunk, engine, pending, label_delay)
            chunk, first_report = [], None
        chunk.append(rec)
        if rec.is_fraud is not None:
            report = rec.transaction.event_time + label_delay
            if first_report is None or report < first_report:
                first_report = report
    if chunk:
        yield _featurise(chunk, engine, pending, label_delay)


def _featurise(chunk: list[Recorded], engine: FeatureEngine, pending: deque[Label], delay: timedelta) -> FeatureChunk:
    txs = [rec.transaction for rec in chunk]
    end = max(tx.event_time for tx in txs)
    due = []
    while pending and pending[0].reported_at <= end:
        due.append(pending.popleft())
    if due:
        engine.apply_labels(due)
    features, seen = engine.transform_seen(txs)
    times = [epoch_us(tx.event_time) for tx in txs]
    reports, frauds = [], []
    delay_us = delay // timedelta(microseconds=1)
    for rec, t, again in zip(chunk, times, seen):
        if rec.is_fraud is None:
            reports.append(-1)
        else:
            reports.append(t + delay_us)
            if rec.is_fraud and not again:  # only frauds change feature state (no scored records are kept here)
                pending.append(labels_for(rec, delay))  # type: ignore[arg-type]
        frauds.append(1 if rec.is_fraud else 0)
    return FeatureChunk([tx.transaction_id for tx in txs], [tx.customer_id for tx in txs], times, reports, frauds,
                        features, seen, [rec.unreported for rec in chunk])


def _work(records: Iterable[Recorded], engine: FeatureEngine, delay: timedelta, queue: Any, span: Span | None) -> None:
    try:
        with fewer_collections():
            for chunk in feature_chunks(records, engine, delay):
                queue.put(chunk)
        if span is not None:  # what the reader saw, filled in here, in the child
            queue.put(span)
        queue.put(None)
    except FraudstreamError as exc:  # bad input (a row of the file): the parent raises it as it is
        queue.put(_WorkerFailed(str(exc), expected=True))
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises
        queue.put(_WorkerFailed(traceback.format_exc(), expected=False))


def forked_chunks(records: Iterable[Recorded], engine: FeatureEngine, label_delay: timedelta,
                  span: Span | None = None, forked: Callable[[], None] | None = None) -> Iterator[FeatureChunk]:
    """`feature_chunks` computed in a forked child process (stopped by PID when this generator ends);
    `span`: the one `records` fills in (`read_recorded`), copied back from the child at the end;
    `forked`: called here once the child is forked (what starts a thread, such as a progress bar's
    refresh thread, waits for it: a thread running at a fork may hold a lock the child then waits on
    for ever)."""
    context = multiprocessing.get_context("fork")
    queue = context.Queue(maxsize=QUEUE_CHUNKS)
    worker = context.Process(target=_work, args=(records, engine, label_delay, queue, span), daemon=True,
                             name="fraudstream-backtest-features")
    worker.start()
    log.debug("feature worker pid %d (parent %d)", worker.pid, os.getpid())
    try:
        if forked is not None:
            forked()
        while True:
            item = queue.get()
            if item is None:
                break
            if isinstance(item, Span):
                if span is not None:
                    span.first, span.last, span.complete = item.first, item.last, item.complete
                continue
            if isinstance(item, _WorkerFailed):
                raise FraudstreamError(item.text if item.expected else f"backtest feature worker failed:\n{item.text}")
            yield item
    finally:
        if worker.is_alive():
            worker.terminate()
        worker.join(timeout=10)
        queue.close()


def score_chunks(chunks: Iterable[FeatureChunk], model: Any, out: Any, progress: Any = None,
                 progress_every: int = 5000, learn: bool = True, not_learned: LearnedSpans = LearnedSpans()) -> None:
    """Score each transaction, then learn each label once due, into `out` (a `Replay`): with `learn`
    false none, and never those of transactions `not_learned` covers.

    A model whose scores change only at some labels (it has ``learns_before_change()``, as
    `WindowedBoostedTrees`) scores the transactions between two such labels in one batch: the same
    scores as one at a time, as the model is the same for all of them.
    """
    learn_one = model.learn_one
    deferred = _DeferredScores(model, out.scores)
    pending: deque[tuple[int, int, PackedFeatures, bool]] = deque()  # report time, event time, features, label
    packing = FeaturePacking()
    skipped = not_learned.covers if not_learned.spans else None
    day_us = 86_400_000_000
    started = time.perf_counter()
    n = 0
    for c in chunks:
        for txid, customer, t, report, fraud, x, again, unreported in zip(
                c.transaction_ids, c.customer_ids, c.times_us, c.report_us, c.frauds, c.features, c.seen, c.unreported):
            while pending and pending[0][0] <= t:
                _, tx_time, features, is_fraud = pending.popleft()
                deferred.before_learn()
                learn_one(packing.unpack(features), is_fraud)
                out.n_labels_learned += 1
                out.n_frauds_learned += is_fraud
                if out.first_learned_us is None:
                    out.first_learned_us = tx_time
                out.last_learned_us = tx_time
            if x is None:
                out.n_conflicts += 1
                continue
            if again:
                out.n_repeated += 1
                continue
            deferred.score(x)
            if report < 0:
                out.unlabelled_days.append(t // day_us)
            elif learn and (skipped is None or not skipped(t)):
                pending.append((report, t, packing.pack(x), bool(fraud)))
            out.transaction_ids.append(txid)
            out.customer_ids.append(customer)
            out.days.append(t // day_us)
            out.labels.append(fraud)
            if unreported:
                out.unreported_days.append(t // day_us)
            n += 1
            if progress is not None and n % progress_every == 0:
                progress(n, from_epoch_us(t))
    deferred.flush()
    out.elapsed_s = time.perf_counter() - started
    if progress is not None and n:
        progress(n, from_epoch_us(t))


PackedFeatures = array | dict[str, float]


class FeaturePacking:
    """Features kept until their label is due, packed: a row's values as an array of doubles
    (~0.4 KB) instead of its dict (~1.7 KB with its floats). The scoring loop keeps every transaction
    of the last label delay, so this is what its memory grows with: 1.5 million transactions for
    100,000 cards at two a day and a 7-day delay, ~2.5 GB as dicts (docs/performance.md, 2026-12-08).
    A row whose names are not those of the first row packed, or whose values are not all numbers,
    is kept as it is.

    >>> packing = FeaturePacking()
    >>> row = packing.pack({"a": 1.5, "b": 2})
    >>> type(row).__name__, packing.unpack(row)
    ('array', {'a': 1.5, 'b': 2.0})
    >>> packing.pack({"b": 1.0, "a": 2.0}), packing.pack({"a": None, "b": 1.0})
    ({'b': 1.0, 'a': 2.0}, {'a': None, 'b': 1.0})
    """

    def __init__(self) -> None:
        self.names: tuple[str, ...] | None = None

    def pack(self, x: dict[str, float]) -> PackedFeatures:
        names = tuple(x)
        if self.names is None:
            self.names = names
        if names != self.names:
            return x
        try:
            return array("d", x.values())
        except TypeError:
            return x

    def unpack(self, row: PackedFeatures) -> dict[str, float]:
        return row if isinstance(row, dict) else dict(zip(self.names, row))  # type: ignore[arg-type]


class _DeferredScores:
    """Appends each transaction's score to `scores`: at once for an online model; for a model with
    ``learns_before_change()``, in batches flushed before a label that changes it (and at the end)."""

    def __init__(self, model: Any, scores: Any) -> None:
        self.model, self.scores = model, scores
        self.stable = getattr(model, "learns_before_change", None)
        self.waiting: list[dict[str, float]] = []

    def score(self, x: dict[str, float]) -> None:
        if self.stable is None:
            self.scores.append(zoo.score_one(self.model, x))
            return
        self.waiting.append(x)
        if len(self.waiting) >= DEFERRED_MAX_ROWS:
            self.flush()

    def before_learn(self) -> None:
        if self.waiting and self.stable() <= 0:  # waiting only with learns_before_change
            self.flush()  # this label refits the model: score what came before it with the model before it

    def flush(self) -> None:
        if self.waiting:
            self.scores.extend(zoo.score_many(self.model, self.waiting))
            self.waiting = []
