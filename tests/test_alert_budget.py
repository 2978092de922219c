"""The alert budget: its threshold against brute force (ties, budgets above every transaction or below
one a day), its figures, the held-out half, and `backtest --alerts-per-day` against `--threshold`."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from fraudstream.cli import main
from fraudstream.models.alert_budget import alert_figures, budget_report, budget_threshold, max_alerts
from tests.test_backtest import write_handbook_csv


@pytest.mark.parametrize("seed", range(20))
def test_the_threshold_is_the_lowest_within_the_budget_and_its_short_form_admits_the_same(seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores = np.round(rng.random(200), int(rng.integers(1, 4)))  # one to three decimals: many ties
    for budget in (0, 1, 7, 50, 199, 200, 500):
        t = budget_threshold(scores, budget)
        admitted = scores >= t
        assert admitted.sum() <= budget
        below = scores[scores < t]
        if below.size:  # the next lower threshold that admits another score would admit too many
            assert (scores >= below.max()).sum() > budget
        if admitted.any():  # the printed short form gives the same alerts as the lowest score admitted
            assert np.array_equal(admitted, scores >= scores[admitted].min())
            assert len(repr(t)) <= len(repr(float(scores[admitted].min())))
        assert np.array_equal(scores >= float(json.loads(json.dumps(t))), admitted)  # the JSON round trip


def test_a_tie_across_the_budget_is_left_out_whole() -> None:
    scores = np.array([0.9, 0.7, 0.7, 0.7, 0.2])
    assert budget_threshold(scores, 3) == 0.9  # 0.7 x 3 would make 4: only the 0.9 alerts
    assert (scores >= budget_threshold(scores, 3)).sum() == 1
    assert budget_threshold(scores, 4) == 0.7
    assert budget_threshold(np.full(5, 0.4), 4) == 1.0  # nothing fits: above every score, at most 1
    assert budget_threshold(np.array([1.0, 1.0, 0.2]), 1) > 1.0  # scores of 1 over the budget: none alerts


def test_a_budget_above_every_transaction_admits_them_all() -> None:
    scores = np.array([0.3, 0.05, 0.6])
    assert budget_threshold(scores, 3) == budget_threshold(scores, 10**6) == 0.0
    assert budget_threshold(np.array([0.31, 0.37]), 2) == 0.0  # exactly as many as the budget
    assert budget_threshold(np.array([]), 5) == 0.0


def test_a_nan_score_is_refused() -> None:
    with pytest.raises(ValueError, match="NaN"):
        budget_threshold(np.array([0.3, math.nan]), 1)


def test_max_alerts_rounds_the_budget_times_the_days_down() -> None:
    assert [max_alerts(n, 10) for n in (0.05, 0.1, 0.3, 0.7, 2.5)] == [0, 1, 3, 7, 25]


def test_alert_figures_count_days_cards_and_frauds() -> None:
    days = np.array([10, 10, 10, 12, 12])  # day 11 has none, and counts
    customers = np.array(["a", "a", "b", "a", "c"])
    labels = np.array([1, 1, 0, 0, 1])
    scores = np.array([0.9, 0.8, 0.6, 0.7, 0.1])
    f = alert_figures(days, customers, labels, scores, 0.6, 10, 12)
    assert (f.n_days, f.alerts, f.max_alerts_per_day, f.frauds_caught, f.n_frauds) == (3, 4, 3, 2, 3)
    assert f.cards_alerted == 3  # a on day 10 once, b, a on day 12
    assert (f.precision, f.recall, f.alerts_per_day) == (0.5, 2 / 3, 4 / 3)
    none = alert_figures(days, customers, labels, scores, 0.95, 10, 12)
    assert none.alerts == none.max_alerts_per_day == 0 and math.isnan(none.precision)


def test_a_budget_below_one_a_day() -> None:
    days = np.repeat(np.arange(10), 5)
    scores = np.linspace(0.0, 0.98, 50)
    labels = (scores > 0.9).astype(int)
    report = budget_report(days, days, labels, scores, 0, 9, alerts_per_day=0.3)  # 3 over 10 days
    assert report["alerts"] == 3 and report["alerts_per_day"] == pytest.approx(0.3) and report["precision"] == 1.0
    held = report["held_out"]  # 0.3 a day over the first 5 days: 1 alert, the best of the first half's
    assert (held["chosen_on"], held["counted_on"]) == ("1970-01-01..1970-01-05", "1970-01-06..1970-01-10")
    assert held["threshold"] == budget_threshold(scores[:25], 1) and held["alerts"] == 25
    tiny = budget_report(days, days, labels, scores, 0, 9, alerts_per_day=0.01)  # not one alert in 10 days
    assert tiny["alerts"] == 0 and tiny["threshold"] == 1.0 and math.isnan(tiny["precision"])
    assert [w["alerts"] for w in report["weeks"]] == [0, 3] and report["weeks"][1]["end"] == "1970-01-10"


def test_scores_of_1_over_the_budget_are_said_to_need_a_threshold_the_consumer_refuses(
        caplog: pytest.LogCaptureFixture) -> None:
    days = np.zeros(4, dtype=int)
    report = budget_report(days, days, np.array([1, 1, 0, 0]), np.array([1.0, 1.0, 1.0, 0.2]), 0, 0, alerts_per_day=2)
    assert report["threshold"] == 2.0 and report["alerts"] == 0 and report["held_out"] is None
    assert "no threshold FRAUDSTREAM_ALERT_THRESHOLD takes (at most 1)" in caplog.text
    caplog.clear()
    budget_report(days, days, np.array([1, 1, 0, 0]), np.array([1.0, 1.0, 0.9, 0.2]), 0, 0, alerts_per_day=2)
    assert caplog.text == ""


def test_the_held_out_threshold_is_counted_on_the_second_half_only() -> None:
    rng = np.random.default_rng(3)
    days = np.sort(rng.integers(0, 9, 900))
    labels = (rng.random(900) < 0.05).astype(int)
    scores = np.clip(rng.random(900) * 0.7 + 0.3 * labels, 0, 1)
    held = budget_report(days, rng.integers(0, 30, 900), labels, scores, 0, 8, alerts_per_day=4)["held_out"]
    first, second = days <= 3, days >= 4
    t = budget_threshold(scores[first], 16)
    caught = (scores[second] >= t) & (labels[second] == 1)
    assert held["threshold"] == t
    assert held["alerts"] == (scores[second] >= t).sum() and held["alerts_per_day"] == held["alerts"] / 5
    assert held["recall"] == caught.sum() / labels[second].sum()


@pytest.mark.parametrize("budget", ["0", "-2", "nan", "inf", "lots"])
def test_cli_refuses_a_budget_that_is_not_a_positive_number(tmp_path: Path, budget: str) -> None:
    path = write_handbook_csv(tmp_path / "hb.csv", days=3, customers=2)
    result = CliRunner().invoke(main, ["backtest", str(path), "--alerts-per-day", budget, "--no-progress"])
    assert result.exit_code == 2 and f"'{budget}' is not a finite number > 0" in result.output, result.output


def test_cli_budget_threshold_gives_its_figures_when_given_as_the_threshold(tmp_path: Path) -> None:
    path = write_handbook_csv(tmp_path / "hb.csv", days=24, customers=30)
    args = ["backtest", str(path), "--eval-start", "2018-04-11", "--eval-end", "2018-04-24", "--label-delay", "2d",
            "--model", "logreg", "--no-progress"]
    out, scores_out = tmp_path / "b.json", tmp_path / "s.csv"
    result = CliRunner().invoke(main, [*args, "--alerts-per-day", "1.5", "--json", str(out), "--scores", str(scores_out),
                                       "--report", str(tmp_path / "r.html")])
    assert result.exit_code == 0, result.output
    budget = json.loads(out.read_text())["budget"]
    printed = json.loads(result.output.strip().splitlines()[-1])["budget"]
    assert "weeks" not in printed and printed["threshold"] == budget["threshold"] and len(budget["weeks"]) == 2
    assert budget["alerts"] <= 21 and budget["max_alerts_per_day"] >= budget["alerts_per_day"]
    with scores_out.open() as f:
        scores = np.array([float(row["score"]) for row in csv.DictReader(f)])
    assert budget["alerts"] == (scores >= budget["threshold"]).sum()
    assert (scores >= scores[scores < budget["threshold"]].max()).sum() > 21  # a lower one would go over the budget
    assert budget["held_out"]["chosen_on"] == "2018-04-11..2018-04-17"
    assert "Alert budget: 1.5 alerts a day" in (tmp_path / "r.html").read_text()

    # the consumer's setting: the same comparison, the same alerts
    again = CliRunner().invoke(main, [*args, "--threshold", repr(budget["threshold"])])
    assert again.exit_code == 0, again.output
    figures = json.loads(again.output.strip().splitlines()[-1])
    assert figures["alerts"] == budget["alerts"] and figures["precision_at_threshold"] == budget["precision"]
    assert figures["recall_at_threshold"] == budget["recall"]
