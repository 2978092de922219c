"""The backtest's HTML report: one self-contained page, figures embedded as base64 PNG.

>>> import numpy as np
>>> data = ReportData(summary={"model": "m", "auc_roc": 0.9, "weeks": []},
...                   labels=np.array([0, 1, 0, 1]), scores=np.array([0.1, 0.8, 0.3, 0.6]),
...                   days=np.array([17716, 17716, 17717, 17717]), daily_card_precision=[(17716, 0.01)],
...                   threshold=0.5)
>>> page = render_html(data)
>>> page.startswith("<!DOCTYPE html>") and page.count("data:image/png;base64,") == 5
True
"""

from __future__ import annotations

import base64
import html
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np

from fraudstream.models.ranking import precision_recall_points, roc_points

log = logging.getLogger(__name__)

MAX_CURVE_POINTS = 2000
_EPOCH = date(1970, 1, 1)


@dataclass(frozen=True)
class ReportData:
    """What the report shows: the JSON summary and the evaluated transactions (labels, scores, days)."""

    summary: dict[str, Any]
    labels: np.ndarray
    scores: np.ndarray
    days: np.ndarray
    daily_card_precision: Sequence[tuple[int, float]]
    threshold: float


def _thin(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if x.size <= MAX_CURVE_POINTS:
        return x, y
    keep = np.unique(np.linspace(0, x.size - 1, MAX_CURVE_POINTS).astype(int))
    return x[keep], y[keep]


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _figures(data: ReportData) -> list[tuple[str, str]]:
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    y = data.labels.astype(bool)
    s = data.scores.astype(float)
    out = []

    fig = Figure(figsize=(5, 4.5))
    ax = fig.subplots()
    fpr, tpr = _thin(*roc_points(y, s))
    ax.plot(fpr, tpr, lw=1.5, label=f"AUC ROC {_mean(data.summary.get('auc_roc'))} (weekly mean)")
    ax.plot([0, 1], [0, 1], ls=":", c="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC curve (evaluated transactions)")
    ax.legend(loc="lower right")
    out.append(("ROC curve", _png(fig)))

    fig = Figure(figsize=(5, 4.5))
    ax = fig.subplots()
    precision, recall, _ = precision_recall_points(y, s) if y.any() else (np.zeros(0), np.zeros(0), None)
    recall, precision = _thin(recall, precision)
    ax.step(recall, precision, where="post", lw=1.5,
            label=f"AP {_mean(data.summary.get('average_precision'))} (weekly mean)")
    ax.axhline(y.mean() if y.size else 0.0, ls=":", c="grey", label="fraud rate")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title="Precision-recall curve")
    ax.legend(loc="upper right")
    out.append(("Precision-recall curve", _png(fig)))

    fig = Figure(figsize=(7, 3.5))
    ax = fig.subplots()
    if data.daily_card_precision:
        days, cps = zip(*data.daily_card_precision)
        ax.bar([_EPOCH + timedelta(days=int(d)) for d in days], cps, color="tab:green")
    ax.set(ylabel="card precision@100", title="Daily card precision@100")
    fig.autofmt_xdate()
    out.append(("Daily CP@100", _png(fig)))

    fig = Figure(figsize=(7, 3.5))
    ax = fig.subplots()
    bins = np.linspace(0.0, 1.0, 51)
    ax.hist(s[~y], bins=bins, alpha=0.6, density=True, label=f"genuine ({int((~y).sum())})", log=True)
    ax.hist(s[y], bins=bins, alpha=0.6, density=True, label=f"fraud ({int(y.sum())})", log=True)
    ax.axvline(data.threshold, c="red", ls="--", label=f"alert threshold {data.threshold:g}")
    ax.set(xlabel="score", ylabel="density (log)", title="Score distributions")
    ax.legend()
    out.append(("Score distributions", _png(fig)))

    fig = Figure(figsize=(7, 3.5))
    ax = fig.subplots()
    alerted = s >= data.threshold
    uniq = np.unique(data.days)
    n_alerts = [int(alerted[data.days == d].sum()) for d in uniq]
    n_true = [int((alerted & y)[data.days == d].sum()) for d in uniq]
    when = [_EPOCH + timedelta(days=int(d)) for d in uniq]
    ax.bar(when, n_alerts, color="tab:orange", label="alerts")
    ax.bar(when, n_true, color="tab:red", label="alerts on frauds")
    ax.set(ylabel="per day", title=f"Alerts per day on evaluated transactions (score >= {data.threshold:g})")
    ax.legend()
    fig.autofmt_xdate()
    out.append(("Alerts per day", _png(fig)))
    return out


def _mean(value: float | None) -> str:
    """A weekly mean for a legend: "n/a" when no week had both classes (the summary's null).

    >>> _mean(0.91234), _mean(None), _mean(float("nan"))
    ('0.912', 'n/a', 'n/a')
    """
    return "n/a" if value is None or value != value else f"{value:.3f}"


def _fmt(value: Any) -> str:
    if value is None:  # a figure without a value (AUC with one class: null in the JSON)
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:,.0f}"
    return html.escape(str(value))


def _budget_section(budget: dict[str, Any] | None) -> str:
    """The alert budget's figures (`alert_budget.budget_report`), in sample and held out, and its weeks;
    thresholds in full (as FRAUDSTREAM_ALERT_THRESHOLD takes them). "" without a budget.

    >>> _budget_section(None)
    ''
    >>> page = _budget_section({"alerts_per_day_budget": 2, "threshold": 0.123456, "alerts": 3, "held_out": None,
    ...                         "weeks": [{"start": "2018-07-04", "threshold": 0.123456, "alerts": 3}]})
    >>> page.count("0.123456"), "held out" in page
    (2, False)
    """
    if not budget:
        return ""
    held_out = budget.get("held_out") or {}
    names = [k for k in budget if k not in ("alerts_per_day_budget", "held_out", "weeks")]
    head = "<tr><th></th><th>whole window (in sample)</th>"
    if held_out:
        head += f"<th>held out: chosen on {held_out['chosen_on']}, counted on {held_out['counted_on']}</th>"
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{_budget_value(k, budget[k])}</td>"
                   + (f"<td>{_budget_value(k, held_out.get(k))}</td>" if held_out else "") + "</tr>" for k in names)
    weeks = budget.get("weeks", [])
    cols = list(weeks[0]) if weeks else []
    week_rows = "".join("<tr>" + "".join(f"<td>{_budget_value(c, w[c])}</td>" for c in cols) + "</tr>" for w in weeks)
    week_head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    return (f"<h2>Alert budget: {budget['alerts_per_day_budget']:g} alerts a day</h2><table>{head}</tr>{rows}</table>"
            f"<h3>Weeks at the whole window's threshold</h3><table><tr>{week_head}</tr>{week_rows}</table>")


def _budget_value(name: str, value: Any) -> str:
    return html.escape(repr(value)) if name == "threshold" and value is not None else _fmt(value)


def render_html(data: ReportData) -> str:
    """The whole page as a string."""
    summary = {k: v for k, v in data.summary.items() if k not in ("weeks", "budget")}
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{_fmt(v)}</td></tr>" for k, v in summary.items())
    weeks = data.summary.get("weeks", [])
    week_table = ""
    if weeks:
        cols = list(weeks[0])
        head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
        body = "".join("<tr>" + "".join(f"<td>{_fmt(w[c])}</td>" for c in cols) + "</tr>" for w in weeks)
        week_table = f"<h2>Weeks</h2><table><tr>{head}</tr>{body}</table>"
    week_table += _budget_section(data.summary.get("budget"))
    figures = "".join(f'<figure><img alt="{html.escape(t)}" src="{src}"><figcaption>{html.escape(t)}</figcaption></figure>'
                      for t, src in _figures(data))
    title = f"fraudstream backtest: {html.escape(str(data.summary.get('model', '')))}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left}}figure{{display:inline-block;margin:1em}}</style>
</head><body><h1>{title}</h1>
<p>Metrics follow the handbook's prequential test rule: weekly AUC ROC, average precision and card
precision@100 over transactions of cards not known to be compromised, averaged over the weeks.
Curves and histograms pool the evaluated transactions of all weeks; the summary's alerts, precision and
recall at the threshold count every transaction of the window. A fraud is what the file's labels say
(its fraud column): frauds never reported, counted in n_window_frauds_unreported, count as genuine.
An alert budget's threshold chosen and counted on the whole window is optimistic; the held-out column
chooses it on the window's first half and counts it on the second.</p>
<h2>Summary</h2><table>{rows}</table>{week_table}<h2>Figures</h2>{figures}
</body></html>
"""
