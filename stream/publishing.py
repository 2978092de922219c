"""The learner's publication of its models: which are due, the compare-and-set of each new version
in the registry (`ModelRegistry.publish`), a restore after Redis lost its state, a model whose
checkpoint cannot be made (`fraudstream.stream.publish_failures`), and the label stream trimmed
after a publication (`fraudstream.stream.lifecycle` holds one `Publisher`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fraudstream.errors import UnpicklableModel
from fraudstream.stream.model_loading import reload_version
from fraudstream.stream.publish_failures import FailingModels
from fraudstream.stream.registry import ModelRegistry, PublishConflict

if TYPE_CHECKING:
    from fraudstream.models.checkpoint import CheckpointInfo
    from fraudstream.stream.scoring import LiveModel, Scorer

log = logging.getLogger(__name__)


@dataclass
class Publisher:
    """Publishes a learner's models as new versions: every `every_labels` labels or `every_seconds`
    seconds after a model first learned one, with `features` (the settings in force) in their
    headers; trims the label stream after a publication, or every `trim_every_s` while a model cannot
    be checkpointed."""

    registry: ModelRegistry
    owner: str
    features: dict[str, str]
    failing: FailingModels
    every_labels: int = 1000
    every_seconds: float = 30.0
    trim_every_s: float = 1.0
    next_trim: float = 0.0

    def publish_due(self, scorer: Scorer, now: float | None = None, force: bool = False) -> int:
        """Publish the models that are unpublished, or learned enough labels (a model that changes
        only when it refits: and refitted since), or first learned long enough ago; a model that
        could not be checkpointed, once its retry is due. Then trim the label stream."""
        now = time.monotonic() if now is None else now
        published = 0
        for name, m in list(scorer.models.items()):
            due = m.base == 0 or (m.local_labels >= self.every_labels and m.scores_changed) or (
                m.local_labels > 0 and (force or now - (m.dirty_since or now) >= self.every_seconds))
            if not due or (m.fitting and not force and m.base > 0) or not self.failing.due(name, now):
                continue  # a model fitting in the background is published once that fit is done
            info = m.published(self.features)
            try:
                self.registry.publish(m.model, info, owner=self.owner)
            except PublishConflict as exc:
                latest = self.registry.latest_version(name)
                if latest < m.base:
                    published += self._restore(m, info, latest)
                    continue
                log.warning("not publishing %s: %s", name, exc)
                if latest > m.base:
                    reload_version(self.registry, scorer.models, name, latest, self.features)
                continue
            except UnpicklableModel as exc:  # a model of your own that learned something pickle cannot take
                self.failing.failed(scorer, m, exc, now)
                continue
            m.mark_published(info)
            self.failing.published(name, info.version)
            published += 1
        failing = self.failing.positions(scorer)
        if (published or (failing and now >= self.next_trim)) and all(m.base > 0 for m in scorer.models.values()):
            self.failing.trim(scorer)
            self.next_trim = now + self.trim_every_s
        return published

    def _restore(self, m: LiveModel, info: CheckpointInfo, latest: int) -> bool:
        """The registry's newest version of `m` is older than the one this learner learned on from:
        Redis lost its state (a restart without persistence, a flush). Publish `info` after it, so that
        the versions go on and the other consumers load it; whether that was done."""
        log.warning("Redis lost its state (restarted without persistence?): the registry's newest %s is v%d, this "
                    "learner learned on from v%d; publishing v%d from memory (the feature windows, the scored "
                    "records and the label stream start afresh)", info.name, latest, m.base, info.version)
        try:
            self.registry.publish(m.model, info, owner=self.owner, restore=True)
        except PublishConflict as exc:
            log.warning("not publishing %s: %s", info.name, exc)
            return False
        m.mark_published(info)
        return True
