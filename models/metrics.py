"""The handbook's prequential test metrics, as pure functions over arrays.

Days are whole UTC days since 1970-01-01 (`day_number`). The evaluation window is cut into
consecutive 7-day weeks from its start; for day D of a week starting S, transactions of customers
with a fraud dated in [S − 7 − delay, D − delay − 1] are left out (the handbook's known-compromised
rule for a one-week training block followed by `delay` days). Per week: AUC ROC, average precision
and card precision@k; the reported figure is the mean over the weeks.

>>> import numpy as np
>>> days = np.array([0, 0, 0, 1, 1, 1])
>>> customers = np.array(["a", "b", "c", "a", "b", "c"])
>>> labels = np.array([1, 0, 0, 1, 0, 0])
>>> scores = np.array([0.9, 0.2, 0.1, 0.8, 0.7, 0.1])
>>> m = prequential_metrics(days, customers, labels, scores, eval_start=0, eval_end=1, delay_days=0, k=2)
>>> (m.weeks[0].n_transactions, m.weeks[0].n_frauds, m.auc_roc, m.card_precision_at_k)
(5, 1, 1.0, 0.25)
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

import numpy as np

from fraudstream.models.ranking import average_precision, rankable, roc_auc

log = logging.getLogger(__name__)

_EPOCH_DAY = date(1970, 1, 1)


def day_number(moment: datetime | date) -> int:
    """Whole UTC days since 1970-01-01 (aware datetimes are converted to UTC; naive ones are UTC).

    >>> day_number(date(2018, 7, 4)), day_number(datetime(2018, 7, 4, 23, 59, tzinfo=timezone.utc))
    (17716, 17716)
    """
    if isinstance(moment, datetime):
        if moment.tzinfo is not None:
            moment = moment.astimezone(timezone.utc)
        moment = moment.date()
    return (moment - _EPOCH_DAY).days


def day_date(number: int) -> date:
    """The date of a `day_number`.

    >>> day_date(17716)
    datetime.date(2018, 7, 4)
    """
    return _EPOCH_DAY + timedelta(days=number)


def card_precision_top_k(days: np.ndarray, customers: np.ndarray, labels: np.ndarray, scores: np.ndarray,
                         k: int = 100) -> tuple[float, list[float]]:
    """Mean over days of the share of compromised cards among the k cards with the highest max score
    that day (divisor always k); cards detected earlier in the same call are left out afterwards.

    Cards tied at the k-th place count by their expected share (the mean over the orders of the tie,
    as AUC counts a tie half), not by the order of their ids: with r places left for m tied cards of
    which f are compromised, r·f/m. Only the compromised cards surely in the top k (above the tie, or
    a tie that fits whole) are detected: a tied one may count again on a later day, so over several
    days the figure can be slightly above the mean over the tie orders (k=1, a fraud card tied with
    a genuine one on day 0 and on top on day 1: 0.75 where the orders give 0.5).

    >>> cp, daily = card_precision_top_k(np.array([0, 0, 1, 1]), np.array([1, 2, 1, 2]),
    ...                                  np.array([1, 0, 1, 1]), np.array([0.9, 0.1, 0.9, 0.2]), k=1)
    >>> cp, daily
    (1.0, [1.0, 1.0])
    >>> card_precision_top_k(np.zeros(4), np.arange(4), np.array([1, 0, 0, 0]), np.full(4, 0.5), k=2)[1]
    [0.25]
    """
    days = np.asarray(days)
    cust_codes = np.unique(np.asarray(customers), return_inverse=True)[1]
    y = np.asarray(labels).astype(bool)
    s = rankable(scores)
    detected = np.zeros(int(cust_codes.max()) + 1 if cust_codes.size else 0, dtype=bool)
    daily: list[float] = []
    for day in np.unique(days):
        sel = (days == day) & ~detected[cust_codes]
        c, ys, ss = cust_codes[sel], y[sel], s[sel]
        if c.size == 0:
            daily.append(0.0)
            continue
        cards = np.unique(c)
        idx = np.searchsorted(cards, c)
        max_score = np.full(cards.size, -np.inf)
        np.maximum.at(max_score, idx, ss)
        fraud = np.zeros(cards.size, dtype=bool)
        np.logical_or.at(fraud, idx, ys)
        hits, expected = _top_k_hits(max_score, fraud, k)
        daily.append(expected / k)
        detected[cards[hits]] = True
    return (float(np.mean(daily)) if daily else float("nan")), daily


def _top_k_hits(max_score: np.ndarray, fraud: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    """The compromised cards surely among the `k` highest scores (a mask) and the expected number
    of compromised cards among them, the cards tied at the k-th score counted by their share."""
    if max_score.size <= k:
        return fraud, float(fraud.sum())
    cut = np.partition(max_score, max_score.size - k)[max_score.size - k]  # the k-th highest score
    above, tied = max_score > cut, max_score == cut
    places, n_tied = k - int(above.sum()), int(tied.sum())
    sure = fraud & (above | tied) if places == n_tied else fraud & above
    return sure, float((fraud & above).sum()) + places * int((fraud & tied).sum()) / n_tied


def delay_in_days(label_delay: timedelta) -> int:
    """The label delay as the known-compromised rule counts it: whole days, rounded up.

    A fraud dated day F is known on day D when its label came before D began, even had it happened
    at the end of F: F + 1 + delay <= D. With a delay that is not whole days the first such D is
    F + 1 + ceil(delay) (36 hours: a fraud of day 10 is known from day 13, not 12).

    >>> delay_in_days(timedelta(days=7)), delay_in_days(timedelta(hours=36)), delay_in_days(timedelta(hours=12))
    (7, 2, 1)
    >>> delay_in_days(timedelta(0))
    0
    """
    return math.ceil(label_delay.total_seconds() / 86400.0)


def known_compromised_kept(days: np.ndarray, customers: np.ndarray, labels: np.ndarray, week_start: int,
                           week_end: int, delay_days: int, train_days: int = 7) -> np.ndarray:
    """Boolean mask over all transactions: True for those of days [week_start, week_end] whose customer
    had no fraud dated in [week_start − train_days − delay, D − delay − 1] for their day D."""
    days = np.asarray(days)
    cust_codes = np.unique(np.asarray(customers), return_inverse=True)[1]
    y = np.asarray(labels).astype(bool)
    n_cust = int(cust_codes.max()) + 1 if cust_codes.size else 0
    lo = week_start - train_days - delay_days
    # first fraud date per customer within [lo, ...): a customer is known on day D when it is <= D - delay - 1
    fraud_sel = y & (days >= lo)
    first = np.full(n_cust, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, cust_codes[fraud_sel], days[fraud_sel].astype(np.int64))
    in_week = (days >= week_start) & (days <= week_end)
    return in_week & ~(first[cust_codes] <= days - delay_days - 1)


@dataclass(frozen=True)
class WeekMetrics:
    """Metrics of one evaluation week (after the known-compromised rule)."""

    start: int
    end: int
    n_transactions: int
    n_frauds: int
    auc_roc: float
    average_precision: float
    card_precision_at_k: float
    daily_card_precision: list[float] = field(default_factory=list)
    days_with_transactions: list[int] = field(default_factory=list)  # the days of `daily_card_precision`


@dataclass(frozen=True)
class PrequentialMetrics:
    """Per-week metrics and their means; `kept` marks the transactions the metrics were computed on."""

    weeks: list[WeekMetrics]
    kept: np.ndarray

    @property
    def auc_roc(self) -> float:
        return _mean(w.auc_roc for w in self.weeks)

    @property
    def average_precision(self) -> float:
        return _mean(w.average_precision for w in self.weeks)

    @property
    def card_precision_at_k(self) -> float:
        return _mean(w.card_precision_at_k for w in self.weeks)

    @property
    def n_transactions(self) -> int:
        return sum(w.n_transactions for w in self.weeks)

    @property
    def n_frauds(self) -> int:
        return sum(w.n_frauds for w in self.weeks)


def _mean(values) -> float:  # type: ignore[no-untyped-def]
    arr = np.array(list(values), dtype=float)
    arr = arr[~np.isnan(arr)]
    return float(arr.mean()) if arr.size else float("nan")


def prequential_metrics(days: np.ndarray, customers: np.ndarray, labels: np.ndarray, scores: np.ndarray,
                        eval_start: int, eval_end: int, delay_days: int, k: int = 100,
                        week_days: int = 7) -> PrequentialMetrics:
    """The handbook's figures over days [eval_start, eval_end] (inclusive), week by week; a last,
    shorter week is kept as it is. `days`, `customers` and `labels` cover every transaction (also
    those before the window, for the known-compromised rule); `scores` matter only inside it. A week
    without a fraud left in has NaN AUC ROC and average precision, which the means leave out; its card
    precision, 0, counts."""
    days = np.asarray(days)
    kept_all = np.zeros(days.size, dtype=bool)
    weeks: list[WeekMetrics] = []
    for start in range(eval_start, eval_end + 1, week_days):
        end = min(start + week_days - 1, eval_end)
        kept = known_compromised_kept(days, customers, labels, start, end, delay_days, week_days)
        kept_all |= kept
        y = np.asarray(labels)[kept].astype(bool)
        s = np.asarray(scores, dtype=float)[kept]
        cp, daily = card_precision_top_k(days[kept], np.asarray(customers)[kept], y, s, k)
        weeks.append(WeekMetrics(start, end, int(kept.sum()), int(y.sum()), roc_auc(y, s),
                                 average_precision(y, s), cp, daily, np.unique(days[kept]).tolist()))
    return PrequentialMetrics(weeks, kept_all)


@dataclass(frozen=True)
class Performance:
    """Prequential figures of one model over some labelled scores."""

    n_labels: int
    n_frauds: int
    auc_roc: float
    average_precision: float
    alerts: int
    alert_precision: float


def performance(labels: np.ndarray, scores: np.ndarray, threshold: float) -> Performance:
    """AUC ROC, average precision, alerts and their precision at `threshold` (NaN where undefined).

    >>> p = performance(np.array([0, 1, 0, 1]), np.array([0.1, 0.9, 0.6, 0.4]), 0.5)
    >>> p.n_labels, p.n_frauds, p.auc_roc, p.alerts, p.alert_precision
    (4, 2, 0.75, 2, 0.5)
    """
    labels, scores = np.asarray(labels, dtype=np.int8), rankable(scores)
    n_frauds = int(labels.sum())
    alerted = scores >= threshold
    n_alerts = int(alerted.sum())
    return Performance(
        n_labels=len(labels), n_frauds=n_frauds,
        auc_roc=roc_auc(labels, scores) if 0 < n_frauds < len(labels) else float("nan"),
        average_precision=average_precision(labels, scores) if n_frauds else float("nan"),
        alerts=n_alerts,
        alert_precision=int((alerted & (labels == 1)).sum()) / n_alerts if n_alerts else float("nan"),
    )
