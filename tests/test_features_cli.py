"""`fraudstream features`: the command's output against the independent pandas computation."""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from fraudstream.cli import main
from fraudstream.stream.features import FEATURE_NAMES, HANDBOOK_FEATURES
from tests.feature_helpers import handbook_reference, load_handbook


def write_handbook_csv(df: pd.DataFrame, path: Path) -> None:
    out = df.copy()
    out["TX_DATETIME"] = out.TX_DATETIME.dt.strftime("%Y-%m-%d %H:%M:%S")
    out.to_csv(path, index=False)


def scripted_frame() -> pd.DataFrame:
    """Three customers and two terminals over 50 days; six transactions per instant (each customer
    twice), one instant a day, so labels 7 days late arrive exactly with later transactions."""
    rows = []
    t0 = pd.Timestamp("2018-04-01 00:00:00")
    for i in range(300):
        day = i // 6
        moment = t0 + pd.Timedelta(days=day, hours=3 * (day % 7))
        amount = round(5 + (i * 37) % 200 + 0.01 * (i % 100), 2)
        rows.append((i, moment, i % 3, 1 + int(i % 7 == 0), amount, int(i % 4 == 0)))
    df = pd.DataFrame(rows, columns=["TRANSACTION_ID", "TX_DATETIME", "CUSTOMER_ID", "TERMINAL_ID", "TX_AMOUNT", "TX_FRAUD"])
    df["TX_FRAUD_SCENARIO"] = df.TX_FRAUD
    return df


def run_command(source: Path, out: Path, *extra: str, env: dict[str, str | None] | None = None) -> pd.DataFrame:
    result = CliRunner().invoke(main, ["features", str(source), "--out", str(out), "--no-progress", *extra], env=env)
    assert result.exit_code == 0, result.output
    assert '"transactions": ' in result.output
    return pd.read_csv(out).set_index("TRANSACTION_ID")


def test_command_matches_the_handbook_computation(tmp_path: Path) -> None:
    df = scripted_frame()
    write_handbook_csv(df, tmp_path / "in.csv")
    got = run_command(tmp_path / "in.csv", tmp_path / "out.csv.gz")
    with gzip.open(tmp_path / "out.csv.gz", "rt") as f:
        assert f.readline().strip().split(",") == ["TRANSACTION_ID", *FEATURE_NAMES]
    reference = handbook_reference(df)
    assert list(got.index) == list(df.TRANSACTION_ID)
    for name in HANDBOOK_FEATURES:
        np.testing.assert_allclose(got.loc[reference.index, name], reference[name], rtol=0, atol=1e-6, err_msg=name)
    assert reference["TERMINAL_ID_RISK_7DAY_WINDOW"].max() > 0  # labels were applied


def test_start_and_end_give_the_features_of_the_slice_as_if_it_were_the_file(tmp_path: Path) -> None:
    df = scripted_frame()
    write_handbook_csv(df, tmp_path / "in.csv")
    start, end = pd.Timestamp("2018-04-11"), pd.Timestamp("2018-05-06")
    got = run_command(tmp_path / "in.csv", tmp_path / "slice.csv", "--start", "2018-04-11", "--end", "2018-05-06")
    cut = df[(df.TX_DATETIME >= start) & (df.TX_DATETIME < end)]
    write_handbook_csv(cut, tmp_path / "cut.csv")
    expected = run_command(tmp_path / "cut.csv", tmp_path / "cut_out.csv")
    assert 0 < len(got) < len(df) and list(got.index) == list(cut.TRANSACTION_ID)
    pd.testing.assert_frame_equal(got, expected)  # the features start empty at --start
    result = CliRunner().invoke(main, ["features", str(tmp_path / "in.csv"), "--out", str(tmp_path / "none.csv"),
                                       "--no-progress", "--start", "2030-01-01"])
    assert result.exit_code == 0 and '"transactions": 0' in result.output
    assert "no transaction of" in result.output and "its rows from 2018-04-01" in result.output, result.output
    (tmp_path / "header.csv").write_text("TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_FRAUD\n")
    result = CliRunner().invoke(main, ["features", str(tmp_path / "header.csv"), "--out", str(tmp_path / "h.csv"),
                                       "--no-progress"])
    assert result.exit_code == 0 and '"transactions": 0' in result.output
    assert "header.csv has no transactions" in result.output, result.output  # as `replay` says


def test_label_delay_option_changes_terminal_risk(tmp_path: Path) -> None:
    df = scripted_frame()
    write_handbook_csv(df, tmp_path / "in.csv")
    week = run_command(tmp_path / "in.csv", tmp_path / "a.csv")
    late = run_command(tmp_path / "in.csv", tmp_path / "b.csv", "--label-delay", "30d")
    # labels 30 days late: none has arrived by the time the 7-to-8-day-old window is scored in the first weeks
    first_weeks = df.TRANSACTION_ID[df.TX_DATETIME < df.TX_DATETIME.iloc[0] + pd.Timedelta(days=30)]
    assert late.loc[first_weeks, "TERMINAL_ID_RISK_7DAY_WINDOW"].max() == 0
    assert week.loc[first_weeks, "TERMINAL_ID_RISK_7DAY_WINDOW"].max() > 0
    assert (late["CUSTOMER_ID_NB_TX_30DAY_WINDOW"] == week["CUSTOMER_ID_NB_TX_30DAY_WINDOW"]).all()


NEW_YORK = ZoneInfo("America/New_York")


def new_york_feed(n: int = 200) -> list[dict[str, object]]:
    """Transactions of a New York feed every 29 minutes from Friday 2024-03-08 12:00 local, across the
    weekend and the start of DST (Sunday 02:00 EST is 03:00 EDT); event times with their local offsets."""
    start = datetime(2024, 3, 8, 17, tzinfo=timezone.utc)
    return [{"transaction_id": f"t{i:03d}", "customer_id": f"c{i % 5}", "terminal_id": f"m{i % 3}",
             "amount": round(10.0 + (i * 37) % 300 + 0.25, 2),
             "event_time": (start + timedelta(minutes=29 * i)).astimezone(NEW_YORK).isoformat()} for i in range(n)]


def write_jsonl(rows: list[dict[str, object]], path: Path) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_a_local_time_zone_gives_the_flags_of_the_local_clock(tmp_path: Path) -> None:
    """With FRAUDSTREAM_LOCAL_TIMEZONE=America/New_York the weekend and night flags are those of the
    wall clock the feed wrote (Friday 22:00-05:00 is a Friday evening), by default those of UTC; no
    other feature changes."""
    rows = new_york_feed()
    write_jsonl(rows, tmp_path / "ny.jsonl")
    local = run_command(tmp_path / "ny.jsonl", tmp_path / "local.csv", env={"FRAUDSTREAM_LOCAL_TIMEZONE": "America/New_York"})
    utc = run_command(tmp_path / "ny.jsonl", tmp_path / "utc.csv", env={"FRAUDSTREAM_LOCAL_TIMEZONE": None})
    written = {str(row["transaction_id"]): datetime.fromisoformat(str(row["event_time"])) for row in rows}
    assert list(local.index) == list(written)
    for flags, clock in ((local, lambda t: t), (utc, lambda t: t.astimezone(timezone.utc))):
        assert flags["TX_DURING_WEEKEND"].tolist() == [float(clock(t).weekday() >= 5) for t in written.values()]
        assert flags["TX_DURING_NIGHT"].tolist() == [float(clock(t).hour <= 6) for t in written.values()]
    friday_evening = next(i for i, t in written.items() if t.weekday() == 4 and t.hour == 22)
    assert local.loc[friday_evening, ["TX_DURING_WEEKEND", "TX_DURING_NIGHT"]].tolist() == [0.0, 0.0]
    assert utc.loc[friday_evening, ["TX_DURING_WEEKEND", "TX_DURING_NIGHT"]].tolist() == [1.0, 1.0]
    assert {t.utcoffset() for t in written.values()} == {timedelta(hours=-5), timedelta(hours=-4)}  # DST began
    assert (local["TX_DURING_NIGHT"] != utc["TX_DURING_NIGHT"]).sum() > 20
    others = [name for name in FEATURE_NAMES if name not in ("TX_DURING_WEEKEND", "TX_DURING_NIGHT")]
    pd.testing.assert_frame_equal(local[others], utc[others])


def test_unreadable_input_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    result = CliRunner().invoke(main, ["features", str(bad), "--out", str(tmp_path / "o.csv"), "--no-progress"])
    assert result.exit_code != 0 and "bad.csv" in result.output
    assert not (tmp_path / "o.csv").exists()


def test_an_output_that_is_the_input_or_in_no_directory_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    write_handbook_csv(scripted_frame(), source)
    before = source.read_bytes()
    for out, message in ((source, "is the input FILE"), (tmp_path / "no" / "f.csv", "no such directory"),
                         (tmp_path / "f.parquet", "f.parquet: unknown output format; use .csv or .csv.gz")):
        result = CliRunner().invoke(main, ["features", str(source), "--out", str(out), "--no-progress"])
        assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output, result.output
    assert source.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]  # nothing written, not even a part file


@pytest.mark.data
def test_command_on_real_data(handbook_csv: Path, tmp_path: Path) -> None:
    df = load_handbook(handbook_csv, days=40, customer_modulo=50)
    write_handbook_csv(df, tmp_path / "in.csv")
    got = run_command(tmp_path / "in.csv", tmp_path / "out.csv")
    reference = handbook_reference(df)
    for name in HANDBOOK_FEATURES:
        np.testing.assert_allclose(got.loc[reference.index, name], reference[name], rtol=0, atol=1e-6, err_msg=name)


def test_ctrl_c_exits_130_and_leaves_no_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not click's "Aborted!" with status 1, which a script cannot tell from an error."""
    import fraudstream.cli.features as command

    source, out = tmp_path / "hb.csv", tmp_path / "features.csv"
    write_handbook_csv(scripted_frame(), source)
    real = command.features_as_scored

    def interrupted(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        for n, row in enumerate(real(*args, **kwargs)):
            if n == 100:
                raise KeyboardInterrupt
            yield row

    monkeypatch.setattr(command, "features_as_scored", interrupted)
    result = CliRunner().invoke(main, ["features", str(source), "--out", str(out), "--no-progress"])
    assert result.exit_code == 130, result.output
    assert "interrupted (Ctrl-C) before the end" in result.output and "Aborted" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hb.csv"]
