"""What the `fraudstream models` commands share: the registry of the settings, names, ages, numbers."""

from __future__ import annotations

import logging
import math
import re
from typing import TYPE_CHECKING

import click

from fraudstream.cli.errors import CommandError
from fraudstream.cli.settings_options import settings_from
from fraudstream.constants import MODEL_NAME_PATTERN
from fraudstream.models.checkpoint import warn_if_demo_key

if TYPE_CHECKING:
    from fraudstream.config import Settings
    from fraudstream.models.checkpoint import CheckpointInfo
    from fraudstream.stream.registry import ModelRegistry

log = logging.getLogger(__name__)


MODEL_NAME = re.compile(MODEL_NAME_PATTERN)


def open_registry(ctx: click.Context) -> tuple[Settings, ModelRegistry]:
    from fraudstream.stream.registry import registry_for

    settings = settings_from(ctx)
    if not settings.redis_url:
        raise click.UsageError("set FRAUDSTREAM_REDIS_URL to the Redis of the consumers (see `fraudstream up`)")
    warn_if_demo_key(settings.model_signing_key.get_secret_value(), log)
    return settings, registry_for(settings)


def model_name(value: str | None) -> str | None:
    """A registry name given on the command line: letters, digits, '_', '-' and '.', 1-64 of them,
    a letter or digit first (it is listed in FRAUDSTREAM_CHALLENGERS, comma-separated).

    >>> model_name("arf_v2.1"), model_name(None)
    ('arf_v2.1', None)
    >>> model_name("x,y")
    Traceback (most recent call last):
    ...
    click.exceptions.BadParameter: 'x,y': a model name is 1-64 letters, digits, '_', '-' or '.', a letter or digit first
    """
    if value is not None and not MODEL_NAME.fullmatch(value):
        raise click.BadParameter(f"{value!r}: a model name is 1-64 letters, digits, '_', '-' or '.', a letter or "
                                 "digit first")
    return value


def format_age(seconds: float) -> str:
    """A short age.

    >>> format_age(42), format_age(3 * 3600 + 60), format_age(90000)
    ('42s', '3h01m', '1d01h')
    """
    s = int(max(0.0, seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def number(value: float) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.3f}"


def known_names(registry: ModelRegistry) -> list[str]:
    """The published models and the active ones (a challenger may have no version yet)."""
    champion, challengers = registry.active()
    return sorted({*registry.names(), *challengers, *([champion] if champion else [])})


def require_known(registry: ModelRegistry, name: str) -> None:
    known = known_names(registry)
    if name not in known:
        raise CommandError(f"no model named {name!r} in the registry; known models: {', '.join(known) or 'none'}")


def warn_if_not_warmed_up(settings: Settings, registry: ModelRegistry, name: str, former: str | None) -> None:
    """After `name` became the champion: warn when its newest version has learned fewer labels than
    FRAUDSTREAM_ALERT_WARMUP_LABELS, or no fraud, for the consumers send no alert until it has."""
    from fraudstream.cli.errors import notice

    need = settings.alert_warmup_labels
    info = registry.info(name)
    if need == 0 or (info.labels_learned >= need and info.frauds_learned > 0):
        return
    undo = f"; to undo: `fraudstream models promote {former}`" if former and former != name else ""
    notice(f"warning: {name} v{info.version} has learned {info.labels_learned:,} labels ({info.frauds_learned:,} "
           f"frauds): the consumers send no alert until the champion has learned {need:,} with a fraud among them "
           f"(FRAUDSTREAM_ALERT_WARMUP_LABELS){undo}", logging.WARNING)


CLI_HERE = "a consumer with this command's settings"  # `feature_settings.mismatch`'s subject in the commands


def warn_if_other_features(settings: Settings, info: CheckpointInfo) -> None:
    """Warn when the version `info`, which the consumers score with now, learned with other feature
    settings (FRAUDSTREAM_LOCAL_TIMEZONE) than this command's, which should be the consumers'."""
    from fraudstream.cli.errors import notice
    from fraudstream.stream.feature_settings import mismatch, of_settings

    problem = mismatch(info, of_settings(settings), here=CLI_HERE)
    if problem:
        notice(f"warning: {problem}", logging.WARNING)


def warn_if_not_the_consumers_zone(settings: Settings, registry: ModelRegistry) -> None:
    """Warn when this command's feature settings, with which it checks a checkpoint, are not those
    the consumers' learner recorded in the champion's newest version (a learner's publication
    records the consumers'; an import or a rollback, or none yet: nothing to tell)."""
    from fraudstream.cli.errors import notice
    from fraudstream.errors import CheckpointError, ModelError
    from fraudstream.stream.feature_settings import VARIABLES, differing, of_settings, trained_with

    champion, _ = registry.active()
    try:
        info = registry.info(champion) if champion and registry.latest_version(champion) else None
    except (CheckpointError, ModelError):  # signed with another key: said elsewhere
        return
    if info is None or info.source != "live":
        return
    consumers, here = trained_with(info), of_settings(settings)
    keys = differing(consumers, here)
    if keys:
        notice(f"warning: the consumers' learner published {info.name} v{info.version} with "
               f"{', '.join(f'{VARIABLES[k]}={consumers[k]}' for k in keys)}, and this command checks with "
               f"{', '.join(here[k] for k in keys)}: set {', '.join(VARIABLES[k] for k in keys)} here as theirs",
               logging.WARNING)
