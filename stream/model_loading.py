"""The live models from the registry: each model's newest version that verifies, else fresh from the zoo.

`fraudstream.stream.lifecycle` calls these when a consumer starts, when a model becomes active, and
when a newer version is published. A checkpoint that fails its signature or cannot be read is
logged and passed over; a model none of whose last versions loads stops the start if it is the
champion, and is left out (logged once) if it is a challenger. A version that learned with other
feature settings than the consumer's (`features`: FRAUDSTREAM_LOCAL_TIMEZONE) is loaded with a
warning (`fraudstream.stream.feature_settings`): once as it is loaded, not for the learner's next
versions that learned with the same settings.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from fraudstream.errors import CheckpointError, ModelError
from fraudstream.models.custom import is_spec, registry_name
from fraudstream.models.zoo import MODEL_NAMES
from fraudstream.stream.feature_settings import differing, trained_with, warn_if_learned_otherwise
from fraudstream.stream.registry import ModelRegistry
from fraudstream.stream.scoring import LiveModel

log = logging.getLogger(__name__)

VERSIONS_TRIED = 3  # the newest versions tried, newest first, before a model counts as unloadable
CHALLENGER_ROLE = " (a challenger, FRAUDSTREAM_CHALLENGERS)"  # after a model's name in the refusals


def check_names(registry: ModelRegistry, names: Sequence[str], challengers: Sequence[str] = ()) -> None:
    """`ModelError` for the first name of `names` (the champion) or `challengers` that is neither a
    zoo model nor published in the registry (a typo must not become the registry's champion or
    challenger for every consumer); a challenger's says so, and where it came from."""
    roles = [(n, "") for n in names] + [(n, CHALLENGER_ROLE) for n in challengers]
    for name, role in roles:
        if is_spec(name):  # never a registry name: those have no colon
            raise spec_refusal(name, challenger=bool(role))
        if name not in MODEL_NAMES and registry.latest_version(name) == 0:
            raise ModelError(f"unknown model {name!r}{role}: neither in the zoo ({', '.join(MODEL_NAMES)}) nor "
                             f"published in the registry ({', '.join(registry.names()) or 'none'})")


def spec_refusal(spec: str, challenger: bool) -> ModelError:
    """Why a model of your own (``package.module:callable``) cannot be named as the champion or a
    challenger, and the commands that take it live."""
    role = CHALLENGER_ROLE if challenger else ""
    then = (f"(a challenger from then on, as {registry_name(spec)})" if challenger else
            f"(as {registry_name(spec)}) and `fraudstream models promote {registry_name(spec)}`")
    return ModelError(f"model {spec!r}{role}: a model of your own goes live through a checkpoint, after a backtest: "
                      f"`fraudstream backtest FILE --model {spec} --save-model M.fsmodel`, then `fraudstream models "
                      f"import M.fsmodel` {then}")


def newest_valid(registry: ModelRegistry, name: str, seed: int, log_refusals: bool = True,
                 features: dict[str, str] | None = None) -> LiveModel:
    """The newest valid published version of `name` (fresh from the zoo if none was published);
    refused versions are logged (unless `log_refusals` is false) and skipped, one that learned with
    other feature settings than `features` (None: not checked) is loaded with a warning.
    `CheckpointError` when versions exist but none of the newest `VERSIONS_TRIED` can be verified."""
    latest = registry.latest_version(name)
    if latest == 0:
        return LiveModel.fresh(name, seed, position=registry.labels.end())
    errors = []
    for version in range(latest, max(0, latest - VERSIONS_TRIED), -1):
        try:
            cp = registry.load(name, version)
        except CheckpointError as exc:
            if log_refusals:
                log.error("refused checkpoint %s v%d: %s", name, version, exc)
            errors.append(f"v{version}: {exc}")
            continue
        except Exception as exc:  # a deleted version (ModelError): try the previous one
            errors.append(f"v{version}: {exc}")
            continue
        log.info("restored %s v%d (%s, %d labels learned)", name, version, cp.info.source, cp.info.labels_learned)
        warn_if_learned_otherwise(cp.info, features, log)
        return LiveModel.from_checkpoint(cp, base=latest)
    raise CheckpointError(f"no valid checkpoint of model {name!r}: " + "; ".join(errors))


def add_active(registry: ModelRegistry, models: dict[str, LiveModel], name: str, seed: int,
               unloadable: set[str], features: dict[str, str] | None = None) -> None:
    """Add `name` to `models`, or log (once: `unloadable` holds the names logged) why it cannot be
    loaded: not a reason to stop scoring with the others."""
    try:
        models[name] = newest_valid(registry, name, seed, log_refusals=name not in unloadable, features=features)
        unloadable.discard(name)  # a later failure is logged again
    except (ModelError, CheckpointError) as exc:
        if name not in unloadable:
            unloadable.add(name)
            log.error("active model %s cannot be loaded; scoring without it (`fraudstream models retire %s` "
                      "if it is a challenger): %s", name, name, exc)


def reload_version(registry: ModelRegistry, models: dict[str, LiveModel], name: str, latest: int,
                   features: dict[str, str] | None = None) -> None:
    """Replace `models[name]` by its published version `latest`; a version that is refused is logged
    and not tried again (the model keeps its version, with `latest` as its base). One that learned
    with other feature settings than `features` is loaded with a warning, unless it is the learner's
    next version with the same settings as the published version it replaces (warned about when that
    was loaded; a fresh model, version 0, was never checked)."""
    try:
        cp = registry.load(name, latest)
    except CheckpointError as exc:
        log.error("refused checkpoint %s v%d, keeping v%s: %s", name, latest, models[name].version, exc)
        models[name].base = latest
        return
    if cp.info.source == "live":  # the learner's own versions: as often as it publishes, every second in a catch-up
        log.debug("loaded %s v%d", name, latest)
    else:  # an import or a rollback
        log.info("loaded %s v%d (%s)", name, latest, cp.info.source)
    before = models[name].info
    if cp.info.source != "live" or before.version == 0 or differing(trained_with(before), trained_with(cp.info)):
        warn_if_learned_otherwise(cp.info, features, log)
    models[name] = LiveModel.from_checkpoint(cp, base=latest)
