"""The alert rule (`Scorer.alerts`): an alert for a score at or above the threshold, none below it,
and none at all until the champion has learned the warm-up's labels with a fraud among them."""

from __future__ import annotations

import math
from datetime import datetime, timezone

from fraudstream.models.events import Transaction
from fraudstream.stream.features import FEATURE_NAMES
from fraudstream.stream.scoring import Scorer

T0 = datetime(2024, 3, 1, tzinfo=timezone.utc)


def test_an_alert_at_or_above_the_threshold_once_the_champion_has_learned_enough_labels_and_a_fraud() -> None:
    """The warm-up asks for both: its count of labels, and a fraud among them."""
    scorer = Scorer.from_name("logreg", seed=1, threshold=0.5, warmup_labels=3)
    features = dict.fromkeys(FEATURE_NAMES, 0.0)
    txs = [Transaction(transaction_id=f"t{i}", customer_id="c1", terminal_id="m1", amount=10.0, event_time=T0)
           for i in range(4)]
    scores = [math.nextafter(0.5, 0.0), 0.5, 0.9, 0.1]

    def alerted() -> list[float | None]:
        alerts, latencies = scorer.alerts(txs, [None] * len(txs), scores, lambda k: features)
        assert latencies == [0.0] * len(txs)  # no publish time: none measured
        return [None if a is None else a.score for a in alerts]

    assert alerted() == [None] * 4  # nothing learned yet
    scorer.champion.learn(features, True)
    assert alerted() == [None] * 4  # a fraud among the labels, but 1 label of the warm-up's 3
    scorer.champion.learn(features, False)
    assert alerted() == [None] * 4  # 2 of 3
    scorer.champion.learn(features, False)
    assert alerted() == [None, 0.5, 0.9, None]
    alert = scorer.alerts(txs[1:2], [None], [0.5], lambda k: features)[0][0]
    assert alert is not None and (alert.transaction_id, alert.threshold, alert.model_name) == ("t1", 0.5, "logreg")


def test_a_warm_up_of_labels_without_a_fraud_sends_no_alert() -> None:
    scorer = Scorer.from_name("logreg", seed=1, threshold=0.5, warmup_labels=2)
    features = dict.fromkeys(FEATURE_NAMES, 0.0)
    tx = Transaction(transaction_id="t0", customer_id="c1", terminal_id="m1", amount=10.0, event_time=T0)
    for _ in range(5):
        scorer.champion.learn(features, False)
    assert scorer.alerts([tx], [None], [0.99], lambda k: features)[0] == [None]


def test_without_a_warm_up_a_fresh_champion_alerts_from_the_first_transaction() -> None:
    scorer = Scorer.from_name("logreg", seed=1, threshold=0.8, warmup_labels=0)
    tx = Transaction(transaction_id="t0", customer_id="c1", terminal_id="m1", amount=10.0, event_time=T0)
    alerts, _ = scorer.alerts([tx, tx], [None, None], [0.8, 0.79], lambda k: dict.fromkeys(FEATURE_NAMES, 0.0))
    assert [a is not None for a in alerts] == [True, False]
