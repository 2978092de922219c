"""An alert budget: the threshold that keeps alerts within N a day, and what it catches there.

A fraud team reviews a number of alerts a day; the threshold follows from it. `budget_threshold`
picks the lowest threshold t at which the transactions scored at or above t (the live consumer's
comparison, score >= threshold) number at most the budget. `alert_figures` counts what t gives
over a range of days, and `budget_report` gives both for a backtest's evaluation window: chosen and
counted on the whole window (optimistic: in sample), chosen on its first half and counted on its
second (held out), and per week at the window's t (is the volume stable?).

>>> import numpy as np
>>> days = np.array([0, 0, 0, 1, 1, 1])
>>> customers = np.array(["a", "b", "c", "a", "b", "c"])
>>> labels = np.array([1, 0, 0, 1, 0, 1])
>>> scores = np.array([0.91, 0.2, 0.1, 0.83, 0.7, 0.35])
>>> t = budget_threshold(scores, max_alerts=3)
>>> t, alert_figures(days, customers, labels, scores, t, 0, 1)
(0.7, AlertFigures(threshold=0.7, n_days=2, alerts=3, max_alerts_per_day=2, frauds_caught=2, n_frauds=3, cards_alerted=3))
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import numpy as np

from fraudstream.models.metrics import day_date
from fraudstream.models.ranking import rankable

log = logging.getLogger(__name__)


def max_alerts(alerts_per_day: float, n_days: int) -> int:
    """The alerts a budget of `alerts_per_day` allows over `n_days` days: at most that many a day on
    average, so the whole number at most `alerts_per_day` × `n_days` (rounded to 1e-9 first, so that
    0.29 × 100 allows 29, not the 28 of its float product 28.999999999999996).

    >>> max_alerts(100, 28), max_alerts(0.29, 100), max_alerts(0.5, 3)
    (2800, 29, 1)
    """
    return math.floor(round(alerts_per_day * n_days, 9))


def budget_threshold(scores: np.ndarray, max_alerts: int) -> float:
    """The lowest threshold t at which at most `max_alerts` of `scores` are >= t, written short.

    Ties never take the alerts over the budget: when the scores tied at the budget's last place do
    not all fit, none of them is admitted (t is above them, and fewer alerts than the budget are
    given). Of the thresholds that admit the same scores (above the highest score not admitted, at
    most the lowest one admitted) it is the one with the fewest decimals, so that its printed value
    gives exactly those alerts. A budget of at least every score admits them all (t at most the
    lowest); one that admits none gives a t above the highest score (above 1 if a score is 1).
    A NaN score is refused with a ValueError, as `rankable` does.

    >>> s = np.array([0.9, 0.8123, 0.8, 0.8, 0.1])
    >>> budget_threshold(s, 2), budget_threshold(s, 3), budget_threshold(s, 4), budget_threshold(s, 5)
    (0.81, 0.81, 0.8, 0.0)
    >>> budget_threshold(s, 0), budget_threshold(np.array([1.0, 0.3]), 0)
    (1.0, 2.0)
    """
    ranked = np.sort(rankable(scores))[::-1]
    if ranked.size <= max_alerts:
        return _shortest_between(-math.inf, float(ranked[-1]) if ranked.size else math.inf)
    first_out = float(ranked[max_alerts])  # the highest score not admitted, and every score tied with it
    admitted = ranked[:max_alerts][ranked[:max_alerts] > first_out]
    return _shortest_between(first_out, float(admitted[-1]) if admitted.size else math.inf)


def _shortest_between(low: float, high: float) -> float:
    """The largest number with the fewest decimals in (`low`, `high`] (`high` itself if none has
    fewer than 18), the smallest if `high` is infinite; 0.0 if both are.

    >>> _shortest_between(0.8312345, 0.83189), _shortest_between(-math.inf, 0.37), _shortest_between(0.97, math.inf)
    (0.8318, 0.0, 1.0)
    """
    if math.isinf(low) and math.isinf(high):
        return 0.0
    for decimals in range(18):
        step = Decimal(1).scaleb(-decimals)
        if math.isfinite(high):  # the largest number of these decimals at most `high`
            value = float(Decimal(repr(high)).quantize(step, rounding=ROUND_FLOOR))
        else:  # the smallest above `low`
            value = float(Decimal(repr(low)).quantize(step, rounding=ROUND_FLOOR) + step)
        if low < value <= high:
            return value
    return high


@dataclass(frozen=True)
class AlertFigures:
    """What a threshold gives over `n_days` days: alerts (transactions scored at or above it), the
    most on one day, frauds among them (of `n_frauds`), and cards alerted (a card counts once a day)."""

    threshold: float
    n_days: int
    alerts: int
    max_alerts_per_day: int
    frauds_caught: int
    n_frauds: int
    cards_alerted: int

    @property
    def alerts_per_day(self) -> float:
        return self.alerts / self.n_days

    @property
    def precision(self) -> float:
        return self.frauds_caught / self.alerts if self.alerts else math.nan

    @property
    def recall(self) -> float:
        return self.frauds_caught / self.n_frauds if self.n_frauds else math.nan

    def to_json(self) -> dict[str, Any]:
        """The figures of a summary (NaN where undefined: no alert, or no fraud).

        >>> AlertFigures(0.5, 2, 3, 2, 1, 4, 3).to_json()["frauds_caught_per_day"]
        0.5
        """
        return {"threshold": self.threshold, "alerts": self.alerts, "alerts_per_day": self.alerts_per_day,
                "max_alerts_per_day": self.max_alerts_per_day, "precision": self.precision, "recall": self.recall,
                "frauds_caught_per_day": self.frauds_caught / self.n_days,
                "cards_alerted_per_day": self.cards_alerted / self.n_days}


def alert_figures(days: np.ndarray, customers: np.ndarray, labels: np.ndarray, scores: np.ndarray,
                  threshold: float, first_day: int, last_day: int) -> AlertFigures:
    """`AlertFigures` of the transactions dated from `first_day` to `last_day` (inclusive; every one
    of these days counts, also one without transactions) alerted when their score is >= `threshold`."""
    days = np.asarray(days)
    inside = (days >= first_day) & (days <= last_day)
    alerted = inside & (rankable(scores) >= threshold)
    frauds = inside & np.asarray(labels).astype(bool)
    n_days = last_day - first_day + 1
    per_day = np.bincount(days[alerted] - first_day, minlength=n_days)
    cards = set(zip(days[alerted].tolist(), np.asarray(customers)[alerted].tolist()))
    return AlertFigures(threshold, n_days, int(alerted.sum()), int(per_day.max()), int((alerted & frauds).sum()),
                        int(frauds.sum()), len(cards))


def budget_report(days: np.ndarray, customers: np.ndarray, labels: np.ndarray, scores: np.ndarray,
                  first_day: int, last_day: int, alerts_per_day: float, week_days: int = 7) -> dict[str, Any]:
    """The budget's threshold and figures over days [`first_day`, `last_day`], as the summary's `budget`.

    Parameters
    ----------
    days, customers, labels, scores : arrays over the same transactions (others than the window's are left out)
    first_day, last_day : the window, inclusive, in `metrics.day_number`s
    alerts_per_day : the budget, > 0
    week_days : the length of the weeks of `weeks`, from `first_day` (a last, shorter one as it is)

    Returns
    -------
    dict
        `alerts_per_day_budget`, then `AlertFigures.to_json` at the threshold chosen on the whole
        window (in sample); `held_out`: the threshold chosen on the window's first half (its first
        days // 2 days) and its figures on the second, `chosen_on` and `counted_on` their dates
        (None for a window of one day); `weeks`: per week, its `start` and `end` and its figures at
        the window's threshold.

    Examples
    --------
    >>> days = np.repeat(np.arange(4), 3)
    >>> scores = np.array([0.9, 0.5, 0.1, 0.8, 0.6, 0.2, 0.95, 0.4, 0.3, 0.7, 0.65, 0.1])
    >>> labels = np.array([1, 0, 0, 0, 1, 0, 1, 0, 0, 1, 0, 0])
    >>> report = budget_report(days, np.arange(12) % 3, labels, scores, 0, 3, alerts_per_day=1)
    >>> report["threshold"], report["alerts"], report["precision"], report["recall"]
    (0.7, 4, 0.75, 0.75)
    >>> report["held_out"]["threshold"], report["held_out"]["alerts"], report["held_out"]["recall"]
    (0.8, 1, 0.5)
    >>> report["held_out"]["chosen_on"], report["held_out"]["counted_on"]
    ('1970-01-01..1970-01-02', '1970-01-03..1970-01-04')
    >>> [(w["start"], w["alerts"]) for w in budget_report(days, days, labels, scores, 0, 3, 1, week_days=3)["weeks"]]
    [('1970-01-01', 3), ('1970-01-04', 1)]
    """
    if not alerts_per_day > 0 or not math.isfinite(alerts_per_day):
        raise ValueError(f"the alert budget must be a finite number of alerts a day > 0, not {alerts_per_day}")
    days, scores = np.asarray(days), rankable(scores)

    def chosen(first: int, last: int) -> float:
        inside = (days >= first) & (days <= last)
        return budget_threshold(scores[inside], max_alerts(alerts_per_day, last - first + 1))

    def counted(threshold: float, first: int, last: int) -> AlertFigures:
        return alert_figures(days, customers, labels, scores, threshold, first, last)

    threshold = chosen(first_day, last_day)
    if threshold > 1.0:
        log.warning("no threshold FRAUDSTREAM_ALERT_THRESHOLD takes (at most 1) keeps the alerts within %g a day: "
                    "more transactions score 1 than the budget allows", alerts_per_day)
    held_out = None
    second_half = first_day + (last_day - first_day + 1) // 2
    if second_half > first_day:
        held_out = {"chosen_on": _dates(first_day, second_half - 1), "counted_on": _dates(second_half, last_day),
                    **counted(chosen(first_day, second_half - 1), second_half, last_day).to_json()}
    weeks = [{"start": day_date(start).isoformat(), "end": day_date(min(start + week_days - 1, last_day)).isoformat(),
              **counted(threshold, start, min(start + week_days - 1, last_day)).to_json()}
             for start in range(first_day, last_day + 1, week_days)]
    return {"alerts_per_day_budget": alerts_per_day, **counted(threshold, first_day, last_day).to_json(),
            "held_out": held_out, "weeks": weeks}


def _dates(first: int, last: int) -> str:
    return f"{day_date(first).isoformat()}..{day_date(last).isoformat()}"
