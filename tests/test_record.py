"""Simulator and recorder: byte-for-byte determinism, fraud rate and scenarios, readable output."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from fraudstream.cli import main
from fraudstream.errors import ConfigError
from fraudstream.producer.files import read_recorded
from fraudstream.producer.recorder import record
from fraudstream.producer.scenarios import SCENARIO_NAMES, FraudRates
from fraudstream.producer.simulator import Simulator, SimulatorConfig

SMALL = ["--customers", "300", "--terminals", "600"]


def run_record(*args: str) -> str:
    result = CliRunner().invoke(main, ["record", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_same_seed_same_bytes_different_seed_differs(tmp_path: Path) -> None:
    for name, seed in (("a.jsonl", "1"), ("b.jsonl", "1"), ("c.jsonl", "2")):
        run_record("--days", "3", *SMALL, "--seed", seed, "--out", str(tmp_path / name))
    a, b, c = ((tmp_path / n).read_bytes() for n in ("a.jsonl", "b.jsonl", "c.jsonl"))
    assert a == b
    assert a != c
    assert len(a.splitlines()) > 1000


def test_thirty_days_fraud_rate_and_all_scenarios(tmp_path: Path) -> None:
    out = tmp_path / "month.csv.gz"
    run_record("--days", "30", "--seed", "11", "--out", str(out))
    rows = list(read_recorded(out))
    frauds = sum(bool(r.is_fraud) for r in rows)
    assert 0.002 <= frauds / len(rows) <= 0.03
    scenarios = Counter(r.fraud_scenario for r in rows)
    assert set(scenarios) == {"0", "1", "2", "3", "4", "5", "6"}
    assert all(r.is_fraud == (r.fraud_scenario != "0") for r in rows)  # every fraud reported by default
    times = [r.transaction.event_time for r in rows]
    assert times == sorted(times)
    by = {s: [r.transaction for r in rows if r.fraud_scenario == s] for s in scenarios}
    assert min(t.amount for t in by["1"]) > 220.0
    assert sum(t.amount <= 2.0 for t in by["4"]) > len(by["4"]) / 2  # card testing: mostly tiny amounts
    assert {t.event_time.hour for t in by["6"]} <= {1, 2, 3, 4}  # night-time spree
    assert {t.merchant_category for t in by["6"]} <= {"electronics", "jewelry", "online_gaming", "gift_cards"}


def test_switches_and_report_share() -> None:
    rates = FraudRates().without("card_testing", "night_spree")
    config = SimulatorConfig(customers=2000, terminals=4000, seed=5, rates=rates, report_share=0.5)
    days = list(Simulator(config).days(20))
    scenario = np.concatenate([d.scenario for d in days])
    reported = np.concatenate([d.reported for d in days])
    assert not np.isin(scenario, [4, 6]).any()
    assert np.isin(scenario, [1, 2, 3, 5]).any()
    assert not reported[scenario == 0].any()
    share = reported[scenario > 0].mean()
    assert 0.35 < share < 0.65
    off = list(Simulator(SimulatorConfig(customers=500, terminals=800, rates=FraudRates().scaled(0))).days(5))
    assert all(not d.scenario.any() for d in off)


def test_records_match_simulator_and_formats_agree(tmp_path: Path) -> None:
    config = SimulatorConfig(customers=200, terminals=400, seed=9)
    record(tmp_path / "s.csv", 2, config)
    record(tmp_path / "s.jsonl.gz", 2, config)
    from_csv = list(read_recorded(tmp_path / "s.csv"))
    assert from_csv == list(read_recorded(tmp_path / "s.jsonl.gz"))
    assert from_csv == list(Simulator(config).records(2))
    assert not list(tmp_path.glob("*.part"))


def test_bad_output_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown output format"):
        record(tmp_path / "x.parquet", 1, SimulatorConfig(customers=10, terminals=10))
    result = CliRunner().invoke(main, ["record", "--days", "1", "--out", str(tmp_path / "x.txt")])
    assert result.exit_code != 0 and "unknown output format" in result.output


def test_same_seed_same_gzip_bytes(tmp_path: Path) -> None:
    """The gzip header holds no time of writing: a .gz recording repeats byte for byte too."""
    for folder, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        (tmp_path / folder).mkdir()
        run_record("--days", "2", *SMALL, "--seed", seed, "--out", str(tmp_path / folder / "s.csv.gz"))
    a, b, c = ((tmp_path / folder / "s.csv.gz").read_bytes() for folder in "abc")
    assert a[:2] == b"\x1f\x8b" and a == b and a != c


def test_the_summary_counts_every_fraud_and_the_reported_ones_by_scenario_name(tmp_path: Path) -> None:
    out = tmp_path / "half.csv"
    line = run_record("--days", "6", *SMALL, "--seed", "3", "--report-share", "0.5", "--out", str(out), "--no-progress")
    summary = json.loads(line.strip().splitlines()[-1])
    rows = list(read_recorded(out))
    frauds = [r for r in rows if r.fraud_scenario != "0"]
    assert summary["frauds"] == len(frauds) > summary["frauds_reported"] == sum(bool(r.is_fraud) for r in rows) > 0
    assert summary["fraud_rate"] == round(len(frauds) / len(rows), 5)
    by_code = Counter(r.fraud_scenario for r in rows)
    assert summary["by_scenario"] == {f"{code} {SCENARIO_NAMES[int(code)]}": n for code, n in sorted(by_code.items())}


def _rows(sim: Simulator, days: int) -> list[tuple[int, int, int, float, int, bool]]:
    """Each transaction as (time, customer, terminal, amount, scenario, reported), ids left out: they
    number the rows in time order, so a fraud more or less shifts them."""
    rows = []
    for day in sim.days(days):
        rows += zip(day.time.tolist(), day.customer.tolist(), day.terminal.tolist(), day.amount.tolist(),
                    day.scenario.tolist(), day.reported.tolist())
    return rows


def test_fraud_options_leave_the_genuine_transactions_and_the_other_frauds_as_they_were() -> None:
    """Ablations compare like with like: switching a scenario off takes its frauds away and nothing
    else; the report share changes the labels only, and a victim reports all of a kind of fraud."""
    base = SimulatorConfig(customers=600, terminals=1200, seed=5, rates=FraudRates().scaled(3.0))
    rows = _rows(Simulator(base), 20)
    assert {scenario for *_, scenario, _ in rows} == set(range(7))
    # night_spree and card_testing add transactions of their own: without them, the rest is unchanged
    without = _rows(Simulator(replace(base, rates=base.rates.without("night_spree", "card_testing"))), 20)
    assert without == [r for r in rows if r[4] not in (4, 6)]
    half = _rows(Simulator(replace(base, report_share=0.5)), 20)
    assert [r[:5] for r in half] == [r[:5] for r in rows]
    reported = {(customer, scenario): rep for _, customer, _, _, scenario, rep in half if scenario}
    assert 0.3 < sum(reported.values()) / len(reported) < 0.7
    assert all(rep == reported[(customer, scenario)] for _, customer, _, _, scenario, rep in half if scenario)
    assert not any(rep for *_, scenario, rep in half if not scenario)


def test_a_start_other_than_midnight_utc_or_a_world_too_big_for_memory_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["record", "--days", "1", "--start", "2024-03-10T12:00:00+02:00",
                                       "--out", str(tmp_path / "noon.csv")])
    assert result.exit_code == 2 and "is not midnight UTC" in result.output, result.output
    assert not (tmp_path / "noon.csv").exists()
    assert run_record("--days", "1", *SMALL, "--start", "2024-03-10T02:00:00+02:00", "--out", str(tmp_path / "m.csv"))
    with pytest.raises(ConfigError, match="is not midnight UTC|starts at midnight UTC"):
        SimulatorConfig(start=datetime(2024, 3, 10, 12, tzinfo=timezone.utc))
    huge = CliRunner().invoke(main, ["record", "--days", "1", "--customers", "2000000000", "--out", str(tmp_path / "h.csv")])
    assert huge.exit_code == 1 and "GiB of memory" in huge.output and "Traceback" not in huge.output, huge.output


def test_a_bad_setting_record_does_not_use_is_a_warning_and_a_bad_seed_an_error(tmp_path: Path) -> None:
    """An environment set for the consumers (a mistyped Redis URL, a SASL mechanism) does not stop a
    recording, which reads no broker and no Redis; the seed, which it reads, does."""
    out = tmp_path / "day.jsonl"
    args = ["record", "--days", "1", "--customers", "20", "--terminals", "20", "--out", str(out), "--no-progress"]
    result = CliRunner().invoke(main, args, env={"FRAUDSTREAM_REDIS_URL": "ftp://cache:6379", "FRAUDSTREAM_SEED": "7"})
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("Warning: FRAUDSTREAM_REDIS_URL: a Redis URL starts with"), result.stderr
    assert "(`record` does not use it: left at its default)" in result.stderr
    clean = tmp_path / "clean.jsonl"
    same = CliRunner().invoke(main, [*args[:-3], "--out", str(clean), "--no-progress"], env={"FRAUDSTREAM_SEED": "7"})
    assert same.exit_code == 0 and "Warning" not in same.stderr, same.output
    assert out.read_bytes() == clean.read_bytes()  # seed 7 read, nothing else changed
    bad_seed = CliRunner().invoke(main, args, env={"FRAUDSTREAM_REDIS_URL": "ftp://cache:6379", "FRAUDSTREAM_SEED": "x"})
    assert bad_seed.exit_code == 2 and "FRAUDSTREAM_SEED" in bad_seed.stderr, bad_seed.output
