"""Models in the consumer: the champion scores and alerts, challengers score in shadow, all learn.

Without a `Lifecycle` (tests, tools) every label is learned at once into every model. With one
(the live consumer, `Scorer.from_settings`) labels go through the shared label stream and only the
consumer holding the learner role learns and publishes versions; see `fraudstream.stream.lifecycle`.

>>> scorer = Scorer.from_name("logreg", seed=1, threshold=0.5, challengers=("hst",))
>>> champion, per_model = scorer.score_all([{"TX_AMOUNT": 10.0}])
>>> champion, sorted(per_model[0])
([0.5], ['hst', 'logreg'])
>>> scorer.learn({"TX_AMOUNT": 900.0}, True)
>>> scorer.champion.version, scorer.champion.labels_learned
('0+1', 1)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from fraudstream.models import zoo
from fraudstream.models.batch_scoring import score_matrix
from fraudstream.models.checkpoint import Checkpoint, CheckpointInfo
from fraudstream.models.events import Alert, Transaction
from fraudstream.stream.feature_settings import warn_if_restamped
from fraudstream.stream.label_stream import LabelEntry, LabelOutcome
from fraudstream.stream.state.base import Meanwhile, always_ready
from fraudstream.timeutil import utcnow

if TYPE_CHECKING:
    from fraudstream.config import Settings
    from fraudstream.stream.lifecycle import Lifecycle

log = logging.getLogger(__name__)


@dataclass
class LiveModel:
    """One named model: the checkpoint it was loaded from plus what it learned since.

    `base` is the registry's newest version number when this copy was loaded (the version the next
    publish must follow); `position` the id of the last label-stream entry learned.
    """

    info: CheckpointInfo
    model: Any
    base: int = 0
    local_labels: int = 0
    local_frauds: int = 0
    position: str = "0-0"
    dirty_since: float | None = None
    published_generation: int | None = field(default=None, init=False)  # `fit_generation` when published or loaded

    def __post_init__(self) -> None:
        # a model that refits in batches (gbt_window) does so in a thread here, not in the scoring loop
        fit_in_background = getattr(self.model, "fit_in_background", None)
        if fit_in_background is not None:
            fit_in_background()
        self.published_generation = self.fit_generation

    @property
    def fit_generation(self) -> int | None:
        """For a model whose scores change only when it refits (`WindowedBoostedTrees.fit_generation`),
        a number that changes with them; None for a model that every label changes."""
        return getattr(self.model, "fit_generation", None)

    @property
    def fitting(self) -> bool:
        """A background refit is running (`WindowedBoostedTrees.fitting`); False for other models."""
        return bool(getattr(self.model, "fitting", False))

    @property
    def scores_changed(self) -> bool:
        """The scores may differ from the published version's (always true for models without
        generations that learned since)."""
        generation = self.fit_generation
        return self.local_labels > 0 and (generation is None or generation != self.published_generation)

    @classmethod
    def fresh(cls, name: str, seed: int, position: str = "0-0") -> LiveModel:
        """An untrained zoo model named `name` (`ModelError` if the zoo has no such model)."""
        info = CheckpointInfo(name=name, kind=name, version=0, position=position, extra={"seed": seed})
        return cls(info, zoo.make_model(name, seed), position=position)

    @classmethod
    def from_checkpoint(cls, cp: Checkpoint, base: int | None = None) -> LiveModel:
        return cls(cp.info, cp.model, base=cp.info.version if base is None else base, position=cp.info.position)

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def version(self) -> str:
        """``"7"`` for published version 7 as loaded, ``"7+12"`` after 12 more labels."""
        return f"{self.info.version}+{self.local_labels}" if self.local_labels else str(self.info.version)

    @property
    def labels_learned(self) -> int:
        return self.info.labels_learned + self.local_labels

    @property
    def frauds_learned(self) -> int:
        return self.info.frauds_learned + self.local_frauds

    def learn(self, features: Mapping[str, float], is_fraud: bool, position: str | None = None) -> None:
        self.model.learn_one(dict(features), bool(is_fraud))
        self.local_labels += 1
        self.local_frauds += int(bool(is_fraud))
        if self.dirty_since is None:
            self.dirty_since = time.monotonic()
        if position is not None:
            self.position = position

    def published(self, feature_settings: dict[str, str]) -> CheckpointInfo:
        """The header of the next version: everything learned so far, with the `feature_settings` in
        force here (`fraudstream.stream.feature_settings.of_settings`), which it learns with from now
        on. The first live version of a backtest's or an imported checkpoint keeps that header's
        `extra` (the backtest's evaluation period and learned spans) under ``before_live``, its seed as
        it was: at the top level it would read as what this version learned.

        >>> info = CheckpointInfo("m", "logreg", 3, source="import", extra={"seed": 7, "learned_spans": [["a", "b"]]})
        >>> utc = {"local_timezone": "UTC"}
        >>> first = LiveModel(info, None, base=3).published(utc)
        >>> first.source, first.version, first.feature_settings
        ('live', 4, {'local_timezone': 'UTC'})
        >>> first.extra
        {'seed': 7, 'before_live': {'source': 'import', 'learned_spans': [['a', 'b']]}}
        >>> LiveModel(first, None, base=4).published(utc).extra == first.extra
        True
        >>> again = CheckpointInfo("m", "logreg", 9, source="import", extra=first.extra)  # exported, imported again
        >>> LiveModel(again, None, base=9).published(utc).extra == first.extra
        True
        """
        extra = self.info.extra
        kept = {key: value for key, value in extra.items() if key not in ("seed", "before_live")}
        if self.info.source != "live" and kept:  # (an exported live version imported again has none)
            extra = {**({"seed": extra["seed"]} if "seed" in extra else {}),
                     "before_live": {"source": self.info.source, **kept}}
        return self.info.bump(version=self.base + 1, labels_learned=self.labels_learned, frauds_learned=self.frauds_learned,
                              position=self.position, source="live", extra=extra, feature_settings=dict(feature_settings))

    def mark_published(self, info: CheckpointInfo) -> None:
        warn_if_restamped(self.info, info, log)
        self.info, self.base = info, info.version
        self.published_generation = self.fit_generation
        self.local_labels = self.local_frauds = 0
        self.dirty_since = None


@dataclass
class Scorer:
    """Scores with every active model, alerts with the champion, learns from labels."""

    models: dict[str, LiveModel]
    champion_name: str
    threshold: float
    warmup_labels: int = 0
    top_reasons: int = 3
    lifecycle: Lifecycle | None = field(default=None, repr=False)

    @classmethod
    def from_name(cls, name: str, seed: int, threshold: float, warmup_labels: int = 0,
                  challengers: Sequence[str] = ()) -> Scorer:
        """Fresh zoo models, learning in place (no registry)."""
        names = [name, *(c for c in challengers if c != name)]
        return cls({n: LiveModel.fresh(n, seed) for n in names}, name, threshold, warmup_labels)

    @classmethod
    def from_settings(cls, settings: Settings, client: Any | None = None) -> Scorer:
        """The live scorer: models restored from the registry in Redis (see `Lifecycle`)."""
        from fraudstream.stream.lifecycle import Lifecycle
        from fraudstream.stream.registry import registry_for

        lifecycle = Lifecycle.from_settings(settings, registry_for(settings, client))
        champion, models = lifecycle.start(settings.model, settings.challengers)
        scorer = cls(models, champion, settings.alert_threshold, settings.alert_warmup_labels, lifecycle=lifecycle)
        lifecycle.poll(scorer)  # take the learner role now if it is free
        return scorer

    @property
    def champion(self) -> LiveModel:
        return self.models[self.champion_name]

    @property
    def alerting(self) -> bool:
        """A model that has not learned what fraud looks like raises no alerts (its scores are noise)."""
        slot = self.champion
        return slot.labels_learned >= self.warmup_labels and (slot.frauds_learned > 0 or self.warmup_labels == 0)

    def maintain(self) -> None:
        """Called by the consumer once per loop (about every 200 ms, also when idle): publishes
        checkpoints, follows promotions and loads new versions (see `Lifecycle.maintain`)."""
        self.maintenance()()

    def maintenance(self) -> Callable[[], None]:
        """`maintain` in two parts: what reads from Redis now, the rest (learning) returned."""
        if self.lifecycle is None:
            return lambda: None
        return self.lifecycle.maintenance(self)

    def flush_labels(self) -> None:
        """Hand the labels learned so far to the shared label stream (before offsets are committed)."""
        if self.lifecycle is not None:
            self.lifecycle.flush()

    def close(self) -> None:
        """Publish what was learned and give up the learner role (graceful stop)."""
        if self.lifecycle is not None:
            self.lifecycle.close(self)

    def score(self, features: Sequence[Mapping[str, float]]) -> list[float]:
        """Champion scores only."""
        if self.lifecycle is not None:
            self.lifecycle.before_score(self)
        return zoo.score_many(self.champion.model, features)

    def score_all(self, features: Sequence[Mapping[str, float]]) -> tuple[list[float], list[dict[str, float]]]:
        """Champion scores, and per transaction every active model's score (champion included)."""
        return self._score_each(lambda model: zoo.score_many(model, features), len(features))

    def score_matrix(self, names: Sequence[str], matrix: np.ndarray) -> tuple[list[float], list[dict[str, float]]]:
        """`score_all` of the rows of a feature matrix whose columns are `names`."""
        return self._score_each(lambda model: score_matrix(model, names, matrix), len(matrix))

    def _score_each(self, score: Callable[[Any], list[float]], n: int) -> tuple[list[float], list[dict[str, float]]]:
        if self.lifecycle is not None:
            self.lifecycle.before_score(self)
        per_model: list[dict[str, float]] = [{} for _ in range(n)]
        for name, slot in self.models.items():  # a batch at a time: the same scores as one by one, faster
            for scores, value in zip(per_model, score(slot.model)):
                scores[name] = value
        champion = self.champion_name
        return [scores[champion] for scores in per_model], per_model

    def learn(self, features: Mapping[str, float], is_fraud: bool, scores: Mapping[str, float] | None = None) -> None:
        """Learn from one label; `scores` are the models' scores saved when it was scored (metrics)."""
        if self.lifecycle is not None:
            self.lifecycle.on_label(features, is_fraud, scores or {})
            return
        for slot in self.models.values():
            slot.learn(features, is_fraud)

    def submit_labels(self, entries: Sequence[LabelEntry], meanwhile: Meanwhile | None = None,
                      ) -> list[LabelOutcome]:
        """Learn from labels, each transaction's once: through the shared label stream when there is
        a lifecycle (durable when this returns), else at once (entries without features are unknown).
        `meanwhile` runs while Redis appends them (first, without a lifecycle)."""
        if self.lifecycle is not None:
            return self.lifecycle.submit(entries, meanwhile)
        if meanwhile is not None:
            meanwhile(always_ready)
        outcomes = []
        for e in entries:
            if e.features is None:
                outcomes.append(LabelOutcome.UNKNOWN)
                continue
            for slot in self.models.values():
                slot.learn(e.features, e.is_fraud)
            outcomes.append(LabelOutcome.APPENDED)
        return outcomes

    def alerts(self, txs: Sequence[Transaction], published_ms: Sequence[int | None], scores: Sequence[float],
               features: Callable[[int], dict[str, float]]) -> tuple[list[Alert | None], list[float]]:
        """Per scored transaction its alert (None below the threshold, or while the champion does not
        alert yet) and its latency from publish (`published_ms`: the record's timestamp) in ms;
        `features(k)`: the features of the k-th, read only for an alert."""
        now = utcnow()
        now_ms = now.timestamp() * 1000.0
        threshold = self.threshold if self.alerting else float("inf")
        alerts: list[Alert | None] = []
        latencies: list[float] = []
        for k, (tx, published, score) in enumerate(zip(txs, published_ms, scores)):
            latency_ms = max(0.0, now_ms - published) if published and published > 0 else 0.0
            latencies.append(latency_ms)
            alerts.append(self.alert(tx, features(k), score, now, latency_ms) if score >= threshold else None)
        return alerts, latencies

    def alert(self, tx: Transaction, features: dict[str, float], score: float, scored_at: datetime,
              latency_ms: float) -> Alert:
        champion = self.champion
        reasons = zoo.explain(champion.model, features, self.top_reasons)
        return Alert(
            transaction_id=tx.transaction_id, customer_id=tx.customer_id, terminal_id=tx.terminal_id,
            amount=tx.amount, event_time=tx.event_time, score=score, threshold=self.threshold,
            model_name=champion.name, model_version=champion.version, reasons=reasons,
            features=features, scored_at=scored_at, latency_ms=latency_ms,
        )
