"""`fraudstream models`: list, promote and retire the models of the live registry in Redis (their
versions: `fraudstream.cli.model_versions`)."""

from __future__ import annotations

import json
import logging
import math
import time
from typing import TYPE_CHECKING, Any

import click

from fraudstream.cli.common import WholeHelpGroup
from fraudstream.cli.errors import CommandError, handle_errors, notice
from fraudstream.cli.model_common import (
    format_age,
    known_names,
    number,
    open_registry,
    require_known,
    warn_if_not_warmed_up,
    warn_if_other_features,
)
from fraudstream.cli.model_versions import VERSION_COMMANDS

if TYPE_CHECKING:
    from fraudstream.config import Settings
    from fraudstream.models.ranking import AucDifference
    from fraudstream.stream.registry import ModelRegistry


def model_rows(settings: Settings, registry: ModelRegistry) -> list[dict[str, Any]]:
    """One row per registered model: role, newest version, learning, age, the feature settings it
    learned with and prequential metrics."""
    from fraudstream.errors import CheckpointError
    from fraudstream.stream.feature_settings import trained_with

    champion, challengers = registry.active()
    failures = registry.publish_failures.all()
    rows = []
    now = time.time()
    for name in known_names(registry):
        role = "champion" if name == champion else "challenger" if name in challengers else "inactive"
        row: dict[str, Any] = {"name": name, "role": role}
        try:
            if registry.latest_version(name) == 0:  # active, started fresh, nothing published yet
                row.update(version=0, source="not published yet")
            else:
                info = registry.info(name)
                row.update(version=info.version, kind=info.kind, source=info.source,
                           labels_learned=info.labels_learned, frauds_learned=info.frauds_learned,
                           age_s=round(now - info.created_at, 1), feature_settings=trained_with(info))
        except CheckpointError as exc:
            row.update(version=registry.latest_version(name), error=str(exc))
        row["pinned"] = registry.pinned.versions(name)
        if name in failures:
            f = failures[name]
            row["not_checkpointed"] = {"version": f.version, "for_s": round(now - f.since, 1), "attempts": f.attempts,
                                       "error": f.error, "label_stream_trimmed_past": f.trimmed_past}
        perf = registry.labels.performance(name, settings.alert_threshold)
        row.update(n_scored_labels=perf.n_labels, n_frauds=perf.n_frauds, auc_roc=perf.auc_roc,
                   average_precision=perf.average_precision, alerts=perf.alerts,
                   alert_precision=perf.alert_precision)
        rows.append(row)
    return rows


@click.group(cls=WholeHelpGroup, invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="`models list --json`, when no command is given.")
@click.pass_context
def models(ctx: click.Context, as_json: bool) -> None:
    """Models of the live consumers: list (default), compare, promote, retire, versions, pin, unpin,
    rollback, export, import, zoo."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_models, as_json=as_json)


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of a table.")
@click.pass_context
@handle_errors
def list_models(ctx: click.Context, as_json: bool = False) -> None:
    """Registered models: role, version, labels learned, age, and prequential AUC ROC, average
    precision and alert precision over each model's newest scored labels (SCORED; shadow scores
    included). ABOVE: how many of them scored at or above the alert threshold, whether an alert was
    sent or not (challengers and a warming-up champion send none); PREC: the share of those that
    were frauds. The --json keys are alerts and alert_precision. ZONE: the FRAUDSTREAM_LOCAL_TIMEZONE
    the newest version learned with (--json: feature_settings; a version from before it was recorded:
    UTC)."""
    settings, registry = open_registry(ctx)
    rows = model_rows(settings, registry)
    if as_json:
        clean = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in rows]
        click.echo(json.dumps({"learner": registry.learner(), "models": clean}, indent=2))
        return
    if not rows:
        click.echo("no models yet: start `fraudstream consume` or `fraudstream models import FILE`")
        return
    width = max(16, *(len(r["name"]) for r in rows))
    kind_width = max(12, *(len(r.get("kind", "?")) for r in rows))  # a model of your own's: package.module:callable
    zones = [r["feature_settings"]["local_timezone"] if "feature_settings" in r else "?" if "error" in r else "-"
             for r in rows]
    zone_width = max(4, *(len(z) for z in zones))
    header = f"{'NAME':<{width}} {'ROLE':<10} {'VER':>4} {'KIND':<{kind_width}} {'ZONE':<{zone_width}} {'LABELS':>8} " \
             f"{'AGE':>7} {'AUC':>6} {'AP':>6} {'ABOVE':>6} {'PREC':>6} {'SCORED':>7} SOURCE"
    click.echo(header)
    for r, zone in zip(rows, zones):
        age = format_age(r["age_s"]) if "age_s" in r else "?"
        labels = r.get("labels_learned", "?" if "error" in r else 0)
        click.echo(f"{r['name']:<{width}} {r['role']:<10} {r['version']:>4} {r.get('kind', '?'):<{kind_width}} "
                   f"{zone:<{zone_width}} {labels:>8} {age:>7} {number(r['auc_roc']):>6} {number(r['average_precision']):>6} "
                   f"{r['alerts']:>6} {number(r['alert_precision']):>6} {r['n_scored_labels']:>7} "
                   f"{r.get('source', 'unreadable (below)' if 'error' in r else '')}"
                   f"{' (cannot be checkpointed: below)' if 'not_checkpointed' in r else ''}")
    for r in rows:
        if "error" in r:
            click.echo(f"{r['name']} v{r['version']}: {r['error']}")
        if "not_checkpointed" in r:
            kept_s = settings.label_stream_kept_for_unpublishable.total_seconds()
            click.echo(not_checkpointed_line(r["name"], r["role"], r["not_checkpointed"], kept_s))
    from fraudstream.stream.signing_record import signing_key_matches

    if any("error" in r for r in rows) and signing_key_matches(registry) is False:
        notice("hint: the consumers sign with another FRAUDSTREAM_MODEL_SIGNING_KEY than the one in use here "
               "(set it to theirs): then these versions verify, unless they were tampered with", logging.WARNING)
    _note_other_zones(settings, rows)
    click.echo(f"learner: {registry.learner() or 'none'}; ABOVE and PREC: labels scored at or above the alert "
               f"threshold {settings.alert_threshold}, and the share of them that were frauds (scores, not alerts: "
               "also those of a champion still warming up, which sent no alert)")


def _note_other_zones(settings: Settings, rows: list[dict[str, Any]]) -> None:
    """Warn about the models whose newest version learned with another zone than this command's."""
    from fraudstream.stream.feature_settings import differing, of_settings

    running = of_settings(settings)
    other = [r["name"] for r in rows if "feature_settings" in r and differing(r["feature_settings"], running)]
    if other:
        notice(f"warning: {', '.join(other)} learned with another FRAUDSTREAM_LOCAL_TIMEZONE (ZONE) than this "
               f"command's, {settings.local_timezone}: consumers with this command's settings warn as they load "
               "them, and score them on features they did not learn with; backtest them again with "
               f"FRAUDSTREAM_LOCAL_TIMEZONE={settings.local_timezone}", logging.WARNING)


def not_checkpointed_line(name: str, role: str, failure: dict[str, Any], kept_s: float) -> str:
    """What `models list` says of a model the learner cannot checkpoint (`stream.publish_failures`).

    >>> print(not_checkpointed_line("mine", "challenger", {"version": 3, "for_s": 4000, "attempts": 7,
    ...       "error": "... cannot be pickled ...", "label_stream_trimmed_past": True}, 3600.0))
    mine: cannot be checkpointed for 1h06m (7 attempts), so its newest version stays v3 (a restart loads it); the label stream is trimmed past v3: a restart will not learn the labels since (... cannot be pickled ...)
    """
    v = failure["version"]
    scoring = "; the consumers other than the learner score with it" if role == "champion" else ""
    kept = f"trimmed past v{v}: a restart will not learn the labels since" if failure["label_stream_trimmed_past"] \
        else f"kept after v{v} for up to {format_age(kept_s)} of labels, then trimmed"
    attempts = f"{failure['attempts']} attempt{'' if failure['attempts'] == 1 else 's'}"
    return f"{name}: cannot be checkpointed for {format_age(failure['for_s'])} ({attempts}), " \
           f"so its newest version stays v{v} (a restart loads it){scoring}; the label stream is {kept} " \
           f"({failure['error']})"


@models.command()
@click.argument("name")
@click.pass_context
@handle_errors
def promote(ctx: click.Context, name: str) -> None:
    """Make NAME the champion of the running consumers (they switch within about a second); its
    newest checkpoint must verify with FRAUDSTREAM_MODEL_SIGNING_KEY, as the consumers will check."""
    settings, registry = open_registry(ctx)
    if registry.active()[0] == name:
        click.echo(f"{name} is the champion already")
        return
    old = registry.promote(name)
    click.echo(f"champion: {name} (was {old}; it keeps scoring as a challenger)" if old else f"champion: {name}")
    warn_if_not_warmed_up(settings, registry, name, old)
    warn_if_other_features(settings, registry.info(name))


@models.command()
@click.argument("name")
@click.pass_context
@handle_errors
def retire(ctx: click.Context, name: str) -> None:
    """Stop scoring with the challenger NAME (its versions are kept; a consumer started with it in
    FRAUDSTREAM_CHALLENGERS adds it again)."""
    _, registry = open_registry(ctx)
    require_known(registry, name)
    if registry.retire(name):
        click.echo(f"{name} retired: the running consumers stop scoring with it within about a second")
    else:  # an inactive model: nothing to do
        click.echo(f"{name} was not a challenger; challengers: {', '.join(registry.active()[1]) or 'none'}")


@models.command()
@click.argument("name")
@click.argument("other", required=False)
@click.pass_context
@handle_errors
def compare(ctx: click.Context, name: str, other: str | None) -> None:
    """NAME against OTHER (default: the champion) on the same labels: those both scored, among the
    newest of each (`models list` gives each model's figures over its own newest labels, which for a
    newer challenger are fewer). The last line: NAME's AUC ROC minus OTHER's with its 95 % confidence
    interval by DeLong's method, and whether one ranks better or the difference is within the noise."""
    settings, registry = open_registry(ctx)
    defaulted = other is None
    require_known(registry, name)  # before the champion: an unknown name is the mistake to say
    other = other or registry.active()[0]
    if other is None:
        raise CommandError("there is no champion yet: name the model to compare with")
    require_known(registry, other)
    if other == name:
        raise CommandError(f"{name} is the champion: name another model to compare it with" if defaulted
                           else f"{name} and {other} are the same model")
    mine, theirs, difference = registry.labels.compare(name, other, settings.alert_threshold)
    if mine.n_labels == 0:
        click.echo(f"no label scored by both {name} and {other} yet: a model scores transactions from when it "
                   "becomes active, and their labels come a label delay later (score lists written by versions "
                   "of fraudstream before `models compare` cannot be matched)")
        return
    click.echo(f"on the {mine.n_labels:,} labels both scored ({mine.n_frauds:,} frauds); ABOVE: scored at or "
               f"above the alert threshold {settings.alert_threshold}, PREC: the share of them that were frauds:")
    click.echo(f"{'NAME':<16} {'AUC':>6} {'AP':>6} {'ABOVE':>6} {'PREC':>6}")
    for model, perf in ((name, mine), (other, theirs)):
        click.echo(f"{model:<16} {number(perf.auc_roc):>6} {number(perf.average_precision):>6} {perf.alerts:>6} "
                   f"{number(perf.alert_precision):>6}")
    click.echo(difference_line(name, other, difference))


FEW_FRAUDS = 10  # with fewer, DeLong's 95 % interval is too narrow: it covered 0.88-0.94 of simulated samples
# of 600 labels with 5 frauds, 0.93-0.94 with 10 and 0.95-0.96 with 41 (README, "Model lifecycle")


def difference_line(name: str, other: str, d: AucDifference) -> str:
    """`name`'s AUC ROC minus `other`'s with its confidence interval, and what it says.

    >>> from fraudstream.models.ranking import AucDifference
    >>> difference_line("htree", "logreg", AucDifference(0.031, 0.012, 0.05, 0.0097, 600, 41))
    'htree - logreg AUC: +0.031 (95% CI +0.012 to +0.050, DeLong, 600 labels, 41 frauds): htree ranks better'
    >>> difference_line("htree", "logreg", AucDifference(0.02, -0.01, 0.05, 0.015, 1200, 30)).split(": ")[-1]
    'the difference is within the noise'
    >>> difference_line("htree", "logreg", AucDifference(-0.2, -0.35, -0.05, 0.08, 300, 6)).split(": ", 2)[-1]
    'logreg ranks better, but on fewer than 10 frauds the interval is too narrow: wait for more'
    >>> nan = float("nan")
    >>> difference_line("htree", "logreg", AucDifference(nan, nan, nan, nan, 300, 1))
    "htree - logreg AUC: not computable on 300 labels with 1 fraud and 299 genuine: DeLong's interval needs 2 of each"
    """
    head = f"{name} - {other} AUC"
    if not d.computable:
        frauds = f"{d.frauds:,} fraud{'' if d.frauds == 1 else 's'}"
        return f"{head}: not computable on {d.n:,} labels with {frauds} and {d.n - d.frauds:,} genuine: DeLong's " \
               "interval needs 2 of each"
    if d.low > 0 or d.high < 0:
        verdict = f"{name if d.low > 0 else other} ranks better"
        if d.frauds < FEW_FRAUDS:
            verdict += f", but on fewer than {FEW_FRAUDS} frauds the interval is too narrow: wait for more"
    elif d.standard_error == 0:
        verdict = "they rank these labels alike"
    else:
        verdict = "the difference is within the noise"
    return f"{head}: {d.difference:+.3f} ({d.confidence:.0%} CI {d.low:+.3f} to {d.high:+.3f}, DeLong, {d.n:,} labels, " \
           f"{d.frauds:,} frauds): {verdict}"


@models.command()
def zoo() -> None:
    """Model kinds a consumer can start fresh (FRAUDSTREAM_MODEL, FRAUDSTREAM_CHALLENGERS)."""
    from fraudstream.models import zoo as model_zoo

    for name in model_zoo.MODEL_NAMES:
        click.echo(f"{name:<14} {model_zoo.describe(name)}")
    notice("and a model of your own: `backtest --model package.module:callable` (a River classifier), then "
           "`models import` its checkpoint (README, \"Model lifecycle\")", logging.INFO)


for _command in VERSION_COMMANDS:  # export, import, versions, pin, unpin, rollback
    models.add_command(_command)
