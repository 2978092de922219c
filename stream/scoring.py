"""The champion model in the consumer: score a batch, learn from labelled records, build alerts."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from fraudstream.models.events import Alert, Transaction

log = logging.getLogger(__name__)


@dataclass
class ModelSlot:
    """One named model with the count of labels it has learned from."""

    name: str
    model: object
    labels_learned: int = 0
    frauds_learned: int = 0
    base_version: str = "0"

    @property
    def version(self) -> str:
        return f"{self.base_version}+{self.labels_learned}"


@dataclass
class Scorer:
    """Scores with the champion; learns from labels; turns high scores into alerts."""

    champion: ModelSlot
    threshold: float
    warmup_labels: int = 0
    top_reasons: int = 3
    _zoo: object = field(default=None, repr=False)

    @classmethod
    def from_name(cls, name: str, seed: int, threshold: float, warmup_labels: int = 0) -> Scorer:
        from fraudstream.models import zoo

        return cls(ModelSlot(name, zoo.make_model(name, seed)), threshold, warmup_labels, _zoo=zoo)

    @property
    def alerting(self) -> bool:
        """A model that has not learned what fraud looks like raises no alerts (its scores are noise)."""
        slot = self.champion
        return slot.labels_learned >= self.warmup_labels and (slot.frauds_learned > 0 or self.warmup_labels == 0)

    @property
    def zoo(self):  # type: ignore[no-untyped-def]
        if self._zoo is None:
            from fraudstream.models import zoo

            self._zoo = zoo
        return self._zoo

    def maintain(self) -> None:
        """Called by the consumer once per loop (about every 200 ms, also when idle) and after each
        batch is committed: the place for checkpoints, promotions and model reloads."""

    def score(self, features: Sequence[dict[str, float]]) -> list[float]:
        score_one = self.zoo.score_one
        model = self.champion.model
        return [score_one(model, x) for x in features]

    def learn(self, features: dict[str, float], is_fraud: bool) -> None:
        self.champion.model.learn_one(features, bool(is_fraud))  # type: ignore[attr-defined]
        self.champion.labels_learned += 1
        self.champion.frauds_learned += int(bool(is_fraud))

    def alert(self, tx: Transaction, features: dict[str, float], score: float, scored_at: datetime,
              latency_ms: float) -> Alert:
        reasons = self.zoo.explain(self.champion.model, features, self.top_reasons)
        return Alert(
            transaction_id=tx.transaction_id, customer_id=tx.customer_id, terminal_id=tx.terminal_id,
            amount=tx.amount, event_time=tx.event_time, score=score, threshold=self.threshold,
            model_name=self.champion.name, model_version=self.champion.version, reasons=reasons,
            features=features, scored_at=scored_at, latency_ms=latency_ms,
        )
