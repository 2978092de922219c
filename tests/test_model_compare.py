"""`models compare` on the real Redis: two models judged on the labels both scored, not each on its own
newest labels (a challenger added later has scored fewer)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from click.testing import CliRunner

from fraudstream.cli import main
from fraudstream.config import Settings
from fraudstream.models import metrics
from fraudstream.models.ranking import paired_auc_difference
from fraudstream.stream.label_stream import LabelEntry
from fraudstream.stream.registry import registry_for


@pytest.mark.services
def test_compare_judges_both_models_on_the_labels_both_scored(settings: Settings) -> None:
    registry = registry_for(settings)
    registry.set_champion_if_absent("logreg")
    registry.add_challengers(["htree"])
    rng = random.Random(4)
    x = {"TX_AMOUNT": 1.0}
    rows = []  # (label, champion score, challenger score or None)
    for i in range(900):
        fraud = rng.random() < 0.2
        champion = min(1.0, rng.random() * 0.6 + (0.4 if fraud else 0.0))
        # the challenger joined after the first 300 scores; it ranks better
        challenger = None if i < 300 else min(1.0, rng.random() * 0.3 + (0.7 if fraud else 0.0))
        rows.append((fraud, champion, challenger))
    entries = [LabelEntry(x, fraud, {"logreg": c, **({} if h is None else {"htree": h})}) for fraud, c, h in rows]
    registry.labels.append(entries[:500])
    registry.labels.append(entries[500:])
    registry.client.lpush(registry.key("perf", "logreg"), "0.99,1")  # an item written before ids were kept
    # a NaN score, as an earlier version kept a model of your own's NaN probability: left out (it has no
    # rank; the figures would refuse it)
    registry.client.lpush(registry.key("perf", "logreg"), "nan,0")

    both = [(f, c, h) for f, c, h in rows if h is not None]
    y = np.array([f for f, _, _ in both], dtype=np.int8)
    expected_champion = metrics.performance(y, np.array([c for _, c, _ in both]), 0.5)
    expected_challenger = metrics.performance(y, np.array([h for _, _, h in both]), 0.5)
    mine, theirs, difference = registry.labels.compare("htree", "logreg", 0.5)
    assert (mine, theirs) == (expected_challenger, expected_champion)
    assert difference == paired_auc_difference(y, np.array([h for _, _, h in both]), np.array([c for _, c, _ in both]))
    assert difference.difference == pytest.approx(mine.auc_roc - theirs.auc_roc, abs=1e-12)
    assert mine.n_labels == 600 and registry.labels.performance("logreg", 0.5).n_labels == 901  # its own window is longer
    assert mine.auc_roc > theirs.auc_roc > 0.5 and not math.isnan(theirs.alert_precision)

    env = {"FRAUDSTREAM_REDIS_URL": settings.redis_url, "FRAUDSTREAM_REDIS_KEY_PREFIX": settings.redis_key_prefix}
    result = CliRunner().invoke(main, ["models", "compare", "htree"], env=env)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == (f"on the 600 labels both scored ({int(y.sum())} frauds); ABOVE: scored at or above the alert "
                        "threshold 0.5, PREC: the share of them that were frauds:")
    assert lines[1].split() == ["NAME", "AUC", "AP", "ABOVE", "PREC"]
    assert lines[2].split() == ["htree", f"{mine.auc_roc:.3f}", f"{mine.average_precision:.3f}", str(mine.alerts),
                                f"{mine.alert_precision:.3f}"]
    assert lines[3].split()[:2] == ["logreg", f"{theirs.auc_roc:.3f}"]
    # after the table: the paired difference in AUC with DeLong's interval, which here leaves out 0
    assert lines[4:] == ["htree - logreg AUC: +0.042 (95% CI +0.026 to +0.059, DeLong, 600 labels, 127 frauds): "
                         "htree ranks better"]
    registry.add_challengers(["gam"])
    fresh = CliRunner().invoke(main, ["models", "compare", "gam"], env=env)
    assert fresh.exit_code == 0 and fresh.stdout.startswith("no label scored by both gam and logreg yet")
    for args, message in ((["logreg"], "logreg is the champion: name another model"),
                          (["htree", "htree"], "htree and htree are the same model"),
                          (["htree", "nosuch"], "no model named 'nosuch' in the registry")):
        refused = CliRunner().invoke(main, ["models", "compare", *args], env=env)
        assert refused.exit_code == 1 and message in refused.output, refused.output

    # no champion yet: a name the registry does not know is said first, not the missing champion
    empty = {**env, "FRAUDSTREAM_REDIS_KEY_PREFIX": f"{settings.redis_key_prefix}-empty"}
    refused = CliRunner().invoke(main, ["models", "compare", "arf"], env=empty)
    assert refused.exit_code == 1 and "no model named 'arf' in the registry; known models: none" in refused.output, \
        refused.output


@pytest.mark.services
def test_compare_says_when_the_difference_is_not_computable_or_within_the_noise(settings: Settings) -> None:
    """A fresh challenger's few labels: with 1 fraud DeLong's interval cannot be had; with 3 frauds and
    4 genuine a difference of 5/12 in AUC (htree 11/12, logreg 1/2) is within the noise."""
    registry = registry_for(settings)
    registry.set_champion_if_absent("logreg")
    registry.add_challengers(["htree"])
    labels = [0, 0, 0, 0, 1, 1, 1]
    htree = [0.1, 0.2, 0.3, 0.6, 0.5, 0.7, 0.9]
    logreg = [0.2, 0.6, 0.3, 0.5, 0.1, 0.4, 0.9]
    entries = [LabelEntry({"TX_AMOUNT": 1.0}, bool(y), {"htree": h, "logreg": c}) for y, h, c in zip(labels, htree, logreg)]
    env = {"FRAUDSTREAM_REDIS_URL": settings.redis_url, "FRAUDSTREAM_REDIS_KEY_PREFIX": settings.redis_key_prefix}

    registry.labels.append(entries[:5])
    result = CliRunner().invoke(main, ["models", "compare", "htree"], env=env)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[2].split()[:2] == ["htree", "0.750"]  # the table is still there
    assert result.stdout.splitlines()[4:] == ["htree - logreg AUC: not computable on 5 labels with 1 fraud and 4 "
                                              "genuine: DeLong's interval needs 2 of each"]

    registry.labels.append(entries[5:])
    result = CliRunner().invoke(main, ["models", "compare", "htree", "logreg"], env=env)
    assert result.exit_code == 0, result.output
    # htree's frauds are the 1st, 2nd and 4th of its ranking (AP (1 + 1 + 3/4)/3), logreg's the 1st, 4th and 7th
    assert result.stdout.splitlines()[2:4] == ["htree             0.917  0.917      4  0.750",
                                               "logreg            0.500  0.643      3  0.333"]
    assert result.stdout.splitlines()[4:] == ["htree - logreg AUC: +0.417 (95% CI -0.045 to +0.879, DeLong, 7 labels, "
                                              "3 frauds): the difference is within the noise"]
