"""Models the learner cannot checkpoint, and how far the label stream waits for them.

A model of your own can become unpicklable as it learns (it keeps a lambda, a lock, a file): the
learner cannot publish it, so its newest version, and the position that version learned up to,
stop moving. The label stream is trimmed only up to what every kept version has learned, so it
grew without bound behind such a model. Now:

- the learner tries again with a growing backoff (`RetrySchedule`: from the checkpoint interval,
  doubling up to `RETRY_MAX_S`), logging an error at each attempt;
- the failure is recorded in the registry (`PublishFailures`, hash ``publish_failed``: name ->
  JSON), cleared by the model's next publication, and shown by ``fraudstream models``;
- the label stream is kept for such a model for `KEEP_FOR_FAILING_S` of labels behind what it has
  learned in the learner (`trim_bound`), then trimmed past its versions: a restart, which loads its
  newest version, then skips the labels in between (warned of once, and shown).

A model whose position the stream was trimmed past (that one after a restart; a challenger retired
and then added again, whose versions no longer counted in the trim) learns on from the oldest entry
kept: `warn_of_trimmed_past` says so when the learner loads it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from fraudstream.stream.label_stream import stream_id

if TYPE_CHECKING:
    from fraudstream.errors import UnpicklableModel
    from fraudstream.stream.label_log import LabelLog
    from fraudstream.stream.registry import ModelRegistry
    from fraudstream.stream.scoring import LiveModel, Scorer

log = logging.getLogger(__name__)

RETRY_MAX_S = 3600.0  # the longest wait between two attempts to checkpoint a failing model
KEEP_FOR_FAILING_S = 3600.0  # labels kept in the stream behind what a failing model has learned


@dataclass(frozen=True)
class PublishFailure:
    """A model whose newest checkpoint could not be made: since when (epoch s), how many attempts,
    the newest version it has (what a restart loads), the last error, and whether the label stream
    has been trimmed past that version."""

    name: str
    version: int
    since: float
    attempts: int
    error: str
    trimmed_past: bool = False


class PublishFailures:
    """The registry's record of failing models (`key` is `ModelRegistry.key`)."""

    def __init__(self, client: Any, key: Callable[..., str]) -> None:
        self.client = client
        self.hash = key("publish_failed")

    def record(self, name: str, version: int, error: str) -> PublishFailure:
        """One more failed attempt of `name` (keeps the first one's time)."""
        before = self.get(name)
        failure = PublishFailure(name, version, before.since if before else time.time(),
                                 before.attempts + 1 if before else 1, error, before.trimmed_past if before else False)
        self.client.hset(self.hash, name, json.dumps(asdict(failure)))
        return failure

    def note_trimmed_past(self, name: str) -> None:
        before = self.get(name)
        if before is not None and not before.trimmed_past:
            self.client.hset(self.hash, name, json.dumps({**asdict(before), "trimmed_past": True}))

    def clear(self, name: str) -> bool:
        """Forget the failures of `name` (published, or retired); whether there were any."""
        return bool(self.client.hdel(self.hash, name))

    def get(self, name: str) -> PublishFailure | None:
        raw = self.client.hget(self.hash, name)
        return PublishFailure(**json.loads(raw)) if raw else None

    def all(self) -> dict[str, PublishFailure]:
        return {k.decode(): PublishFailure(**json.loads(v)) for k, v in self.client.hgetall(self.hash).items()}


@dataclass
class RetrySchedule:
    """When this learner tries again to checkpoint each failing model: `first_s` after the first
    failure, twice as long after each next one, at most `max_s`.

    >>> r = RetrySchedule(30.0)
    >>> r.failed("mine", now=0.0), r.due("mine", now=29.0), r.due("mine", now=30.0)
    (30.0, False, True)
    >>> r.failed("mine", now=30.0), r.failed("mine", now=90.0), sorted(r.failing)
    (60.0, 120.0, ['mine'])
    >>> r.succeeded("mine"), r.succeeded("mine"), r.due("mine", now=0.0)
    (True, False, True)
    >>> for attempt in range(2000):  # a model failing for months waits an hour between attempts
    ...     wait = r.failed("mine", now=0.0)
    >>> wait
    3600.0
    """

    first_s: float
    max_s: float = RETRY_MAX_S
    failing: dict[str, tuple[int, float]] = field(default_factory=dict)  # name -> (failures, next attempt)

    def due(self, name: str, now: float) -> bool:
        return name not in self.failing or now >= self.failing[name][1]

    def failed(self, name: str, now: float) -> float:
        """Note a failure of `name`; the seconds until it is tried again."""
        failures = self.failing.get(name, (0, now))[0] + 1
        wait = min(self.first_s * 2 ** min(failures - 1, 32), self.max_s)  # 2 ** 1024 is no float
        self.failing[name] = (failures, now + wait)
        return wait

    def succeeded(self, name: str) -> bool:
        """`name` was published: whether it had failed."""
        return self.failing.pop(name, None) is not None


@dataclass
class FailingModels:
    """A learner's models that cannot be checkpointed: when each is tried again, the registry's
    record, and the label stream's trim that waits for them no longer than `keep_s`."""

    registry: ModelRegistry
    retries: RetrySchedule
    keep_s: float = KEEP_FOR_FAILING_S
    trimmed_past: set[str] = field(default_factory=set)  # the stream was trimmed past their newest version

    def due(self, name: str, now: float) -> bool:
        return self.retries.due(name, now)

    def failed(self, scorer: Scorer, m: LiveModel, exc: UnpicklableModel, now: float) -> None:
        """Log an error (each attempt), record it in the registry, try again after a backoff."""
        failure = self.registry.publish_failures.record(m.name, m.base, str(exc))
        wait = self.retries.failed(m.name, now)
        scoring = f"the champion: the other consumers go on scoring with v{m.base}" if m.name == scorer.champion_name \
            else "a challenger"
        log.error("model %s can no longer be checkpointed (attempt %d, failing for %.0f s), so its newest version "
                  "stays v%d (%s; a restart loads v%d); it goes on scoring and learning in this learner, which tries "
                  "again in %.0f s; the label stream is kept for it %g s behind what it learned, then trimmed: "
                  "%s", m.name, failure.attempts, time.time() - failure.since, m.base, scoring, m.base, wait,
                  self.keep_s, exc)

    def published(self, name: str, version: int) -> None:
        if self.retries.succeeded(name):
            self.trimmed_past.discard(name)
            log.warning("model %s is checkpointed again (v%d)", name, version)

    def reloaded(self, name: str) -> None:
        """A newer version of `name` was published elsewhere (an import, a rollback): tried at once."""
        self.forget(name)

    def forget(self, name: str | None = None) -> None:
        """Forget the failures of `name` (of every model if None): it was reloaded, or is no longer
        active, or this consumer lost the learner role (its models were reloaded from the registry)."""
        for n in [name] if name is not None else list(self.retries.failing):
            self.retries.succeeded(n)
        if name is None:
            self.trimmed_past.clear()
        else:
            self.trimmed_past.discard(name)

    def positions(self, scorer: Scorer) -> dict[str, str]:
        """The active failing models and the position each has learned in this learner (read by the
        metrics' thread too: a copy of the names is iterated)."""
        return {n: m.position for n in tuple(self.retries.failing) if (m := scorer.models.get(n)) is not None}

    def trim(self, scorer: Scorer) -> None:
        """Trim the label stream (`ModelRegistry.trim_labels`); warn once of a failing model trimmed past."""
        for name in self.registry.trim_labels(list(scorer.models), self.positions(scorer), self.keep_s):
            if name not in self.trimmed_past:
                self.trimmed_past.add(name)
                self.registry.publish_failures.note_trimmed_past(name)
                version = scorer.models[name].base
                log.warning("the label stream is trimmed past what %s v%d learned (it could not be checkpointed for "
                            "%g s of labels): a restart, which loads v%d, will not learn the labels in between",
                            name, version, self.keep_s, version)


def warn_of_trimmed_past(labels: LabelLog, models: Mapping[str, LiveModel], checked: dict[str, int]) -> None:
    """Warn of each model in `models` loaded since the last call (`checked`: name -> its version then)
    whose position is before the oldest entry the stream keeps: the labels trimmed after that
    position are not learned."""
    loaded = {n: m for n, m in models.items() if checked.get(n) != m.base}
    first = labels.trimmed_start() if loaded else None
    for name, m in loaded.items():
        checked[name] = m.base
        if first is not None and stream_id(m.position) < stream_id(first):
            log.warning("model %s v%d learned the label stream up to entry %s, but the stream was trimmed and now "
                        "starts at %s (the model was retired meanwhile, or could not be checkpointed): it learns on "
                        "from there, without the labels in between", name, m.base, m.position, first)


def trim_bound(kept: Mapping[str, Sequence[str]], failing: Mapping[str, str], keep_ms: int) -> str | None:
    """The id before which the label stream can be trimmed: what every kept version (`kept`: each
    model's positions) has learned; for a model in `failing` (name -> the position it has learned
    in the learner), no further back than `keep_ms` before that position. None: a model that is not
    failing has no version yet.

    >>> kept = {"logreg": ["1000-0", "2000-0", "3000-0"], "mine": ["100-0", "200-0"]}
    >>> trim_bound(kept, {}, 500)
    '100-0'
    >>> trim_bound(kept, {"mine": "3100-0"}, 500)  # it keeps 500 ms behind it, logreg more
    '1000-0'
    >>> trim_bound(kept, {"mine": "1200-0"}, 500)
    '700-0'
    >>> trim_bound({"mine": ["100-0"]}, {"mine": "3100-0"}, 0)  # never past what it has learned
    '3100-0'
    >>> trim_bound({"logreg": []}, {}, 500) is None
    True
    """
    bounds = []
    for name, positions in kept.items():
        if name in failing:
            learned = failing[name]
            floor = f"{max(stream_id(learned)[0] - keep_ms, 0)}-0"
            oldest = min(positions, key=stream_id) if positions else floor
            bounds.append(min(max(oldest, floor, key=stream_id), learned, key=stream_id))
        elif not positions:
            return None
        else:
            bounds.append(min(positions, key=stream_id))
    return min(bounds, key=stream_id) if bounds else None
