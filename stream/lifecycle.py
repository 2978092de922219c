"""Model lifecycle in the live consumers: one learner publishes signed versions, every consumer scores.

Design (several consumers of one group share one champion and never diverge silently):

- Every consumer applies the labels of its own partitions and appends (features as scored, label,
  each model's score) to one Redis stream, the *label stream*, before committing the offsets; each
  transaction's label once (`LabelEntry.key`), however often it is delivered.
- One consumer holds the *learner role* (a Redis key ``SET NX PX``, renewed every second, lost
  after `LEARNER_TTL_MS` without renewal). Only it learns: from the label stream, in stream order,
  for every active model (champion and challengers); entries it appended itself right after those
  it has learned are learned from memory, not read back (`own_appends`). It publishes a signed
  checkpoint version every `checkpoint_every_labels` labels or `checkpoint_every_seconds` seconds
  (a model whose scores change only when it refits, `gbt_window`, after that many labels only if it
  refitted). A checkpoint records the last stream entry it has learned, so a new learner (after a
  crash, SIGKILL or rebalance) restores the newest checkpoint and replays the stream from there: no
  label is lost or learned twice. Publishing is a compare-and-set in Lua (next version, role still held).
- A model whose checkpoint cannot be made is tried again with a backoff, and the label stream is
  kept for it only so long (`fraudstream.stream.publish_failures`).
- The other consumers score with the newest published versions, polled every second. Alerts name
  the model and its version (``7`` as published, ``7+12`` on the learner after 12 more labels).
- ``fraudstream models promote NAME`` sets the champion key; every consumer follows within a poll
  (about 1 s). The former champion stays as a challenger. Imports publish a new version that the
  learner and scorers pick up the same way.

Trade-off: scorers lag the learner by up to one checkpoint interval; only one process learns.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fraudstream.stream.feature_settings import of_settings
from fraudstream.stream.label_stream import AppendedRun, LabelEntry, LabelOutcome, LabelRow, stream_id
from fraudstream.stream.model_loading import add_active, check_names, newest_valid, reload_version
from fraudstream.stream.publish_failures import KEEP_FOR_FAILING_S, FailingModels, RetrySchedule, warn_of_trimmed_past
from fraudstream.stream.publishing import Publisher
from fraudstream.stream.registry import ModelRegistry
from fraudstream.stream.scoring import LiveModel
from fraudstream.stream.signing_record import note_signing_key
from fraudstream.stream.state.base import Meanwhile

if TYPE_CHECKING:
    from fraudstream.config import Settings
    from fraudstream.stream.scoring import Scorer

log = logging.getLogger(__name__)

LEARNER_TTL_MS = 5000
POLL_SECONDS = 1.0
READ_CHUNK = 1000
Chunk = tuple[str, list[LabelRow]]  # the entries after this id: (id, features, is_fraud)


def _oldest_position(models: Iterable[LiveModel]) -> str:
    """The stream position of the model that has learned least (where catching up reads from)."""
    return min((m.position for m in models), key=stream_id)


def _owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class Lifecycle:
    """Checkpoints, learner role, promotions and reloads for one consumer's `Scorer`."""

    registry: ModelRegistry
    seed: int = 42
    features: dict[str, str] = field(default_factory=dict)  # in force here (of_settings; {}: the defaults, UTC)
    every_labels: int = 1000
    every_seconds: float = 30.0
    poll_seconds: float = POLL_SECONDS
    ttl_ms: int = LEARNER_TTL_MS
    owner: str = field(default_factory=_owner_id)
    is_learner: bool = False
    pending: list[tuple[Mapping[str, float], bool, Mapping[str, float]]] = field(default_factory=list)
    _next_poll: float = 0.0
    _unlearned: bool = False  # labels appended to the stream since the last catch-up
    # what this consumer appended since the last catch-up (as the learner): learned without reading it back
    appended: list[AppendedRun] = field(default_factory=list)
    unloadable: set[str] = field(default_factory=set)  # active models that could not be loaded (logged once)
    keep_for_unpublishable_s: float = KEEP_FOR_FAILING_S  # of the label stream, behind a model not checkpointed
    failing: FailingModels = field(init=False)  # models whose checkpoint cannot be made (`publish_failures`)
    publisher: Publisher = field(init=False)
    _loaded: dict[str, int] = field(default_factory=dict)  # each model's version when the learner checked its position

    def __post_init__(self) -> None:
        self.failing = FailingModels(self.registry, RetrySchedule(self.every_seconds), self.keep_for_unpublishable_s)
        self.publisher = Publisher(self.registry, self.owner, self.features, self.failing, self.every_labels,
                                   self.every_seconds, self.poll_seconds)

    @classmethod
    def from_settings(cls, settings: Settings, registry: ModelRegistry) -> Lifecycle:
        from fraudstream.models.checkpoint import warn_if_demo_key

        warn_if_demo_key(settings.model_signing_key.get_secret_value(), log)
        return cls(registry, settings.seed, of_settings(settings), settings.checkpoint_every_labels,
                   settings.checkpoint_every_seconds,
                   keep_for_unpublishable_s=settings.label_stream_kept_for_unpublishable.total_seconds())

    # -- start -----------------------------------------------------------------------------------
    def start(self, champion: str, challengers: Sequence[str]) -> tuple[str, dict[str, LiveModel]]:
        """Register the configured models (the registry's champion wins over `champion` once set) and
        restore each from its newest valid checkpoint, or fresh from the zoo if it has none.
        `ModelError`, before anything is written, for a name that is neither."""
        check_names(self.registry, [champion], challengers)
        if note_signing_key(self.registry) is False:
            log.warning("the newest model published in this registry was signed with another "
                        "FRAUDSTREAM_MODEL_SIGNING_KEY than this consumer's: checkpoints signed with it will not "
                        "verify here")
        current = self.registry.set_champion_if_absent(champion)
        if current != champion:
            log.warning("champion is %s, the registry's (promoted, or the first consumers' FRAUDSTREAM_MODEL: the "
                        "default was gam_under before 2026-12-03), not the configured %s; FRAUDSTREAM_MODEL=%s "
                        "silences this, or make %s a challenger (FRAUDSTREAM_CHALLENGERS) and, once it has learned, "
                        "`fraudstream models promote` it", current, champion, current, champion)
        self.registry.add_challengers(list(challengers))
        current, active = self.registry.active()
        names = [current or champion, *(n for n in active if n != current)]
        models = {names[0]: newest_valid(self.registry, names[0], self.seed, features=self.features)}
        for name in names[1:]:  # (the champion's errors stop the start, a challenger's leave it out)
            add_active(self.registry, models, name, self.seed, self.unloadable, self.features)
        names = [n for n in names if n in models]
        log.info("models: champion %s v%s; challengers %s", names[0], models[names[0]].version,
                 ", ".join(f"{n} v{models[n].version}" for n in names[1:]) or "none")
        return names[0], models

    # -- labels ----------------------------------------------------------------------------------
    def on_label(self, features: Mapping[str, float], is_fraud: bool, scores: Mapping[str, float]) -> None:
        self.pending.append((features, is_fraud, scores))

    def flush(self) -> int:
        """Append the pending labels to the label stream; how many."""
        if not self.pending:
            return 0
        self.registry.labels.append([LabelEntry(x, y, scores) for x, y, scores in self.pending])
        n = len(self.pending)
        self.pending = []
        self._unlearned = True
        return n

    def submit(self, entries: Sequence[LabelEntry], meanwhile: Meanwhile | None = None) -> list[LabelOutcome]:
        """Append labels to the label stream now, each transaction's once (see `LabelEntry`);
        `meanwhile` runs while Redis appends them."""
        self.flush()
        outcomes = self.registry.labels.append(entries, self.appended if self.is_learner else None, meanwhile)
        self._unlearned = self._unlearned or LabelOutcome.APPENDED in outcomes
        return outcomes

    def before_score(self, scorer: Scorer) -> None:
        """The learner learns labels of earlier runs of this batch before scoring the next run."""
        if self.is_learner and (self.pending or self._unlearned):
            self.flush()
            self.catch_up(scorer)

    def catch_up(self, scorer: Scorer, ahead: Chunk | None = None) -> int:
        """Learn every stream entry after each model's position, in stream order (passing over
        entries that cannot be read); returns how many were learned. `ahead`: the first chunk as
        `read_ahead` read it (used when the models have not moved since)."""
        self._unlearned = False
        self.appended = []
        models = list(scorer.models.values())
        if not models:
            return 0
        after = _oldest_position(models)
        learned = 0
        while True:
            rows = ahead[1] if ahead is not None and ahead[0] == after else self.registry.labels.read(after, READ_CHUNK)
            ahead = None
            for rid, x, y in rows:
                key = stream_id(rid)
                for m in models:
                    if key > stream_id(m.position):
                        if x is None:  # unreadable (logged by the codec): passed over, not learned
                            m.position = rid
                        else:
                            m.learn(x, y, rid)
                learned += x is not None
            if len(rows) < READ_CHUNK:
                return learned
            after = rows[-1][0]

    def own_appends(self, scorer: Scorer) -> Chunk | None:
        """The entries this consumer appended since the last catch-up, as the chunk `read_ahead` would
        read now, when they follow the position `catch_up` reads from directly; else None (entries of
        another consumer came before or between them, or the models moved: they are read instead)."""
        runs = [run for run in self.appended if run.rows]
        if not runs or not scorer.models:
            return None
        after = _oldest_position(scorer.models.values())
        rows: list[LabelRow] = []
        expected = stream_id(after)
        for run in runs:
            if stream_id(run.after) != expected:
                return None
            rows += run.rows
            expected = stream_id(run.rows[-1][0])
        return after, rows

    def read_ahead(self, scorer: Scorer) -> Chunk | None:
        """The first chunk `catch_up` would read now, with the position it was read after."""
        if not scorer.models:
            return None
        after = _oldest_position(scorer.models.values())
        return after, self.registry.labels.read(after, READ_CHUNK)

    # -- the per-loop hook -------------------------------------------------------------------------
    def maintain(self, scorer: Scorer) -> None:
        self.maintenance(scorer)()

    def maintenance(self, scorer: Scorer) -> Callable[[], None]:
        """`maintain` in two parts: its reads now (labels to append, the role, versions, the next
        labels to learn), and returned, the learning and publishing, which seldom need the server
        (the consumer runs it while the server updates a batch's customers)."""
        self.flush()
        now = time.monotonic()
        if now >= self._next_poll:
            self.poll(scorer)
        if not self.is_learner:
            return lambda: None
        ahead = (self.own_appends(scorer) or self.read_ahead(scorer)) if self._unlearned else None

        def learn_and_publish() -> None:
            if ahead is not None:
                self.catch_up(scorer, ahead)
            self.publish_due(scorer, now)
        return learn_and_publish

    def poll(self, scorer: Scorer) -> None:
        """Renew or take the learner role, follow the champion and challengers, load new versions.
        Not due again for `poll_seconds` only once it has succeeded: after a server error the next
        `maintenance` polls again, so the consumer's retry of it waits with a growing backoff."""
        started = time.monotonic()
        role = self.registry.hold_learner(self.owner, self.ttl_ms)
        was, self.is_learner = self.is_learner, role > 0
        if role == 2:
            log.info("took the learner role (%s)", self.owner)
        elif was and not self.is_learner:
            log.warning("lost the learner role; reloading the published models")
            for name in list(scorer.models):
                scorer.models[name] = newest_valid(self.registry, name, self.seed, features=self.features)
            self.failing.forget()  # the learner that took over tries its own
        champion, challengers = self.registry.active()
        if champion and champion != scorer.champion_name:
            log.info("champion is now %s (was %s)", champion, scorer.champion_name)
        wanted = [champion or scorer.champion_name, *challengers]
        for name in wanted:
            if name not in scorer.models:
                add_active(self.registry, scorer.models, name, self.seed, self.unloadable, self.features)
        if wanted[0] not in scorer.models:
            wanted[0] = scorer.champion_name  # keeps alerting with the champion it has
        scorer.champion_name = wanted[0]
        for name in [n for n in scorer.models if n not in wanted]:
            log.info("model %s is no longer active", name)
            del scorer.models[name]
            self.failing.forget(name)  # added again, it is tried at once
        for name, latest in self.registry.latest_versions(list(scorer.models)).items():
            if latest > scorer.models[name].base:
                reload_version(self.registry, scorer.models, name, latest, self.features)
                self.failing.reloaded(name)
        if self.is_learner:
            warn_of_trimmed_past(self.registry.labels, scorer.models, self._loaded)
            self.catch_up(scorer)  # other consumers' labels; after a takeover, all since the checkpoints
        self._next_poll = started + self.poll_seconds

    def publish_due(self, scorer: Scorer, now: float | None = None, force: bool = False) -> int:
        """`Publisher.publish_due`: the models due, published; then the label stream trimmed."""
        return self.publisher.publish_due(scorer, now, force)

    def close(self, scorer: Scorer) -> None:
        """Flush labels; as the learner, learn and publish everything, then release the role."""
        try:
            self.flush()
            if self.is_learner and self.registry.hold_learner(self.owner, self.ttl_ms) > 0:
                self.catch_up(scorer)
                self.publish_due(scorer, force=True)
                self.registry.release_learner(self.owner)
                self.is_learner = False
        except Exception as exc:  # stopping anyway: the next learner replays the label stream
            log.warning("could not publish the models on stop: %s", exc)

