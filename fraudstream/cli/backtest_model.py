"""The model side of `fraudstream backtest`: the `--from-model` checkpoint it starts from, which labels
it leaves unlearned (`--learn-after`, or what the checkpoint learned), and the `--save-model` file."""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timezone
from pathlib import Path
from typing import Any

from fraudstream.errors import ConfigError
from fraudstream.stream.learned_spans import LearnedSpans
from fraudstream.timeutil import epoch_us

log = logging.getLogger(__name__)

DAY_US = 86_400_000_000
SPANS = "learned_spans"  # header `extra` key of a backtest's checkpoint: `LearnedSpans.to_json()`


def signing_key(settings: Any) -> str:
    return settings.model_signing_key.get_secret_value()


def start_model(path: Path | None, learn: bool, learn_after: str | None, model_out: Path | None,
                model_option: str | None, settings: Any) -> Any:
    """The verified checkpoint of `--from-model` (None without it), after the options' checks."""
    from fraudstream.models.checkpoint import load_file
    from fraudstream.stream.feature_settings import of_settings, warn_if_learned_otherwise

    if path is None:
        if not learn:
            raise ConfigError("--no-learn needs --from-model: a fresh model that never learns scores every "
                              "transaction alike")
        return None
    if not learn and model_out is not None:
        raise ConfigError("--save-model with --no-learn would write the --from-model checkpoint back unchanged")
    if not learn and learn_after is not None:
        raise ConfigError("--learn-after has no effect with --no-learn")
    checkpoint = load_file(path, signing_key(settings))
    if model_option is not None and model_option != checkpoint.info.kind:
        raise ConfigError(f"--model {model_option} differs from the kind of --from-model {path}: "
                          f"{checkpoint.info.kind} (leave --model out)")
    log.info("starting from %s", described(checkpoint.info, path))
    warn_if_learned_otherwise(checkpoint.info, of_settings(settings), log, here="this backtest")
    return checkpoint


def learned_by(info: Any) -> LearnedSpans:
    """What a backtest's checkpoint (its header `info`) learned; nothing known for a live or imported
    version: consumers learn from a label stream, whatever its times, and the header they copy on may
    hold an older backtest's spans."""
    if info is None or info.source != "backtest":
        return LearnedSpans()
    return LearnedSpans.from_json(info.extra.get(SPANS))


def not_learned(learn_after: str | None, info: Any) -> LearnedSpans:
    """The transactions whose labels this run does not learn: up to `--learn-after`, else those the
    checkpoint (its header `info`, None: a fresh model) learned."""
    from fraudstream.timeutil import parse_time

    learned = learned_by(info)
    if learn_after is not None:
        cut = epoch_us(parse_time(learn_after))
        twice = [span for span in learned.spans if span[1] > cut]
        if twice:
            log.warning("--learn-after %s: the checkpoint also learned labels of transactions after it (%s): "
                        "they are learned a second time", learn_after, LearnedSpans(tuple(twice)).to_json())
        return LearnedSpans.up_to(cut)
    if info is not None:
        if learned.spans:
            log.info("labels of transactions in %s are not learned again (the checkpoint learned them; "
                     "--learn-after changes it)", learned.to_json())
        else:
            log.info("the checkpoint (%s) does not say which transactions it learned: every label of the replay "
                     "is learned (--learn-after to leave some out)", info.source)
    return learned


def warn_if_evaluated_on_learned(info: Any, eval_start: date, eval_end: date) -> None:
    """Warn when the checkpoint `--from-model` started from (its header `info`) learned the labels
    of transactions inside the evaluation window: its figures there are not a validation on data it
    has not seen, but optimistic."""
    first, last = (epoch_us(datetime.combine(day, time(), timezone.utc)) for day in (eval_start, eval_end))
    inside = [span for span in learned_by(info).spans if span[0] < last + DAY_US and span[1] >= first]
    if inside:
        until = LearnedSpans(tuple(inside)).to_json()[-1][1]
        log.warning("--from-model learned the labels of transactions in the evaluation window %s..%s (up to %s): its "
                    "figures there are optimistic, not a validation on data it has not seen; evaluate after %s "
                    "(--eval-start)", eval_start, eval_end, until, until)


def described(info: Any, path: Path | None) -> str:
    """>>> from fraudstream.models.checkpoint import CheckpointInfo
    >>> described(CheckpointInfo("gbt_window", "gbt_window", 7, labels_learned=12000), Path("c.fsmodel"))
    'gbt_window v7 (gbt_window, 12,000 labels learned) from c.fsmodel'
    """
    return f"{info.name} v{info.version} ({info.kind}, {info.labels_learned:,} labels learned) from {path}"


def save_model(path: Path, result: Any, settings: Any, started: Any = None) -> None:
    """The trained model as a signed checkpoint, which records the feature settings of the run (those
    it learned with: `fraudstream.stream.feature_settings`). One that started from a checkpoint
    (`started`, its header) keeps its name and seed, is its next version, and counts its labels on
    from it; the header's `extra` holds the spans of transactions whose labels it learned (`SPANS`):
    this run's, and, from a checkpoint, those it left out as learned already (the checkpoint's, or up
    to `--learn-after`; without a checkpoint, the labels before the cut only warmed the features)."""
    from fraudstream.models.checkpoint import CheckpointInfo, save_file, warn_if_demo_key
    from fraudstream.models.custom import registry_name
    from fraudstream.stream.feature_settings import of_settings

    key = signing_key(settings)
    warn_if_demo_key(key, log)
    run = result.replay
    if run.n_labels_learned == 0:
        log.warning("%s: the model learned from no label (none was due before the file ended): it is saved %s",
                    path, "as it started" if started else "untrained")
    spans = learned_by(started)
    if started is not None:  # what it left out, the checkpoint had learned (up to --learn-after: as its user says)
        for first, last in result.options.not_learned.spans:
            spans = spans.merged(first, last)
    if run.first_learned_us is not None:
        spans = spans.merged(run.first_learned_us, run.last_learned_us)
    extra = {"eval_start": result.eval_start.isoformat(), "eval_end": result.eval_end.isoformat(),
             "seed": started.extra.get("seed", result.options.seed) if started else result.options.seed,
             SPANS: spans.to_json()}
    if started is not None:
        extra["started_from"] = result.options.start_model
    info = CheckpointInfo(name=started.name if started else registry_name(result.options.model), kind=result.options.model,
                          version=started.version + 1 if started else 1,
                          labels_learned=run.n_labels_learned + (started.labels_learned if started else 0),
                          frauds_learned=run.n_frauds_learned + (started.frauds_learned if started else 0),
                          source="backtest", extra=extra, feature_settings=of_settings(settings))
    save_file(path, result.model, info, key)

