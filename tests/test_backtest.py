"""The backtest: label timing (score before learn, no early labels), the CLI outputs, Redis == memory."""

from __future__ import annotations

import csv
import gzip
import json
import os
import random
import re
import threading
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from river import base

from fraudstream.cli import main
from fraudstream.constants import CUSTOMER_EVENTS
from fraudstream.errors import CheckpointError
from fraudstream.models import metrics, zoo
from fraudstream.models.checkpoint import load_file, save_file
from fraudstream.producer.files import read_recorded
from fraudstream.stream import backtest as backtest_module
from fraudstream.stream.backtest import replay
from fraudstream.stream.features import FeatureEngine
from fraudstream.stream.state import MemoryStore

START = datetime(2018, 4, 1, tzinfo=timezone.utc)
HEADER = "TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_FRAUD,TX_FRAUD_SCENARIO\n"


def write_handbook_csv(path: Path, days: int = 30, customers: int = 40, seed: int = 0,
                       fraud_rate: float = 0.03) -> Path:
    """Handbook-format transactions; frauds have large amounts. Amounts are unique per row, so a spy
    model can tell transactions apart from their features."""
    rng = random.Random(seed)
    rows = []
    for day in range(days):
        for c in range(customers):
            for _ in range(rng.randint(1, 4)):
                rows.append((START + timedelta(days=day, seconds=rng.randint(0, 86399)), c))
    rows.sort()
    with path.open("w") as out:
        out.write(HEADER)
        for i, (when, c) in enumerate(rows):
            fraud = rng.random() < fraud_rate
            amount = (500.0 if fraud else 1.0) + i / 100  # unique per row
            out.write(f"{i},{when:%Y-%m-%dT%H:%M:%S},{c},{rng.randint(0, 29)},{amount:.2f},{int(fraud)},{int(fraud)}\n")
    return path


class Spy(base.Classifier):
    """Records the order of score and learn calls, by transaction amount."""

    def __init__(self) -> None:
        self.events: list[tuple[str, float]] = []

    def learn_one(self, x: dict, y: bool) -> None:  # type: ignore[override]
        self.events.append(("learn", x["TX_AMOUNT"]))

    def predict_proba_one(self, x: dict) -> dict[bool, float]:  # type: ignore[override]
        self.events.append(("score", x["TX_AMOUNT"]))
        return {False: 0.5, True: 0.5}


def test_labels_are_learned_once_after_their_delay_and_after_scoring(tmp_path: Path) -> None:
    path = write_handbook_csv(tmp_path / "hb.csv", days=12, customers=10)
    records = list(read_recorded(path))
    when = {r.transaction.amount: r.transaction.event_time for r in records}
    assert len(when) == len(records)
    delay = timedelta(days=3)
    spy = Spy()
    run = replay(records, FeatureEngine(MemoryStore()), spy, "spy", delay)
    assert len(run.scores) == len(records)
    scored: set[float] = set()
    learned: list[float] = []
    for kind, amount in spy.events:
        if kind == "score":
            scored.add(amount)
        else:
            assert amount in scored, "learned before scored"
            assert when[amount] + delay <= next_score_time(spy.events, amount, when), "label used too early"
            learned.append(amount)
    last = records[-1].transaction.event_time
    due = [r for r in records if r.transaction.event_time + delay <= last]
    assert run.n_labels_learned == len(learned) == len(set(learned)) == len(due)
    assert len(learned) > len(records) / 2


def next_score_time(events: list[tuple[str, float]], learned_amount: float, when: dict) -> datetime:
    """Event time of the first transaction scored after the learn event of `learned_amount`."""
    seen = False
    for kind, amount in events:
        if kind == "learn" and amount == learned_amount:
            seen = True
        elif seen and kind == "score":
            return when[amount]
    return datetime.max.replace(tzinfo=timezone.utc)


def test_cli_outputs_can_be_recomputed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_handbook_csv(tmp_path / "hb.csv")
    out = {k: tmp_path / f"out.{k}" for k in ("json", "csv", "html", "ckpt")}
    monkeypatch.setenv("FRAUDSTREAM_MODEL_SIGNING_KEY", "test-key")
    result = CliRunner().invoke(main, [
        "backtest", str(path), "--eval-start", "2018-04-16", "--eval-end", "2018-04-30", "--label-delay", "3d",
        "--model", "logreg", "--no-progress", "--json", str(out["json"]), "--scores", str(out["csv"]),
        "--report", str(out["html"]), "--save-model", str(out["ckpt"]),
    ])
    assert result.exit_code == 0, result.output
    figures = json.loads(out["json"].read_text())
    for key in ("model", "eval_start", "eval_end", "n_transactions", "n_frauds", "auc_roc", "average_precision",
                "card_precision_at_100", "throughput_tps", "alerts_per_day", "precision_at_threshold"):
        assert key in figures
    assert figures["auc_roc"] > 0.9 and len(figures["weeks"]) == 3  # 16-22, 23-29, 30

    # recompute from the scores file and the input alone
    with out["csv"].open() as f:
        scores = {row["transaction_id"]: float(row["score"]) for row in csv.DictReader(f)}
    with path.open() as f:
        rows = list(csv.DictReader(f))
    days = np.array([metrics.day_number(datetime.fromisoformat(r["TX_DATETIME"])) for r in rows])
    in_window = (days >= metrics.day_number(date(2018, 4, 16))) & (days <= metrics.day_number(date(2018, 4, 30)))
    assert set(scores) == {r["TRANSACTION_ID"] for r, w in zip(rows, in_window) if w}
    m = metrics.prequential_metrics(days, np.array([r["CUSTOMER_ID"] for r in rows]),
                                    np.array([int(r["TX_FRAUD"]) for r in rows]),
                                    np.array([scores.get(r["TRANSACTION_ID"], 0.0) for r in rows]),
                                    metrics.day_number(date(2018, 4, 16)), metrics.day_number(date(2018, 4, 30)), 3)
    assert m.n_transactions == figures["n_transactions"] and m.n_frauds == figures["n_frauds"]
    assert m.auc_roc == pytest.approx(figures["auc_roc"])
    assert m.average_precision == pytest.approx(figures["average_precision"])
    assert m.card_precision_at_k == pytest.approx(figures["card_precision_at_100"])
    # the alert figures count every transaction of the window, known-compromised cards included
    window = [(r["TX_FRAUD"] == "1", scores[r["TRANSACTION_ID"]] >= figures["threshold"])
              for r, w in zip(rows, in_window) if w]
    hits = sum(fraud and alerted for fraud, alerted in window)
    assert figures["n_window_transactions"] == len(window)
    assert figures["n_window_frauds"] == sum(fraud for fraud, _ in window) >= figures["n_frauds"]
    assert figures["alerts"] == sum(alerted for _, alerted in window)
    assert figures["recall_at_threshold"] == pytest.approx(hits / figures["n_window_frauds"])
    assert figures["precision_at_threshold"] == pytest.approx(hits / figures["alerts"])

    page = out["html"].read_text()
    assert page.count("data:image/png;base64,") == 5 and "card_precision_at_100" in page

    checkpoint = load_file(out["ckpt"], "test-key")
    assert checkpoint.info.kind == "logreg" and checkpoint.info.labels_learned == figures["n_labels_learned"]
    assert checkpoint.model.predict_proba_one({"TX_AMOUNT": 300.0})[True] > 0.5
    with pytest.raises(CheckpointError):
        load_file(out["ckpt"], "another-key")


def test_cli_refuses_unknown_model_and_bad_window(tmp_path: Path) -> None:
    path = write_handbook_csv(tmp_path / "hb.csv", days=3, customers=2)
    result = CliRunner().invoke(main, ["backtest", str(path), "--model", "nope", "--no-progress"])
    assert result.exit_code != 0 and "unknown model 'nope'" in result.output
    result = CliRunner().invoke(main, ["backtest", str(path), "--eval-start", "2018-05-01", "--eval-end",
                                       "2018-04-01", "--no-progress"])
    assert result.exit_code != 0 and "before --eval-start" in result.output
    result = CliRunner().invoke(main, ["backtest", str(path), "--report", str(tmp_path / "no" / "r.html"),
                                       "--no-progress"])  # refused before the replay, not after it
    assert result.exit_code == 2 and "--report" in result.output and "no such directory" in result.output


def test_an_output_on_the_input_file_or_on_another_output_is_refused_before_the_replay(tmp_path: Path) -> None:
    path = write_handbook_csv(tmp_path / "hb.csv", days=3, customers=2)
    before = path.read_bytes()
    for args, option, what in ((["--scores", str(path)], "--scores", "is the input FILE"),
                               (["--json", str(tmp_path / "x"), "--scores", str(tmp_path / "x")], "--scores",
                                "is --json's output too")):
        result = CliRunner().invoke(main, ["backtest", str(path), "--no-progress", *args])
        assert result.exit_code == 2 and option in result.output and what in result.output, result.output
    assert path.read_bytes() == before and not (tmp_path / "x").exists()


def test_the_evaluation_window_ends_with_the_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An --eval-end past the last day with transactions would divide the alerts by days with none and
    add empty weeks; a --start past the data says what the file holds."""
    path = write_handbook_csv(tmp_path / "hb.csv", days=20, customers=10)  # 2018-04-01..04-20
    args = ["backtest", str(path), "--eval-start", "2018-04-08", "--label-delay", "2d", "--model", "logreg",
            "--threshold", "0.2", "--no-progress"]
    runs, printed = {}, {}
    for end in ("2018-04-20", "2018-05-31"):
        out = tmp_path / f"{end}.json"
        result = CliRunner().invoke(main, [*args, "--eval-end", end, "--json", str(out)])
        assert result.exit_code == 0, result.output
        runs[end], printed[end] = json.loads(out.read_text()), result.output
    warning = "--eval-end 2018-05-31 is after the data's last day, 2018-04-20"
    assert warning in printed["2018-05-31"] and warning[:20] not in printed["2018-04-20"]
    clamped, exact = runs["2018-05-31"], runs["2018-04-20"]
    assert clamped["eval_end"] == "2018-04-20" and clamped["weeks"] == exact["weeks"] and len(exact["weeks"]) == 2
    assert exact["alerts"] > 0 and clamped["alerts_per_day"] == exact["alerts_per_day"] == exact["alerts"] / 13
    # features over 30 days, a window 7 days after the file's first row: said before the replay, with or without --start
    assert "--eval-start is 7 days after the data's first day (2018-04-01)" in printed["2018-04-20"]
    expected = {"--eval-end": "the data holds 2018-04-01..2018-04-20: the default evaluation start, 30 days after its "
                              "first day (2018-05-01), is after its end",
                "--eval-start": "--eval-start 2018-05-01 is after the data's last day, 2018-04-20"}
    def no_replay(*args: object, **kwargs: object) -> None:
        raise AssertionError("replayed")

    with monkeypatch.context() as patch:  # said before the replay (`file_end`), not after minutes of it
        patch.setattr(backtest_module, "run_backtest", no_replay)
        for late in (["--eval-end", "2018-05-31"], ["--eval-start", "2018-05-01", "--eval-end", "2018-05-31"]):
            result = CliRunner().invoke(main, [*args[:2], "--no-progress", *late])
            assert result.exit_code == 1 and expected[late[0]] in " ".join(result.output.split()), result.output
        # a window that ends before the replay's first day: said at once, with neither warning nor replay
        for early, before in ((["--eval-start", "2018-03-01", "--eval-end", "2018-03-31"], "the data's first day"),
                              (["--start", "2018-04-10", "--eval-end", "2018-04-05"], "--start")):
            result = CliRunner().invoke(main, [*args[:2], "--no-progress", *early])
            said = " ".join(result.output.split())
            assert result.exit_code == 1 and f"--eval-end {early[-1]} is before {before} (2018-04-" in said, said
            assert "holds no transaction" in said and "WARNING" not in said, said
    result = CliRunner().invoke(main, [*args[:2], "--start", "2019-01-01", "--no-progress"])
    assert result.exit_code != 0 and "no transactions to evaluate in the window asked for: rows from 2018-04-01T" in result.output
    assert "to 2018-04-20T" in result.output, result.output
    (tmp_path / "empty.csv").write_text(HEADER)
    result = CliRunner().invoke(main, ["backtest", str(tmp_path / "empty.csv"), "--no-progress"])
    assert result.exit_code != 0 and "no transactions to evaluate: no row of " in result.output, result.output


def test_a_window_without_frauds_reports_its_figures_as_not_available(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """AUC and AP are null (no week has both classes): the report says n/a, and the model is saved."""
    path = write_handbook_csv(tmp_path / "hb.csv", days=10, customers=10, fraud_rate=0.0)
    monkeypatch.setenv("FRAUDSTREAM_MODEL_SIGNING_KEY", "test-key")
    out = {k: tmp_path / f"out.{k}" for k in ("json", "html", "ckpt")}
    result = CliRunner().invoke(main, ["backtest", str(path), "--eval-start", "2018-04-04", "--model", "logreg",
                                       "--no-progress", "--json", str(out["json"]), "--report", str(out["html"]),
                                       "--save-model", str(out["ckpt"])])
    assert result.exit_code == 0, result.output
    figures = json.loads(out["json"].read_text())
    assert figures["n_frauds"] == 0 and figures["auc_roc"] is None and figures["average_precision"] is None
    page = out["html"].read_text()
    assert page.count("data:image/png;base64,") == 5 and "<th>auc_roc</th><td>n/a</td>" in page
    assert load_file(out["ckpt"], "test-key").info.kind == "logreg"


def test_an_evaluation_window_that_starts_before_the_data_starts_with_it(tmp_path: Path) -> None:
    """Alerts per day count the data's days, and the weeks start on its first day, as with an
    --eval-end after its last day; the daily CP@100 values keep their own days."""
    path = write_handbook_csv(tmp_path / "hb.csv", days=20, customers=10)  # 2018-04-01..04-20
    runs, printed = {}, {}
    for start in ("2018-03-01", "2018-04-01"):
        out = tmp_path / f"{start}.json"
        result = CliRunner().invoke(main, ["backtest", str(path), "--eval-start", start, "--label-delay", "2d",
                                           "--model", "logreg", "--threshold", "0.2", "--no-progress",
                                           "--json", str(out)])
        assert result.exit_code == 0, result.output
        runs[start], printed[start] = json.loads(out.read_text()), result.output
    warning = "--eval-start 2018-03-01 is before the first day replayed, 2018-04-01: evaluating from 2018-04-01"
    assert warning in printed["2018-03-01"] and "is before the first day" not in printed["2018-04-01"]
    early, exact = runs["2018-03-01"], runs["2018-04-01"]
    assert early["eval_start"] == "2018-04-01" and early["weeks"] == exact["weeks"] and len(exact["weeks"]) == 3
    assert exact["alerts"] > 0 and early["alerts_per_day"] == exact["alerts_per_day"] == exact["alerts"] / 20


def test_a_repeated_row_is_neither_scored_nor_learned_twice(tmp_path: Path) -> None:
    """The same transaction twice in a file (an export's duplicate): skipped and counted, as a consumer
    does with one delivered again, in the backtest (both of its paths) and in `features`."""
    path = write_handbook_csv(tmp_path / "hb.csv", days=12, customers=10)
    lines = path.read_text().splitlines(keepends=True)
    frauds = [i for i, line in enumerate(lines[1:], 1) if line.rstrip().endswith(",1,1")]
    lines[frauds[0]:frauds[0]] = [lines[frauds[0]]]  # a fraud's row, twice in a row
    twice = tmp_path / "twice.csv"
    twice.write_text("".join(lines))
    figures, printed = {}, {}
    for name in (path, twice):
        out = tmp_path / f"{name.stem}.json"
        result = CliRunner().invoke(main, ["backtest", str(name), "--eval-start", "2018-04-03", "--label-delay", "1d",
                                           "--model", "logreg", "--no-progress", "--json", str(out)])
        assert result.exit_code == 0, result.output
        figures[name.stem] = {k: v for k, v in json.loads(out.read_text()).items()
                              if k not in ("elapsed_s", "throughput_tps", "file")}
        printed[name.stem] = result.output
    assert figures["twice"].pop("n_repeated") == 1 and figures["hb"].pop("n_repeated") == 0
    assert figures["twice"] == figures["hb"]
    assert "1 rows repeated an earlier transaction" in printed["twice"]
    one_process = [replay(read_recorded(name), FeatureEngine(MemoryStore()), zoo.make_model("logreg"), "logreg",
                          timedelta(days=1)) for name in (path, twice)]
    assert (one_process[0].n_repeated, one_process[1].n_repeated) == (0, 1)
    assert list(one_process[1].scores) == list(one_process[0].scores)
    assert one_process[1].n_labels_learned == one_process[0].n_labels_learned
    for name in (path, twice):
        result = CliRunner().invoke(main, ["features", str(name), "--out", str(tmp_path / f"{name.stem}.f.csv"),
                                           "--no-progress"])
        assert result.exit_code == 0, result.output
    assert (tmp_path / "twice.f.csv").read_text() == (tmp_path / "hb.f.csv").read_text()
    assert '"skipped_repeated_rows": 1' in result.output


def test_frauds_never_reported_are_counted_and_said_to_count_as_genuine(tmp_path: Path) -> None:
    """A simulation recorded with --report-share 0.5: the figures measure against the labels (what a
    live model learns from), and the summary counts the frauds of the window whose label says genuine,
    in both of the backtest's paths."""
    path = tmp_path / "half.csv"
    recorded = CliRunner().invoke(main, ["record", "--days", "21", "--customers", "400", "--terminals", "800",
                                         "--report-share", "0.5", "--no-progress", "--out", str(path)])
    assert recorded.exit_code == 0, recorded.output
    out = tmp_path / "half.json"
    result = CliRunner().invoke(main, ["backtest", str(path), "--eval-start", "2024-01-08", "--model", "logreg",
                                       "--no-progress", "--json", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads(out.read_text())
    rows = [r for r in read_recorded(path) if r.transaction.event_time.date() >= date(2024, 1, 8)]
    hidden = sum(r.fraud_scenario != "0" and not r.is_fraud for r in rows)
    assert summary["file"] == str(path)
    assert summary["n_window_frauds_unreported"] == hidden > 0
    assert summary["n_window_frauds"] == sum(bool(r.is_fraud) for r in rows) > 0
    assert f"{hidden:,} frauds of the evaluation window were never reported" in result.output
    one_process = replay(read_recorded(path), FeatureEngine(MemoryStore()), zoo.make_model("logreg"), "logreg",
                         timedelta(days=7))
    start = metrics.day_number(date(2024, 1, 8))
    assert sum(day >= start for day in one_process.unreported_days) == hidden


def test_an_unreachable_redis_option_is_named_in_the_error(tmp_path: Path) -> None:
    path = write_handbook_csv(tmp_path / "hb.csv", days=3, customers=2)
    result = CliRunner().invoke(main, ["backtest", str(path), "--eval-start", "2018-04-02", "--redis", "redis://127.0.0.1:1/0",
                                       "--no-progress"],
                                env={"FRAUDSTREAM_REDIS_URL": "redis://127.0.0.1:2/0"})
    assert result.exit_code == 1 and "Error: cannot reach Redis (--redis): " in result.output, result.output
    assert "FRAUDSTREAM_REDIS_URL" not in result.output and "Traceback" not in result.output


def test_a_window_with_unlabelled_transactions_is_refused_not_scored_as_genuine(tmp_path: Path) -> None:
    handbook = write_handbook_csv(tmp_path / "hb.csv", days=40, customers=5)
    ours = tmp_path / "ours.csv"  # our format, without the is_fraud column
    with handbook.open() as f, ours.open("w") as out:
        out.write("transaction_id,customer_id,terminal_id,amount,event_time\n")
        for row in csv.DictReader(f):
            out.write(f"{row['TRANSACTION_ID']},{row['CUSTOMER_ID']},{row['TERMINAL_ID']},{row['TX_AMOUNT']},"
                      f"{row['TX_DATETIME']}Z\n")
    result = CliRunner().invoke(main, ["backtest", str(ours), "--no-progress"])
    assert result.exit_code == 1 and "have no label (is_fraud)" in result.output, result.output
    labelled = CliRunner().invoke(main, ["backtest", str(handbook), "--no-progress"])
    assert labelled.exit_code == 0, labelled.output


def test_cli_reports_a_bad_row_or_a_truncated_file_in_one_line(tmp_path: Path) -> None:
    """The feature worker's input errors reach the user as the readers' one-line messages."""
    good = write_handbook_csv(tmp_path / "hb.csv", days=3, customers=2)
    lines = good.read_text().splitlines()
    row = lines[5].split(",")
    row[4] = "abc"  # TX_AMOUNT
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines[:5] + [",".join(row)] + lines[6:]) + "\n")
    truncated = tmp_path / "cut.csv.gz"
    truncated.write_bytes(gzip.compress(good.read_bytes())[:-40])
    for path, message in ((bad, "bad.csv:6: amount 'abc' is not a number"), (truncated, "cut.csv.gz: cannot read")):
        for progress in ("--progress", "--no-progress"):
            result = CliRunner().invoke(main, ["backtest", str(path), progress, "--eval-start", "2018-04-02"])
            assert result.exit_code == 1 and message in result.output, result.output
            assert "Traceback" not in result.output and "worker failed" not in result.output


@pytest.mark.services
def test_redis_state_gives_the_same_scores_as_memory(tmp_path: Path, settings) -> None:  # type: ignore[no-untyped-def]
    import redis

    client = redis.Redis.from_url(settings.redis_url)
    scripts_before = client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)
    live_key = f"{settings.redis_key_prefix}:{{c:a-live-customer}}:{CUSTOMER_EVENTS}"  # the live consumers' state: left alone
    client.set(live_key, b"live")
    path = write_handbook_csv(tmp_path / "hb.csv", days=20, customers=15)
    outs = []
    for extra in ([], ["--redis", settings.redis_url]):
        target = tmp_path / f"scores{len(outs)}.csv"
        result = CliRunner(env={"FRAUDSTREAM_REDIS_KEY_PREFIX": settings.redis_key_prefix}).invoke(main, [
            "backtest", str(path), "--eval-start", "2018-04-10", "--label-delay", "2d", "--no-progress",
            "--scores", str(target), *extra])
        assert result.exit_code == 0, result.output
        outs.append(target.read_text())
    assert outs[0] == outs[1] and outs[0].count("\n") > 300
    try:  # the second run really kept its state in Redis (its feature scripts ran), under a prefix of its own
        assert client.info("commandstats")["cmdstat_evalsha"]["calls"] - scripts_before > 10
        assert list(client.scan_iter(match=f"{settings.redis_key_prefix}*", count=1000)) == [live_key.encode()]
        assert client.get(live_key) == b"live"
    finally:
        client.close()


def _trees_after_a_warm_up() -> Any:
    """`gbt_window` with a fit at 10 frauds, so that this small file sees its warm-up end and refits."""
    from fraudstream.models.boosted import WindowedBoostedTrees

    return WindowedBoostedTrees(min_frauds=10, warmup_model=zoo.make_model("gam_under", 7), seed=7)


@pytest.mark.parametrize("model", ["gam_under", "trees", "trees in batches of 7"])
@pytest.mark.parametrize("delay", [timedelta(days=3), timedelta(hours=2), timedelta(0)])
def test_two_process_backtest_scores_like_the_one_process_replay(tmp_path: Path, delay: timedelta, model: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The forked feature worker plus the scoring loop give every transaction the score `replay` gives
    (`replay` scores one transaction at a time; the scoring loop scores the tree model's transactions
    between two refits in one batch, of at most `DEFERRED_MAX_ROWS`)."""
    from fraudstream.stream import backtest_pipeline
    from fraudstream.stream.backtest import Replay
    from fraudstream.stream.backtest_pipeline import forked_chunks, score_chunks

    if model == "trees in batches of 7":
        monkeypatch.setattr(backtest_pipeline, "DEFERRED_MAX_ROWS", 7)

    make = (lambda: zoo.make_model("gam_under", 7)) if model == "gam_under" else _trees_after_a_warm_up
    path = write_handbook_csv(tmp_path / "hb.csv", days=14, customers=40)
    one = replay(list(read_recorded(path)), FeatureEngine(MemoryStore()), make(), "m", delay)
    two = Replay()
    scored = make()
    score_chunks(forked_chunks(read_recorded(path), FeatureEngine(MemoryStore()), delay), scored, two)
    if model != "gam_under":
        assert scored.n_fits >= 2 and scored.warming_up is None  # the warm-up ended and refits followed
    assert two.transaction_ids == one.transaction_ids and len(one.scores) > 1000
    assert list(two.scores) == list(one.scores)
    assert (two.n_labels_learned, two.n_frauds_learned) == (one.n_labels_learned, one.n_frauds_learned)
    assert one.n_frauds_learned > 0 and len(set(one.scores)) > (100 if model == "gam_under" else 10)


def test_a_fresh_models_cut_is_not_recorded_as_learned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a checkpoint, the labels before --learn-after only warm the features: the saved
    checkpoint records this run's span alone, so a run from it learns those labels."""
    path = write_handbook_csv(tmp_path / "hb.csv", days=20, customers=20)
    monkeypatch.setenv("FRAUDSTREAM_MODEL_SIGNING_KEY", "test-key")
    result = CliRunner().invoke(main, ["backtest", str(path), "--label-delay", "2d", "--model", "logreg",
                                       "--eval-start", "2018-04-12", "--learn-after", "2018-04-10", "--no-progress",
                                       "--save-model", str(tmp_path / "m.fsmodel")])
    assert result.exit_code == 0, result.output
    info = load_file(tmp_path / "m.fsmodel", "test-key").info
    spans = info.extra["learned_spans"]
    assert len(spans) == 1 and spans[0][0] > "2018-04-10" and info.labels_learned > 0, spans


@pytest.mark.parametrize(("delay", "untrained"), [("3d", False), ("60d", True)])
def test_save_model_says_when_the_model_learned_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       delay: str, untrained: bool) -> None:
    path = write_handbook_csv(tmp_path / "hb.csv", days=10, customers=10)
    monkeypatch.setenv("FRAUDSTREAM_MODEL_SIGNING_KEY", "test-key")
    result = CliRunner().invoke(main, ["backtest", str(path), "--label-delay", delay, "--model", "logreg",
                                       "--eval-start", "2018-04-05", "--eval-end", "2018-04-10",
                                       "--no-progress", "--save-model", str(tmp_path / "m.fsmodel")])
    assert result.exit_code == 0, result.output
    assert ("the model learned from no label" in result.output) is untrained
    assert (tmp_path / "m.fsmodel").exists()


def test_start_replays_a_slice_of_the_file(tmp_path: Path) -> None:
    path = write_handbook_csv(tmp_path / "hb.csv", days=30, customers=20)
    with path.open() as f:
        times = [datetime.fromisoformat(r["TX_DATETIME"]).replace(tzinfo=timezone.utc) for r in csv.DictReader(f)]
    start, end = datetime(2018, 4, 10, 12, tzinfo=timezone.utc), datetime(2018, 4, 26, tzinfo=timezone.utc)
    out = tmp_path / "out.json"
    result = CliRunner().invoke(main, ["backtest", str(path), "--start", start.isoformat(), "--eval-start", "2018-04-18",
                                       "--eval-end", "2018-04-25", "--label-delay", "2d", "--model", "logreg",
                                       "--no-progress", "--json", str(out)])
    assert result.exit_code == 0, result.output
    figures = json.loads(out.read_text())
    assert figures["n_processed"] == sum(start <= t < end for t in times)
    refused = CliRunner().invoke(main, ["backtest", str(path), "--start", "2018-04-20", "--eval-start", "2018-04-18"])
    assert refused.exit_code != 0 and "--eval-start 2018-04-18 is before --start 2018-04-20" in refused.output


def _trained_checkpoint(tmp_path: Path, path: Path) -> Path:
    """A logreg checkpoint of a backtest of the file's first two weeks (3-day label delay)."""
    ckpt = tmp_path / "trained.fsmodel"
    result = CliRunner().invoke(main, ["backtest", str(path), "--eval-start", "2018-04-10", "--eval-end", "2018-04-14",
                                       "--label-delay", "3d", "--model", "logreg", "--no-progress",
                                       "--save-model", str(ckpt)])
    assert result.exit_code == 0, result.output
    return ckpt


def _scores(path: Path) -> dict[str, float]:
    with path.open() as f:
        return {row["transaction_id"]: float(row["score"]) for row in csv.DictReader(f)}


def test_from_model_starts_from_the_checkpoint_and_counts_its_labels_on(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUDSTREAM_MODEL_SIGNING_KEY", "test-key")
    path = write_handbook_csv(tmp_path / "hb.csv", days=30, customers=20)
    trained = load_file(_trained_checkpoint(tmp_path, path), "test-key")
    out = {k: tmp_path / f"after.{k}" for k in ("json", "csv", "fsmodel")}
    result = CliRunner().invoke(main, [
        "backtest", str(path), "--from-model", str(tmp_path / "trained.fsmodel"), "--start", "2018-04-20",
        "--eval-start", "2018-04-20", "--label-delay", "3d", "--no-progress", "--json", str(out["json"]),
        "--scores", str(out["csv"]), "--save-model", str(out["fsmodel"])])
    assert result.exit_code == 0, result.output
    figures = json.loads(out["json"].read_text())
    assert figures["model"] == "logreg" and figures["learn"] is True
    assert figures["start_model"].startswith(f"logreg v1 (logreg, {trained.info.labels_learned:,} labels learned)")
    # the first transaction after --start is scored by the checkpoint's model (features start empty there)
    records = list(read_recorded(path, start=datetime(2018, 4, 20, tzinfo=timezone.utc)))
    first = records[0].transaction
    x = FeatureEngine(MemoryStore()).transform([first])[0]
    expected = trained.model.predict_proba_one(x)[True]
    assert _scores(out["csv"])[first.transaction_id] == pytest.approx(expected, abs=1e-12)
    assert expected != pytest.approx(zoo.make_model("logreg").predict_proba_one(x)[True])  # not a fresh model's
    # learning went on from the checkpoint's count
    after = load_file(out["fsmodel"], "test-key").info
    assert figures["n_labels_learned"] > 0
    assert after.labels_learned == trained.info.labels_learned + figures["n_labels_learned"]
    assert after.frauds_learned == trained.info.frauds_learned + figures["n_frauds_learned"]
    assert after.name == trained.info.name and after.extra["started_from"] == figures["start_model"]
    assert after.version == trained.info.version + 1


def test_no_learn_scores_with_the_checkpoint_as_it_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUDSTREAM_MODEL_SIGNING_KEY", "test-key")
    path = write_handbook_csv(tmp_path / "hb.csv", days=30, customers=20)
    ckpt = _trained_checkpoint(tmp_path, path)
    frozen_csv, frozen_json = tmp_path / "frozen.csv", tmp_path / "frozen.json"
    result = CliRunner().invoke(main, [
        "backtest", str(path), "--from-model", str(ckpt), "--no-learn", "--start", "2018-04-15",
        "--eval-start", "2018-04-15", "--label-delay", "3d", "--no-progress", "--scores", str(frozen_csv),
        "--json", str(frozen_json)])
    assert result.exit_code == 0, result.output
    figures = json.loads(frozen_json.read_text())
    assert figures["learn"] is False and figures["n_labels_learned"] == 0 and figures["auc_roc"] > 0.9
    assert figures["not_learned"] == [[None, "2100-01-01T00:00:00+00:00"]]  # not one label learned
    assert "learned again" not in result.output and "optimistic" not in result.output
    # the same checkpoint evaluated on the days whose labels it learned: said, not passed off as a validation
    spans = load_file(ckpt, "test-key").info.extra["learned_spans"]
    overlapping = CliRunner().invoke(main, ["backtest", str(path), "--from-model", str(ckpt), "--no-learn",
                                            "--eval-start", "2018-04-08", "--eval-end", "2018-04-20",
                                            "--label-delay", "3d", "--no-progress"])
    assert overlapping.exit_code == 0, overlapping.output
    assert (f"--from-model learned the labels of transactions in the evaluation window 2018-04-08..2018-04-20 "
            f"(up to {spans[-1][1]}): its figures there are optimistic") in " ".join(overlapping.output.split())
    # the one-process replay of the same checkpoint: the same scores when it does not learn, others when it does
    records = list(read_recorded(path, start=datetime(2018, 4, 15, tzinfo=timezone.utc)))
    delay = timedelta(days=3)
    frozen = replay(records, FeatureEngine(MemoryStore()), load_file(ckpt, "test-key").model, "logreg", delay,
                    learn=False)
    learning = replay(records, FeatureEngine(MemoryStore()), load_file(ckpt, "test-key").model, "logreg", delay)
    assert frozen.n_labels_learned == 0 and learning.n_labels_learned > 100
    assert _scores(frozen_csv) == dict(zip(frozen.transaction_ids, frozen.scores))
    assert list(frozen.scores) != list(learning.scores)
    spy = Spy()
    replay(records, FeatureEngine(MemoryStore()), spy, "spy", delay, learn=False)
    assert {kind for kind, _ in spy.events} == {"score"}


def test_from_model_refuses_what_it_cannot_honour(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUDSTREAM_MODEL_SIGNING_KEY", "test-key")
    path = write_handbook_csv(tmp_path / "hb.csv", days=20, customers=10)
    ckpt = _trained_checkpoint(tmp_path, path)
    base = ["backtest", str(path), "--no-progress", "--label-delay", "3d"]
    cases = {
        ("--no-learn",): "--no-learn needs --from-model",
        ("--from-model", str(ckpt), "--no-learn", "--save-model", str(tmp_path / "x.fsmodel")):
            "--save-model with --no-learn would write the --from-model checkpoint back unchanged",
        ("--from-model", str(ckpt), "--model", "gam"): f"--model gam differs from the kind of --from-model {ckpt}: logreg",
        ("--from-model", str(ckpt), "--no-learn", "--learn-after", "2018-04-02"):
            "--learn-after has no effect with --no-learn",
    }
    for extra, message in cases.items():
        result = CliRunner().invoke(main, [*base, *extra])
        assert result.exit_code != 0 and message in result.output, (extra, result.output)
    monkeypatch.setenv("FRAUDSTREAM_MODEL_SIGNING_KEY", "another-key")
    result = CliRunner().invoke(main, [*base, "--from-model", str(ckpt)])
    assert result.exit_code != 0 and f"{ckpt}: checkpoint signature does not match" in result.output
    assert not (tmp_path / "x.fsmodel").exists()


def test_labels_a_checkpoint_learned_are_not_learned_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUDSTREAM_MODEL_SIGNING_KEY", "test-key")
    path = write_handbook_csv(tmp_path / "hb.csv", days=30, customers=20)
    times = sorted(r.transaction.event_time for r in read_recorded(path))
    delay = timedelta(days=3)
    day = lambda d: datetime(2018, 4, d, tzinfo=timezone.utc)  # noqa: E731
    ckpt = tmp_path / "slice.fsmodel"  # a model of a slice: 04-08 on, read up to its --eval-end 04-14
    result = CliRunner().invoke(main, ["backtest", str(path), "--start", "2018-04-08", "--eval-start", "2018-04-10",
                                       "--eval-end", "2018-04-14", "--label-delay", "3d", "--model", "logreg",
                                       "--no-progress", "--save-model", str(ckpt)])
    assert result.exit_code == 0, result.output
    trained = load_file(ckpt, "test-key").info
    last_read = max(t for t in times if t < day(15))
    learned = [t for t in times if day(8) <= t and t + delay <= last_read]
    assert trained.labels_learned == len(learned)
    assert trained.extra["learned_spans"] == [[min(learned).isoformat(), max(learned).isoformat()]]

    warnings = ""

    def run(model: Path, *extra: str) -> dict[str, Any]:
        nonlocal warnings
        out = tmp_path / "run.json"
        result = CliRunner().invoke(main, ["backtest", str(path), "--from-model", str(model), "--start",
                                           "2018-04-05", "--eval-start", "2018-04-20", "--label-delay", "3d",
                                           "--no-progress", "--json", str(out), "--save-model", str(tmp_path / "next.fsmodel"),
                                           *extra])
        assert result.exit_code == 0, result.output
        warnings = result.output
        return json.loads(out.read_text())

    due = [t for t in times if t >= day(5) and t + delay <= max(times)]
    # the replay starts before the checkpoint's slice: the labels of 04-05..04-07 are learned, its own are not
    by_default = run(ckpt)
    assert by_default["not_learned"] == trained.extra["learned_spans"]
    assert by_default["n_labels_learned"] == sum(not min(learned) <= t <= max(learned) for t in due)
    assert sum(t < day(8) for t in due) > 0 and "learned a second time" not in warnings
    assert "--eval-start is 15 days after --start" in warnings  # the slice starts 15 days before its window
    # the next checkpoint holds both runs' transactions: one span from the first learned to the last
    spans = load_file(tmp_path / "next.fsmodel", "test-key").info.extra["learned_spans"]
    assert spans == [[min(due).isoformat(), max(due).isoformat()]]
    again = run(tmp_path / "next.fsmodel")
    assert again["n_labels_learned"] == 0  # nothing left to learn in this file
    cut = run(ckpt, "--learn-after", "2018-04-10")
    assert cut["n_labels_learned"] == sum(t > day(10) for t in due)
    assert "--learn-after 2018-04-10: the checkpoint also learned labels of transactions after it" in warnings
    # what it saves says it learned everything up to the cut too: a run from it learns none of them again
    spans = load_file(tmp_path / "next.fsmodel", "test-key").info.extra["learned_spans"]
    assert spans == [[None, max(due).isoformat()]]  # the cut, the checkpoint's span and this run's, overlapping
    assert run(tmp_path / "next.fsmodel")["n_labels_learned"] == 0
    # a live or imported version's header may carry an older backtest's spans: not what it learned since
    live = load_file(ckpt, "test-key")
    save_file(ckpt, live.model, live.info.bump(version=9, source="live"), "test-key")
    from_live = run(ckpt)
    assert from_live["not_learned"] == [] and from_live["n_labels_learned"] == len(due)
    # and what it saves holds only this run's span, not the live header's copied spans
    assert load_file(tmp_path / "next.fsmodel", "test-key").info.extra["learned_spans"] == \
        [[min(due).isoformat(), max(due).isoformat()]]


@pytest.mark.parametrize("spans", [[], [["2018-04-03T00:00:00", "2018-04-06T12:00:00"]], [[None, "2018-04-07"]],
                                   [[None, "2018-04-02"], ["2018-04-05", "2018-04-06"]]])
def test_the_one_and_two_process_replays_leave_the_same_labels_unlearned(tmp_path: Path, spans: list) -> None:
    from fraudstream.stream.backtest import Replay
    from fraudstream.stream.backtest_pipeline import forked_chunks, score_chunks
    from fraudstream.stream.learned_spans import LearnedSpans

    path = write_handbook_csv(tmp_path / "hb.csv", days=12, customers=20)
    records = list(read_recorded(path))
    tied = next(r.transaction.event_time for r in records[100:] if r.is_fraud is not None)  # a span ends on a time
    not_learned = LearnedSpans.from_json([[a, b] for a, b in spans] + [[None, tied.isoformat()]] * (not spans))
    delay = timedelta(days=2)
    one = replay(records, FeatureEngine(MemoryStore()), zoo.make_model("logreg"), "m", delay, not_learned=not_learned)
    two = Replay()
    score_chunks(forked_chunks(iter(records), FeatureEngine(MemoryStore()), delay), zoo.make_model("logreg"), two,
                 not_learned=not_learned)
    assert 0 < one.n_labels_learned < len(records) * 0.8
    assert (two.n_labels_learned, two.first_learned_us, two.last_learned_us) == \
        (one.n_labels_learned, one.first_learned_us, one.last_learned_us)
    assert list(two.scores) == list(one.scores)


_threads_at_forks: list[set[threading.Thread]] = []
os.register_at_fork(before=lambda: _threads_at_forks.append(set(threading.enumerate())))  # (for this process's life)


def test_the_feature_worker_is_forked_with_no_thread_of_the_progress_bar_running(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A thread running at a fork may hold a lock the child then waits on for ever (rich's refresh
    thread holds the console's, which logging to the console takes): the bar, and its refresh thread
    (which keeps the elapsed time going while the worker reads the file up to its first chunk), start
    once the worker is forked."""
    from rich import live

    path = write_handbook_csv(tmp_path / "hb.csv", days=6, customers=10)
    before = set(threading.enumerate())
    del _threads_at_forks[:]
    forks_at_refresh_start: list[int] = []
    start = live._RefreshThread.start
    monkeypatch.setattr(live._RefreshThread, "start",
                        lambda thread: (forks_at_refresh_start.append(len(_threads_at_forks)), start(thread))[1])
    result = CliRunner().invoke(main, ["backtest", str(path), "--eval-start", "2018-04-03", "--model", "logreg",
                                       "--progress"])
    assert result.exit_code == 0, result.output
    assert re.search(r"^backtest 2018-04-06 .* tx/s", result.output, re.M), result.output  # the bar's last frame
    assert _threads_at_forks, "the feature worker was not forked"
    assert all(threads <= before for threads in _threads_at_forks), [threads - before for threads in _threads_at_forks]
    assert forks_at_refresh_start == [1], forks_at_refresh_start  # one refresh thread, started after the fork
