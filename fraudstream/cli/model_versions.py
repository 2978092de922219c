"""`fraudstream models export | import | versions | pin | unpin | rollback`: the versions of a model.

The registry keeps the newest few versions of each model (a learner catching up publishes about one a
second); `pin` keeps a copy of one until `unpin`, and `rollback` publishes a kept or pinned version
again as the newest, which the running consumers switch to within about a second.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from fraudstream.cli.common import require_directory
from fraudstream.cli.errors import CommandError, handle_errors, notice
from fraudstream.cli.model_common import (
    CLI_HERE,
    format_age,
    model_name,
    open_registry,
    require_known,
    warn_if_not_the_consumers_zone,
    warn_if_not_warmed_up,
    warn_if_other_features,
)
from fraudstream.constants import DEV_SIGNING_KEY
from fraudstream.outputs import write_bytes

if TYPE_CHECKING:
    from fraudstream.config import Settings
    from fraudstream.models.checkpoint import CheckpointInfo
    from fraudstream.stream.registry import ModelRegistry


class VersionNumber(click.ParamType):
    """A version as `models versions` prints it (``v12``) or as a number (``12``)."""

    name = "version"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> int:
        text = str(value).strip()
        number = text[1:] if text[:1] in ("v", "V") else text
        if not number.isdigit() or int(number) < 1:
            self.fail(f"{value!r} is not a version (a number from 1, e.g. 12 or v12)", param, ctx)
        return int(number)


VERSION = VersionNumber()


@click.command("export")
@click.argument("name")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--version", type=VERSION, default=None, help="Version to export (default: the newest).")
@click.pass_context
@handle_errors
def export_model(ctx: click.Context, name: str, file: Path, version: int | None) -> None:
    """Write a signed checkpoint of NAME to FILE (the format of `backtest --save-model`)."""
    from fraudstream.models import checkpoint

    require_directory(file, "FILE")
    _, registry = open_registry(ctx)
    blob = registry.blob(name, version, pinned=True)
    info, _ = checkpoint.verify(blob, registry.signing_key)
    write_bytes(file, blob)
    click.echo(f"exported {name} v{info.version} ({info.kind}, {info.labels_learned} labels) to {file}")


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", type=click.STRING, callback=lambda ctx, param, value: model_name(value), default=None,
              help="Registry name (default: the name stored in the file).")
@click.option("--challenger/--inactive", default=True, show_default=True,
              help="Score it in shadow and let it learn live, or only store it.")
@click.option("--promote", "make_champion", is_flag=True, help="Make it the champion right away.")
@click.option("--pin", "pin_it", is_flag=True, help="Pin the imported version too (`models pin`): the registry keeps "
              "only the newest 3, and a learner publishes new ones as it learns.")
@click.option("--force", is_flag=True, help="Import even when no published model verifies with the signing key in "
              "use (after the consumers' key was changed).")
@click.option("--other-features", is_flag=True, help="Import even when the checkpoint learned with another "
              "FRAUDSTREAM_LOCAL_TIMEZONE than this command's (the consumers warn, and score it on features it did "
              "not learn with).")
@click.pass_context
@handle_errors
def import_model(ctx: click.Context, file: Path, name: str | None, challenger: bool, make_champion: bool,
                 pin_it: bool, force: bool, other_features: bool) -> None:
    """Publish a signed checkpoint FILE (from `backtest --save-model` or `models export`) as the next
    version of NAME. Files not signed with FRAUDSTREAM_MODEL_SIGNING_KEY are refused, never unpickled;
    so is one that learned with another FRAUDSTREAM_LOCAL_TIMEZONE than this command's (set it as the
    consumers' is), unless --other-features is given."""
    from fraudstream.errors import CheckpointError, ModelError

    if make_champion and not challenger:
        raise click.BadParameter("--promote makes it the champion, which scores and learns live: not --inactive",
                                 param_hint="--inactive")
    from fraudstream.stream.signing_record import signing_key_matches

    settings, registry = open_registry(ctx)
    matches = signing_key_matches(registry)
    if not force and matches is False:
        raise CheckpointError("not imported: this registry's models (or its consumers and earlier imports) were "
                              "signed with another FRAUDSTREAM_MODEL_SIGNING_KEY than the one in use, and the "
                              "consumers would refuse this checkpoint: set FRAUDSTREAM_MODEL_SIGNING_KEY to their "
                              "key (and sign the file with it), or use --force if the consumers' key is changing "
                              "to this one")
    try:
        blob = file.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read {file}: {exc.strerror or exc}") from None
    warn_if_not_the_consumers_zone(settings, registry)
    try:
        _check_features(blob, registry.signing_key, settings, other_features)
        info = registry.import_blob(blob, name)
    except CheckpointError as exc:
        raise CheckpointError(f"{file}: {exc}") from None
    pinned = ""
    if pin_it:
        try:
            registry.pin(info.name, info.version)
            pinned = ", pinned"
        except (CheckpointError, ModelError) as exc:  # e.g. rotated out already by a learner
            pinned = f", not pinned: {exc}"
    former = None
    if make_champion:
        former = registry.promote(info.name)
    elif challenger:
        registry.add_challengers([info.name])
    if matches is None:  # the first model or consumer of this registry: from now on, imports are checked
        demo = settings.model_signing_key.get_secret_value() == DEV_SIGNING_KEY
        which = "the built-in demo key" if demo else "a key of your own"
        notice(f"warning: the first signed model in this registry: consumers must run with the same "
               f"FRAUDSTREAM_MODEL_SIGNING_KEY as this import ({which}); imports with another are refused now", logging.WARNING)
    champion, challengers = registry.active()  # what it is now (a new version of the champion stays champion)
    role = "champion" if info.name == champion else "challenger" if info.name in challengers else "inactive"
    click.echo(f"imported {file} as {info.name} v{info.version} ({info.kind}, {info.labels_learned} labels), "
               f"{role}{pinned}")
    _note_replaced(registry, info)
    _note_learned_spans(blob, registry.signing_key)
    if make_champion:
        warn_if_not_warmed_up(settings, registry, info.name, former)


def _check_features(blob: bytes, key: bytes | str, settings: Settings, allowed: bool) -> None:
    """`CheckpointError` when the checkpoint `blob` learned with other feature settings than this
    command's (which should be the consumers'), unless `allowed`: then a warning."""
    from fraudstream.errors import CheckpointError
    from fraudstream.models import checkpoint
    from fraudstream.stream.feature_settings import mismatch, of_settings

    problem = mismatch(checkpoint.verify(blob, key)[0], of_settings(settings), here=CLI_HERE)
    if problem and not allowed:
        raise CheckpointError(f"not imported: {problem}. --other-features imports it anyway (if the consumers' "
                              "FRAUDSTREAM_LOCAL_TIMEZONE is not this command's, set it here as theirs instead)")
    if problem:
        notice(f"warning: {problem}", logging.WARNING)


def _note_replaced(registry: ModelRegistry, info: CheckpointInfo) -> None:
    """Say which version an import of an existing name replaces: the consumers that score with that
    name switch to the import and its learning, and drop what the version before had learned."""
    from fraudstream.errors import CheckpointError, ModelError
    from fraudstream.models import checkpoint

    if info.version <= 1:
        return
    try:
        before = checkpoint.verify(registry.blob(info.name, info.version - 1), registry.signing_key)[0]
    except (CheckpointError, ModelError):  # rotated out already, or not of this key: nothing to undo
        return
    notice(f"note: {info.name} v{info.version} replaces v{before.version} ({before.labels_learned:,} labels learned, "
           f"{before.source}) for the consumers that score with {info.name}; `fraudstream models rollback "
           f"{info.name} {before.version}` undoes it while v{before.version} is kept (the newest 3; `models pin` "
           "keeps it)", logging.INFO)


def _note_learned_spans(blob: bytes, key: bytes | str) -> None:
    """Say up to when a backtest's checkpoint learned labels: transactions the live system scores from
    before then may be ones it learned from, and its live figures there optimistic."""
    from fraudstream.cli.backtest_model import learned_by
    from fraudstream.models import checkpoint

    spans = learned_by(checkpoint.verify(blob, key)[0]).to_json()
    if spans:
        notice(f"note: this checkpoint learned the labels of transactions up to {spans[-1][1]} (learned_spans "
               f"{spans}): transactions the live system scores from before then may be ones it learned from, "
               "and its live figures over them optimistic", logging.WARNING)


@click.command()
@click.argument("name")
@click.pass_context
@handle_errors
def versions(ctx: click.Context, name: str) -> None:
    """The versions of NAME the registry holds: the newest ones it keeps and the pinned ones, with the
    labels each learned, its age, the FRAUDSTREAM_LOCAL_TIMEZONE it learned with (ZONE; a version from
    before it was recorded: UTC) and where it came from."""
    from fraudstream.errors import CheckpointError
    from fraudstream.models import checkpoint
    from fraudstream.models.checkpoint import CheckpointInfo
    from fraudstream.stream.feature_settings import trained_with
    from fraudstream.stream.registry import KEEP_VERSIONS

    _, registry = open_registry(ctx)
    require_known(registry, name)
    kept, pinned = registry.kept_versions(name), registry.pinned.versions(name)
    infos: dict[int, CheckpointInfo | CheckpointError] = {}
    for version in sorted({*kept, *pinned}, reverse=True):
        try:
            infos[version] = checkpoint.verify(registry.blob(name, version, pinned=True), registry.signing_key)[0]
        except CheckpointError as exc:
            infos[version] = exc
    zones = {v: trained_with(i)["local_timezone"] if isinstance(i, CheckpointInfo) else "?" for v, i in infos.items()}
    width = max([16, *map(len, zones.values())])  # the longest zone names have 30 characters and more
    click.echo(f"{'VER':>5} {'KEPT':<6} {'PINNED':<6} {'LABELS':>9} {'AGE':>7} {'ZONE':<{width}} SOURCE")
    now = time.time()
    for version, info in infos.items():
        if isinstance(info, CheckpointInfo):
            facts = f"{info.labels_learned:>9} {format_age(now - info.created_at):>7} {zones[version]:<{width}} {info.source}"
        else:
            facts = f"{'?':>9} {'?':>7} {'?':<{width}} does not verify: {info}"
        click.echo(f"{'v' + str(version):>5} {'yes' if version in kept else '':<6} "
                   f"{'yes' if version in pinned else '':<6} {facts}")
    click.echo(f"the newest {KEEP_VERSIONS} are kept; `fraudstream models pin {name} VERSION` keeps another")


@click.command()
@click.argument("name")
@click.argument("version", type=VERSION, required=False)
@click.pass_context
@handle_errors
def pin(ctx: click.Context, name: str, version: int | None) -> None:
    """Keep a copy of version VERSION of NAME (default: the newest) until `models unpin`, for a later
    `rollback` or `export` (a `gbt_window` checkpoint takes a few MB of Redis)."""
    _, registry = open_registry(ctx)
    require_known(registry, name)
    info = registry.pin(name, version)
    click.echo(f"pinned {name} v{info.version} ({info.kind}, {info.labels_learned} labels)")


@click.command()
@click.argument("name")
@click.argument("version", type=VERSION)
@click.pass_context
@handle_errors
def unpin(ctx: click.Context, name: str, version: int) -> None:
    """Drop the pinned copy of version VERSION of NAME."""
    _, registry = open_registry(ctx)
    if not registry.pinned.unpin(name, version):
        require_known(registry, name)
        pinned = ", ".join(f"v{v}" for v in registry.pinned.versions(name)) or "none"
        raise CommandError(f"{name} v{version} is not pinned; pinned versions of {name}: {pinned}")
    click.echo(f"unpinned {name} v{version}")


@click.command()
@click.argument("name")
@click.argument("version", type=VERSION)
@click.pass_context
@handle_errors
def rollback(ctx: click.Context, name: str, version: int) -> None:
    """Publish version VERSION of NAME (kept or pinned: `models versions NAME`) again as its newest
    version: the running consumers switch to it within about a second, and it learns on from now."""
    settings, registry = open_registry(ctx)
    require_known(registry, name)
    info = registry.rollback(name, version)
    click.echo(f"{name} v{info.version} is v{version} again ({info.labels_learned} labels); the consumers switch "
               "to it within about a second")
    warn_if_other_features(settings, info)


VERSION_COMMANDS = (export_model, import_model, versions, pin, unpin, rollback)
