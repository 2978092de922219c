"""Cost of the consumer's operational figures, run by hand:

    .venv/bin/python benchmarks/observability_cost.py

Per-transaction and per-label bookkeeping added to the consumer loop (`RunStats.observe_latency`,
`observe_label`), one Prometheus scrape of a full window (`ConsumerCollector` + exposition) and one
dashboard frame (`Dashboard.view` + render to a 160-column console), with a full 200,000-latency
deque and a full 5,000-label window.
"""

from __future__ import annotations

import io
import time
from datetime import datetime, timezone
from types import SimpleNamespace

import numpy as np
from rich.console import Console

from fraudstream.models.events import Alert, Reason
from fraudstream.stream.dashboard import Dashboard
from fraudstream.stream.metrics import ConsumerCollector, ModelView, exposition
from fraudstream.stream.scoring import Scorer
from fraudstream.stream.stats import RunStats


def per_call(fn, n: int) -> float:  # type: ignore[no-untyped-def]
    began = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - began) / n


def main() -> None:
    rng = np.random.default_rng(1)
    stats = RunStats(processed=1_000_000, alerts=1234)
    latencies = rng.exponential(50.0, 200_000).tolist()
    labels = (rng.random(200_000) < 0.01).tolist()
    scores = rng.random(200_000).tolist()
    latency_us = per_call(lambda i: stats.observe_latency(latencies[i]), 200_000) * 1e6
    label_us = per_call(lambda i: stats.observe_label(scores[i], labels[i]), 200_000) * 1e6
    stats.lag = {(t, p): 10 for t in ("transactions", "labels") for p in range(6)}
    collector = ConsumerCollector(lambda: stats, lambda: ModelView("logreg", "12+345", 100_000, 0.5))
    scrape_ms = per_call(lambda i: exposition(collector), 50) * 1e3
    scorer = Scorer.from_name("logreg", seed=1, threshold=0.5)
    dashboard = Dashboard(SimpleNamespace(stats=stats, scorer=scorer))  # type: ignore[arg-type]
    reasons = [Reason(feature="TX_AMOUNT", value=900.0, contribution=3.0)] * 3
    for i in range(8):
        dashboard.on_alert(Alert(
            transaction_id=str(i), customer_id=str(i), terminal_id=str(i), amount=900.0,
            event_time=datetime(2024, 1, 1, tzinfo=timezone.utc), score=0.9, threshold=0.5, model_name="logreg",
            model_version="1", reasons=reasons, features={}, scored_at=datetime(2024, 1, 1, tzinfo=timezone.utc),
            latency_ms=1.0))
    console = Console(file=io.StringIO(), width=160)
    frame_ms = per_call(lambda i: console.print(dashboard), 50) * 1e3
    print(f"observe_latency      {latency_us:6.2f} µs per transaction")
    print(f"observe_label        {label_us:6.2f} µs per label")
    print(f"scrape (5,000 labels) {scrape_ms:6.2f} ms")
    print(f"dashboard frame      {frame_ms:6.2f} ms (the demo refreshes twice a second)")


if __name__ == "__main__":
    main()
