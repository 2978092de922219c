"""The settings that change what a feature means, as a checkpoint records them (its header's
`feature_settings`), and the warning when a model is used with other settings than it learned with.

Only what a deployment can set is recorded: today FRAUDSTREAM_LOCAL_TIMEZONE, the zone of the
local time TX_DURING_NIGHT and TX_DURING_WEEKEND are of. The window lengths and the other
`FeatureConfig` knobs are fixed in the code; the label delay decides when labels arrive (and the
retentions), not what a feature holds. A key a header lacks reads as its `DEFAULTS` value: before
a setting existed every feature was computed as its default computes it, so a checkpoint written
before the zone was recorded reads as trained with UTC.

>>> from fraudstream.models.checkpoint import CheckpointInfo
>>> old = CheckpointInfo("gbt_window", "gbt_window", version=7)  # a header without feature_settings
>>> trained_with(old)
{'local_timezone': 'UTC'}
>>> print(mismatch(old, {"local_timezone": "America/New_York"}))  # doctest: +NORMALIZE_WHITESPACE
model gbt_window v7 learned with FRAUDSTREAM_LOCAL_TIMEZONE=UTC (its checkpoint does not record the zone, so
it reads as UTC, the only zone before 2026-12-07), and this consumer computes its features with America/New_York: its
TX_DURING_NIGHT and TX_DURING_WEEKEND do not mean what they meant when it learned, so its scores are off;
backtest it again with FRAUDSTREAM_LOCAL_TIMEZONE=America/New_York (`fraudstream backtest FILE --save-model
M.fsmodel`, then `fraudstream models import M.fsmodel`), or set FRAUDSTREAM_LOCAL_TIMEZONE back to UTC
>>> mismatch(old, {"local_timezone": "Etc/UTC"}) is None  # another name of UTC: the same features
True
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fraudstream.stream.local_time import same_zone

if TYPE_CHECKING:
    from fraudstream.models.checkpoint import CheckpointInfo

# each setting: the value of a checkpoint that does not record it, its variable, the features it changes
DEFAULTS: dict[str, str] = {"local_timezone": "UTC"}
VARIABLES: dict[str, str] = {"local_timezone": "FRAUDSTREAM_LOCAL_TIMEZONE"}
FEATURES: dict[str, str] = {"local_timezone": "TX_DURING_NIGHT and TX_DURING_WEEKEND"}
CONSUMER = "this consumer"


def of_settings(settings: Any) -> dict[str, str]:
    """The feature settings in force (`fraudstream.config.Settings`), as a checkpoint records them.

    >>> from fraudstream.config import Settings
    >>> of_settings(Settings(local_timezone="Asia/Kolkata"))
    {'local_timezone': 'Asia/Kolkata'}
    """
    return {key: str(getattr(settings, key)) for key in DEFAULTS}


def trained_with(info: CheckpointInfo) -> dict[str, str]:
    """The feature settings the model of a checkpoint header learned with (a key the header lacks:
    its default)."""
    return {**DEFAULTS, **{k: v for k, v in info.feature_settings.items() if k in DEFAULTS}}


def same(key: str, a: str, b: str) -> bool:
    """Whether two values of setting `key` give the same features (every name of UTC does, and every
    name of one zone: `local_time.same_zone`).

    >>> same("local_timezone", "UTC", "Etc/UTC"), same("local_timezone", "UTC", "Europe/London")
    (True, False)
    >>> same("local_timezone", "US/Eastern", "America/New_York")
    True
    """
    return a == b or (key == "local_timezone" and same_zone(a, b))


def differing(trained: Mapping[str, str], running: Mapping[str, str]) -> list[str]:
    """The keys of `running` whose values give other features than `trained`'s."""
    return [k for k in running if not same(k, trained.get(k, DEFAULTS.get(k, "")), running[k])]


def mismatch(info: CheckpointInfo, running: Mapping[str, str], here: str = CONSUMER) -> str | None:
    """What is wrong, and what to do, when the model of `info` is used where the feature settings
    are `running` (a key it lacks: its default; `here` says where: a consumer, a backtest, a
    command); None when they agree."""
    trained, running = trained_with(info), {**DEFAULTS, **running}
    keys = differing(trained, running)
    if not keys:
        return None
    was = ", ".join(f"{VARIABLES[k]}={trained[k]}" for k in keys)
    now = ", ".join(running[k] for k in keys)
    wanted = ", ".join(f"{VARIABLES[k]}={running[k]}" for k in keys)
    unrecorded = [k for k in keys if k not in info.feature_settings]
    old = " (its checkpoint does not record the zone, so it reads as UTC, the only zone before 2026-12-07)" if unrecorded else ""
    back = ", ".join(f"{VARIABLES[k]} back to {trained[k]}" for k in keys)
    return (f"model {info.name} v{info.version} learned with {was}{old}, and {here} computes its features with "
            f"{now}: its {' and '.join(FEATURES[k] for k in keys)} do not mean what they meant when it learned, so "
            f"its scores are off; backtest it again with {wanted} (`fraudstream backtest FILE --save-model "
            f"M.fsmodel`, then `fraudstream models import M.fsmodel`), or set {back}")


def warn_if_learned_otherwise(info: CheckpointInfo, running: Mapping[str, str] | None, log: logging.Logger,
                              here: str = CONSUMER) -> bool:
    """Log `mismatch` as a warning on `log`; whether there was one (None `running`: not checked)."""
    problem = None if running is None else mismatch(info, running, here)
    if problem:
        log.warning(problem)
    return problem is not None


def warn_if_restamped(before: CheckpointInfo, after: CheckpointInfo, log: logging.Logger) -> bool:
    """After a learner published `after`, the next version of `before` (a published version; not a
    fresh model's header), with its own feature settings: warn, once, when they differ from those
    `before` learned with; whether they did. The new version records the learner's settings, with
    which it learns from now on, though what it learned before still weighs in its scores."""
    old, new = trained_with(before), trained_with(after)
    keys = differing(old, new)
    if before.version == 0 or not keys:
        return False
    log.warning("model %s v%d records %s, this learner's settings, as those it learned with, but v%d and those before "
                "it learned with %s: its scores mix the two until it is replaced by one backtested with %s",
                after.name, after.version, ", ".join(f"{VARIABLES[k]}={new[k]}" for k in keys), before.version,
                ", ".join(old[k] for k in keys), ", ".join(new[k] for k in keys))
    return True
