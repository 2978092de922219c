"""The demo dashboard rendered from a consumer's figures with known values."""

from __future__ import annotations

import io
import re
from datetime import datetime, timezone
from types import SimpleNamespace

import numpy as np
from rich.console import Console

from fraudstream.models.events import Alert, Reason
from fraudstream.models.metrics import roc_auc
from fraudstream.stream.dashboard import Dashboard, DashboardView, render
from fraudstream.stream.scoring import Scorer
from fraudstream.stream.stats import RunStats


def text_of(renderable: object, width: int = 120) -> str:
    console = Console(record=True, width=width, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def alert(i: int, score: float) -> Alert:
    return Alert(
        transaction_id=f"t-{i}", customer_id=f"cust-{i}", terminal_id=f"term-{i}", amount=1234.5 + i,
        event_time=datetime(2024, 3, 1, 12, 0, i, tzinfo=timezone.utc), score=score, threshold=0.5,
        model_name="logreg", model_version="3+7",
        reasons=[Reason(feature="TX_AMOUNT", value=1234.5 + i, contribution=2.0),
                 Reason(feature="customer_amount_zscore_30d", value=12.25, contribution=1.1)],
        features={"TX_AMOUNT": 1234.5 + i}, scored_at=datetime(2024, 3, 1, tzinfo=timezone.utc), latency_ms=3.0,
    )


def test_the_summary_gives_latencies_to_a_tenth_of_a_millisecond() -> None:
    stats = RunStats()
    stats.observe_latency(91.1162109375)
    summary = stats.summary()
    assert summary["latency_p50_ms"] == summary["latency_p99_ms"] == 91.1
    assert RunStats().summary()["latency_p50_ms"] is None


def test_dashboard_shows_the_consumer_figures() -> None:
    stats = RunStats(processed=12345, alerts=67, dead_lettered=89, labels_learned=4321, labels_dead_lettered=5)
    stats.lag = {("transactions", 0): 100, ("transactions", 1): 23, ("labels", 0): 7}
    for ms in range(1, 101):
        stats.observe_latency(float(ms))
    rng = np.random.default_rng(3)
    labels = rng.random(300) < 0.2
    scores = np.clip(labels * 0.4 + rng.random(300) * 0.6, 0, 1)
    for s, y in zip(scores, labels):
        stats.observe_label(float(s), bool(y))
    scorer = Scorer.from_name("logreg", seed=1, threshold=0.6)
    dashboard = Dashboard(SimpleNamespace(stats=stats, scorer=scorer))  # type: ignore[arg-type]
    for i in range(12):  # only the newest 8 are shown, newest first
        dashboard.on_alert(alert(i, 0.5 + i / 100))
    dashboard.status = "running"

    text = text_of(dashboard)

    for shown in ("12,345", "67", "89", "4,321", "running", "logreg v0", "threshold 0.60"):
        assert shown in text, shown
    assert re.search(r"consumer lag\s+130\b", text) and "lag by topic: transactions 123   labels 7" in text
    p50, p99 = stats.latency_percentile(50), stats.latency_percentile(99)
    assert re.search(rf"p50 \(last 5k\)\s+{p50:.0f} ms", text) and re.search(rf"p99 \(last 5k\)\s+{p99:.0f} ms", text)
    flagged = scores >= 0.6
    assert re.search(rf"rolling AUC\s+{roc_auc(labels, scores):.3f}", text)
    assert re.search(rf"precision @ 0.60\s+{(flagged & labels).sum() / flagged.sum():.3f}", text)
    assert re.search(r"window labels\s+300", text) and re.search(rf"window frauds\s+{labels.sum()}\b", text)
    rows = [line for line in text.splitlines() if "cust-" in line]
    assert [r.split()[4] for r in rows] == [f"cust-{i}" for i in range(11, 3, -1)]
    assert "0.610" in rows[0] and "1,245.50" in rows[0] and "TX_AMOUNT=1,246" in rows[0]
    assert "customer_amount_zscore_30d=12.2" in rows[0]


def test_empty_view_and_narrow_terminal() -> None:
    text = text_of(render(DashboardView(status="joining the consumer group")), width=80)
    assert "joining the consumer group" in text and "no alerts yet" in text
    assert re.search(r"rolling AUC\s+–", text)  # undefined until labels of both classes arrived
    assert all(len(line) <= 80 for line in text.splitlines())
