"""The live terminal dashboard of ``fraudstream demo`` (rich).

`Dashboard` gathers plain figures from a running consumer (its `RunStats`, champion and alerts) into
a `DashboardView`; `render` turns a view into rich renderables and does no I/O. The consumer thread
only appends alerts (`Dashboard.on_alert`); rich's refresh thread calls `Dashboard.__rich__`, which
reads numbers and copies of small containers, never the Kafka client.

>>> import io
>>> from rich.console import Console
>>> console = Console(record=True, width=120, file=io.StringIO())
>>> console.print(render(DashboardView(processed=1234, alerts=5)))
>>> "1,234" in console.export_text()
True
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from fraudstream.models.events import Alert
from fraudstream.stream.rolling import WindowFigures

if TYPE_CHECKING:
    from fraudstream.stream.consumer import ScoringConsumer

FEED_SIZE = 8
RATE_HORIZON_S = 5.0
LATENCY_SAMPLE = 5000  # newest latencies used for p50/p99


@dataclass(frozen=True)
class DashboardView:
    """Everything the dashboard shows at one moment, as plain values."""

    status: str = "starting"
    elapsed_s: float = 0.0
    rate_tps: float = 0.0
    processed: int = 0
    alerts: int = 0
    dead_lettered: int = 0
    labels_learned: int = 0
    labels_dead_lettered: int = 0
    lag: dict[str, int] = field(default_factory=dict)  # topic -> records behind, over its partitions
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    model_name: str = "?"
    model_version: str = "?"
    model_labels: int = 0
    threshold: float = math.nan
    alerting: bool = False
    warmup_labels: int = 0
    window: WindowFigures = field(default_factory=lambda: WindowFigures(0, 0, math.nan, 0, math.nan))
    feed: tuple[Alert, ...] = ()


def _num(value: float, digits: int = 3) -> str:
    """
    >>> _num(float("nan")), _num(0.91234)
    ('–', '0.912')
    """
    return "–" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f} ms"


def _value(value: float) -> str:
    """
    >>> _value(1176.1), _value(12.13), _value(0.0042)
    ('1,176', '12.1', '0.0042')
    """
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def _reasons(alert: Alert, top: int = 3) -> str:
    return ", ".join(f"{r.feature}={_value(r.value)}" for r in alert.reasons[:top])


def render(view: DashboardView) -> RenderableType:
    """The dashboard for one view: header, figures, model quality and the newest alerts."""
    state = "alerting" if view.alerting else f"warming up ({view.model_labels:,}/{view.warmup_labels:,} labels, a fraud among them)"
    header = Text.assemble(
        ("fraudstream demo", "bold"), f"   {view.status}   {view.elapsed_s:,.0f} s   model ",
        (f"{view.model_name} v{view.model_version}", "bold cyan"),
        f"   threshold {_num(view.threshold, 2)}   ", (state, "green" if view.alerting else "yellow"),
    )

    figures = Table.grid(padding=(0, 3))
    for _ in range(3):
        figures.add_column(justify="left", no_wrap=True)
        figures.add_column(justify="right", style="bold", no_wrap=True)
    figures.add_row("tx/s (5 s)", f"{view.rate_tps:,.0f}", "processed", f"{view.processed:,}",
                    "alerts", f"{view.alerts:,}")
    newest = f"(last {LATENCY_SAMPLE // 1000}k)"
    figures.add_row(f"p50 {newest}", _ms(view.latency_p50_ms), f"p99 {newest}", _ms(view.latency_p99_ms),
                    "dead-lettered", f"{view.dead_lettered:,}")
    figures.add_row("consumer lag", f"{sum(view.lag.values()):,}", "labels learned", f"{view.labels_learned:,}",
                    "labels DLQ", f"{view.labels_dead_lettered:,}")
    by_topic = "   ".join(f"{topic} {behind:,}" for topic, behind in sorted(view.lag.items(), reverse=True))
    throughput = Group(figures, Text(f"lag by topic: {by_topic}" if by_topic else "lag by topic: –", style="dim"))

    w = view.window
    quality = Table.grid(padding=(0, 3))
    for _ in range(2):
        quality.add_column(justify="left", no_wrap=True)
        quality.add_column(justify="right", style="bold", no_wrap=True)
    quality.add_row("rolling AUC", _num(w.auc), "window labels", f"{w.n:,}")
    quality.add_row(f"precision @ {_num(view.threshold, 2)}", _num(w.precision), "window frauds", f"{w.frauds:,}")

    feed = Table(expand=True, box=None, padding=(0, 1), header_style="bold")
    feed.add_column("event time", no_wrap=True)
    feed.add_column("score", justify="right")
    feed.add_column("customer", no_wrap=True)
    feed.add_column("terminal", no_wrap=True)
    feed.add_column("amount", justify="right")
    feed.add_column("top reasons", ratio=1, overflow="ellipsis", no_wrap=True)
    for alert in reversed(view.feed):
        feed.add_row(f"{alert.event_time:%Y-%m-%d %H:%M:%S}", f"{alert.score:.3f}", alert.customer_id,
                     alert.terminal_id, f"{alert.amount:,.2f}", _reasons(alert))
    if not view.feed:
        feed.add_row("–", "", "no alerts yet", "", "", "")

    return Group(
        Panel(header, border_style="blue"),
        Panel(throughput, title="throughput", title_align="left"),
        Panel(quality, title="champion quality over the newest labels", title_align="left"),
        Panel(feed, title=f"newest alerts ({view.alerts:,} in total)", title_align="left"),
    )


class Dashboard:
    """Live figures of one consumer; pass `on_alert` as the consumer's alert callback."""

    def __init__(self, app: ScoringConsumer | None = None, feed_size: int = FEED_SIZE) -> None:
        self.app = app  # may be set once the consumer exists (its alert callback is this dashboard's)
        self._feed: deque[Alert] = deque(maxlen=feed_size)
        self._samples: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()
        self.started = time.monotonic()
        self.status = "starting"

    def on_alert(self, alert: Alert) -> None:
        self._feed.append(alert)

    def rate(self, now: float, processed: int) -> float:
        """Transactions per second over the last `RATE_HORIZON_S` seconds of samples.

        >>> d = Dashboard()
        >>> d.rate(10.0, 0), d.rate(12.0, 400), d.rate(14.0, 1000)
        (0.0, 200.0, 250.0)
        """
        with self._lock:
            self._samples.append((now, processed))
            while len(self._samples) > 2 and now - self._samples[1][0] >= RATE_HORIZON_S:
                self._samples.popleft()
            t0, n0 = self._samples[0]
        return (processed - n0) / (now - t0) if now > t0 else 0.0

    def view(self) -> DashboardView:
        now = time.monotonic()
        app = self.app
        if app is None:
            return DashboardView(status=self.status, elapsed_s=now - self.started)
        s = app.stats
        latencies = sorted(itertools.islice(reversed(s.latencies_ms), LATENCY_SAMPLE))  # C-level: thread-safe
        lag: dict[str, int] = {}
        for (topic, _), behind in dict(s.lag).items():
            lag[topic] = lag.get(topic, 0) + behind
        scorer = app.scorer
        try:
            champion = scorer.champion
            name, version, labels = champion.name, str(champion.version), int(champion.labels_learned)
            alerting = bool(scorer.alerting)
        except (KeyError, AttributeError):  # a promotion between two reads: show it on the next refresh
            name, version, labels, alerting = "?", "?", 0, False
        return DashboardView(
            status=self.status, elapsed_s=now - self.started, rate_tps=self.rate(now, s.processed),
            processed=s.processed, alerts=s.alerts, dead_lettered=s.dead_lettered,
            labels_learned=s.labels_learned, labels_dead_lettered=s.labels_dead_lettered, lag=lag,
            latency_p50_ms=_percentile(latencies, 50), latency_p99_ms=_percentile(latencies, 99),
            model_name=name, model_version=version, model_labels=labels, threshold=scorer.threshold,
            alerting=alerting, warmup_labels=scorer.warmup_labels,
            window=s.labelled.figures(scorer.threshold), feed=tuple(self._feed),
        )

    def __rich__(self) -> RenderableType:
        return render(self.view())


def _percentile(ordered: list[float], q: float) -> float | None:
    """
    >>> _percentile([1.0, 2.0, 3.0, 4.0, 100.0], 99), _percentile([], 50)
    (100.0, None)
    """
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, round(q / 100.0 * (len(ordered) - 1))))]
