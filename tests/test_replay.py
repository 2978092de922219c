"""Replay into the real broker: exact contents, labels after the delay, pacing, errors, stop and resume."""

from __future__ import annotations

import contextlib
import gzip
import itertools
import os
import shlex
import signal
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from fraudstream.cli import main
from fraudstream.config import Settings
from fraudstream.errors import ConfigError, InputError
from fraudstream.kafka_io import ensure_topics
from fraudstream.models.events import Label, Transaction
from fraudstream.producer.publisher import Publisher
from fraudstream.producer.replay import replay
from fraudstream.stream.signals import Received
from tests.kafka_helpers import read_topic
from tests.test_live import cli_env

T0 = datetime(2024, 5, 1, tzinfo=timezone.utc)
HEADER = "transaction_id,customer_id,terminal_id,amount,event_time,is_fraud,fraud_scenario\n"


def our_csv(path: Path, rows: int, step: timedelta, per_time: int = 1) -> Path:
    with path.open("w") as out:
        out.write(HEADER)
        for i in range(rows):
            when = (T0 + step * (i // per_time)).isoformat()
            out.write(f"tx{i},c{i % 13},t{i % 7},{10 + i % 50}.25,{when},{int(i % 7 == 0)},{1 if i % 7 == 0 else 0}\n")
    return path


@pytest.mark.services
@pytest.mark.data
def test_handbook_head_replayed_exactly(settings: Settings, handbook_csv: Path, tmp_path: Path) -> None:
    head = tmp_path / "head.csv"
    with gzip.open(handbook_csv, "rt") as src, head.open("w") as dst:
        dst.writelines(itertools.islice(src, 20_001))
    expected = {}
    for line in head.read_text().splitlines()[1:]:
        tid, _, cid, _, amount, fraud, _ = line.split(",")
        expected[tid] = (cid, float(amount), fraud == "1")
    ensure_topics(settings, [settings.topic_transactions, settings.topic_labels])
    result = CliRunner().invoke(main, ["replay", str(head), "--as-fast-as-possible", "--no-progress"],
                                env=cli_env(settings))
    assert result.exit_code == 0, result.output
    records = read_topic(settings, settings.topic_transactions, expect=20_000)
    txs = [Transaction.model_validate_json(r.value) for r in records]
    assert len(txs) == 20_000
    assert {t.transaction_id: (t.customer_id, t.amount, None) for t in txs} == {
        k: (c, a, None) for k, (c, a, _) in expected.items()}
    assert all(r.key == t.customer_id.encode() for r, t in zip(records, txs))
    labels = [Label.model_validate_json(r.value) for r in read_topic(settings, settings.topic_labels, expect=20_000)]
    assert len(labels) == 20_000
    assert {lab.transaction_id: lab.is_fraud for lab in labels} == {k: f for k, (_, _, f) in expected.items()}
    assert sum(lab.is_fraud for lab in labels) > 0
    assert all(lab.reported_at - lab.event_time == timedelta(days=7) for lab in labels)


@pytest.mark.services
def test_paced_replay_takes_scaled_time_and_labels_follow_the_clock(settings: Settings, tmp_path: Path) -> None:
    path = our_csv(tmp_path / "two-hours.csv", rows=121, step=timedelta(minutes=1))  # T0 .. T0 + 2 h
    ensure_topics(settings, [settings.topic_transactions, settings.topic_labels])
    stats = replay(settings, path, speed=3600, label_delay=timedelta(minutes=30), final_labels=False)
    assert 1.6 <= stats.seconds <= 2.4
    assert stats.transactions == 121
    txs = read_topic(settings, settings.topic_transactions, expect=121)
    labels = read_topic(settings, settings.topic_labels, expect=stats.labels)
    assert stats.labels == len(labels) == 91  # reported by T0 + 2 h: transactions of the first 90 minutes
    first = min(r.timestamp for r in txs)
    for record in labels:
        label = Label.model_validate_json(record.value)
        due_ms = (label.reported_at - T0).total_seconds() / 3600 * 1000
        assert due_ms - 30 <= record.timestamp - first <= due_ms + 250


@pytest.mark.services
def test_broken_files(settings: Settings, tmp_path: Path) -> None:
    ensure_topics(settings, [settings.topic_transactions, settings.topic_labels])
    bad_header = tmp_path / "bad-header.csv"
    bad_header.write_text("id,when,who\n1,2,3\n")
    result = CliRunner().invoke(main, ["replay", str(bad_header), "--no-progress"], env=cli_env(settings))
    assert result.exit_code != 0 and "bad-header.csv:1: unrecognised header" in result.output
    broken = our_csv(tmp_path / "broken.csv", rows=10, step=timedelta(seconds=5))
    lines = broken.read_text().splitlines(keepends=True)
    lines[4] = "tx3,c3,t3,twelve,2024-05-01T00:00:15+00:00,0,0\n"
    broken.write_text("".join(lines))
    result = CliRunner().invoke(main, ["replay", str(broken), "--no-progress"], env=cli_env(settings))
    assert result.exit_code != 0
    assert "broken.csv:5: amount 'twelve' is not a number" in result.output
    # rows before the broken one were published, nothing after it; nothing from the bad header
    txs = [Transaction.model_validate_json(r.value) for r in read_topic(settings, settings.topic_transactions, expect=3)]
    assert sorted(t.transaction_id for t in txs) == ["tx0", "tx1", "tx2"]  # 3 partitions: any order
    with pytest.raises(InputError, match="unrecognised header"):
        replay(settings, bad_header)


@pytest.mark.services
@pytest.mark.parametrize(("old", "new", "problem"), [
    (".25,", ".25x,", r"bad\.csv:42: amount .*"),
    # a time typed 9 hours late is found on the next line: either line may be the wrong one, so neither
    # is published, and the resume point is right whichever line is fixed
    ("T00:40:00", "T09:40:00", r"bad\.csv:43: event time 2024-05-01T00:41:00\+00:00 is before line 42's "
                               r"2024-05-01T09:40:00\+00:00 .*neither was used\)"),
])
def test_a_bad_row_says_where_to_resume_and_nothing_is_lost(settings: Settings, tmp_path: Path, old: str, new: str,
                                                             problem: str) -> None:
    ensure_topics(settings, [settings.topic_transactions, settings.topic_labels])
    path = our_csv(tmp_path / "bad.csv", rows=60, step=timedelta(minutes=1))
    good = path.read_text()
    lines = good.splitlines(keepends=True)
    lines[41] = lines[41].replace(old, new)  # tx40, line 42
    path.write_text("".join(lines))
    with pytest.raises(InputError, match=problem + r"; published 40 transactions \(up to 2024-05-01T00:39:00\+00:00\) "
                                                   r"and 30 labels: .* --start 2024-05-01T00:39:00"):
        replay(settings, path, label_delay=timedelta(minutes=10))
    path.write_text(good)  # fixed
    replay(settings, path, label_delay=timedelta(minutes=10), start=T0 + timedelta(minutes=39))
    txs = [Transaction.model_validate_json(r.value) for r in read_topic(settings, settings.topic_transactions, expect=61)]
    labels = [Label.model_validate_json(r.value).transaction_id
              for r in read_topic(settings, settings.topic_labels, expect=61)]
    assert sorted(tx.transaction_id for tx in txs) == sorted([f"tx{i}" for i in range(60)] + ["tx39"])  # again
    assert sorted(labels) == sorted([f"tx{i}" for i in range(60)] + ["tx29"])  # reported at the moment resumed at
    assert all(tx.event_time < T0 + timedelta(hours=1) for tx in txs)  # the mistyped time never went out


@pytest.mark.services
def test_a_bad_row_gives_the_whole_command_to_resume_with(settings: Settings, tmp_path: Path) -> None:
    """As on Ctrl-C: the user's options (--label-delay, --end, ...) with another --start, not --start alone,
    which resumed with the default label delay and no --end."""
    ensure_topics(settings, [settings.topic_transactions, settings.topic_labels])
    path = our_csv(tmp_path / "bad row.csv", rows=60, step=timedelta(minutes=1))
    lines = path.read_text().splitlines(keepends=True)
    lines[41] = lines[41].replace(",10.25,", ",-10.25,").replace(",50.25,", ",-50.25,")  # tx40's amount
    path.write_text("".join(lines))
    end = (T0 + timedelta(minutes=50)).isoformat()
    args = ["replay", str(path), "--label-delay", "10m", "--end", end, "--no-progress"]
    result = CliRunner().invoke(main, args, env=cli_env(settings))
    assert result.exit_code == 1, result.output
    hint = result.stderr.split("resume with: ", 1)[1].split(" (the transactions", 1)[0]
    assert shlex.split(hint) == ["fraudstream", "replay", str(path), "--label-delay", "10m",
                                 "--start", (T0 + timedelta(minutes=39)).isoformat(), "--end", end, "--no-progress"]


class StopAfter(Publisher):
    """Sets `stop` after a number of transactions, like a Ctrl-C in the middle of a replay."""

    def __init__(self, settings: Settings, stop: threading.Event, after: int) -> None:
        super().__init__(settings)
        self.stop, self.after = stop, after

    def send_transaction(self, tx: Transaction) -> None:
        super().send_transaction(tx)
        if self.transactions == self.after:
            self.stop.set()


@pytest.mark.services
def test_stop_and_resume_publish_everything_once(settings: Settings, tmp_path: Path) -> None:
    path = our_csv(tmp_path / "ties.csv", rows=600, step=timedelta(minutes=1), per_time=3)
    ensure_topics(settings, [settings.topic_transactions, settings.topic_labels])
    stop = threading.Event()
    delay = timedelta(minutes=10)
    publisher = StopAfter(settings, stop, after=301)  # in the middle of three transactions with one time
    first = replay(settings, path, label_delay=delay, stop=stop, publisher=publisher)
    publisher.close()
    assert first.stopped and first.transactions == 303
    assert first.resume_from == T0 + timedelta(minutes=101)
    second = replay(settings, path, label_delay=delay, start=first.resume_from)
    assert first.transactions + second.transactions == 600
    assert first.labels + second.labels == 600
    tx_ids = [Transaction.model_validate_json(r.value).transaction_id
              for r in read_topic(settings, settings.topic_transactions, expect=600)]
    label_ids = [Label.model_validate_json(r.value).transaction_id
                 for r in read_topic(settings, settings.topic_labels, expect=600)]
    assert sorted(tx_ids) == sorted(label_ids) == sorted(f"tx{i}" for i in range(600))


@pytest.mark.services
def test_a_stop_while_pacing_sends_nothing_ahead_of_the_clock(settings: Settings, tmp_path: Path) -> None:
    """A Ctrl-C during a gap of a paced replay (a night at --speed 1) stops there: the transaction
    waited for is where to resume, not published at once ahead of its time."""
    path = tmp_path / "gap.csv"
    times = [T0, T0 + timedelta(minutes=1), T0 + timedelta(hours=1), T0 + timedelta(hours=1, minutes=1)]
    path.write_text(HEADER + "".join(f"tx{i},c{i},t{i},10.5,{when.isoformat()},0,0\n" for i, when in enumerate(times)))
    ensure_topics(settings, [settings.topic_transactions, settings.topic_labels])
    stop = threading.Event()
    timer = threading.Timer(0.3, stop.set)  # while it waits for the third transaction (due 59 s after the second)

    class CtrlCSoon(Publisher):
        def send_transaction(self, tx: Transaction) -> None:
            super().send_transaction(tx)
            if self.transactions == 2:
                timer.start()

    publisher = CtrlCSoon(settings)
    try:
        stats = replay(settings, path, speed=60, label_delay=timedelta(minutes=30), stop=stop, publisher=publisher)
    finally:
        timer.cancel()
        publisher.close()
    assert stats.seconds < 10
    assert (stats.stopped, stats.transactions, stats.resume_from) == (True, 2, times[2])
    assert stats.labels == 2  # those reported before where it resumes (T0 + 30 and 31 min), as at any stop
    txs = [Transaction.model_validate_json(r.value).transaction_id
           for r in read_topic(settings, settings.topic_transactions, expect=2)]
    assert sorted(txs) == ["tx0", "tx1"]
    rest = replay(settings, path, label_delay=timedelta(minutes=30), start=stats.resume_from)
    assert (rest.transactions, rest.labels) == (2, 2)  # the others: every label once
    labels = [Label.model_validate_json(r.value).transaction_id
              for r in read_topic(settings, settings.topic_labels, expect=4)]
    assert sorted(labels) == ["tx0", "tx1", "tx2", "tx3"]


@pytest.mark.services
def test_a_stop_while_reading_up_to_start_sends_nothing(settings: Settings, tmp_path: Path) -> None:
    """A resumed replay reads the file up to --start (7.5 s of the handbook file for its last day): a
    Ctrl-C then stops at once, to resume from the same --start, not after the first transactions."""
    path = our_csv(tmp_path / "long.csv", rows=600, step=timedelta(minutes=1))
    ensure_topics(settings, [settings.topic_transactions, settings.topic_labels])
    stop = threading.Event()
    stop.set()  # pressed before the lead-in ends
    start = T0 + timedelta(minutes=500)
    stats = replay(settings, path, label_delay=timedelta(minutes=10), start=start, stop=stop)
    assert (stats.stopped, stats.transactions, stats.labels, stats.resume_from) == (True, 0, 0, start)
    rest = replay(settings, path, label_delay=timedelta(minutes=10), start=start)
    assert (rest.transactions, rest.labels) == (100, 110)  # the labels reported from --start on, each once


@pytest.mark.services
def test_consecutive_ranges_publish_each_label_once(settings: Settings, tmp_path: Path) -> None:
    path = our_csv(tmp_path / "day.csv", rows=300, step=timedelta(minutes=2))
    ensure_topics(settings, [settings.topic_transactions, settings.topic_labels])
    cut = T0 + timedelta(hours=5)
    first = replay(settings, path, label_delay=timedelta(hours=1), end=cut)
    second = replay(settings, path, label_delay=timedelta(hours=1), start=cut)
    assert (first.transactions, second.transactions) == (150, 150)
    assert first.labels == 120  # reported before the cut: transactions of the first 4 hours
    labels = [Label.model_validate_json(r.value).transaction_id
              for r in read_topic(settings, settings.topic_labels, expect=300)]
    assert sorted(labels) == sorted(f"tx{i}" for i in range(300))


def ctrl_c_after(seconds: float, real: Callable[[threading.Event], contextlib.AbstractContextManager[Received]]
                 ) -> Callable[[threading.Event], contextlib.AbstractContextManager[Received]]:
    """`stop_on_signals` that also sends this process a SIGINT `seconds` after its handlers are in
    place (and not after they are gone)."""

    @contextlib.contextmanager
    def ctrl_c_soon(stop: threading.Event) -> Iterator[Received]:
        with real(stop) as received:
            timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGINT))
            timer.start()
            try:
                yield received
            finally:
                timer.cancel()
                timer.join()

    return ctrl_c_soon


@pytest.mark.services
def test_ctrl_c_prints_a_resume_command_with_every_option_given(settings: Settings, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The hint repeats the user's options (--end, --speed, --label-delay, ...), only --start changes:
    running it publishes the rest of the window, nothing twice."""
    from fraudstream.stream import signals

    path = our_csv(tmp_path / "two hours.csv", rows=121, step=timedelta(minutes=1))  # T0 .. T0 + 2 h
    ensure_topics(settings, [settings.topic_transactions, settings.topic_labels])
    real = signals.stop_on_signals

    monkeypatch.setattr(signals, "stop_on_signals", ctrl_c_after(0.6, real))
    end = (T0 + timedelta(minutes=90)).isoformat()
    args = ["--log-level", "WARNING", "replay", str(path), "--speed", "3600", "--label-delay", "10m",
            "--start", T0.isoformat(), "--end", end, "--no-final-labels", "--no-progress"]  # the order of --help
    first = CliRunner().invoke(main, args, env=cli_env(settings))
    assert first.exit_code == 130, first.output  # stopped before the end: not a finished replay
    hint = first.stderr.split("resume with: ", 1)[1].splitlines()[0]
    words = shlex.split(hint)
    resume = args.index("--start") + 2
    assert words[0] == "fraudstream" and words[1:] == [*args[:resume - 1], words[resume], *args[resume:]], hint
    assert T0 < datetime.fromisoformat(words[resume]) < T0 + timedelta(minutes=90)

    monkeypatch.setattr(signals, "stop_on_signals", real)
    second = CliRunner().invoke(main, words[1:], env=cli_env(settings))
    assert second.exit_code == 0 and "resume with" not in second.output, second.output
    txs = [Transaction.model_validate_json(r.value).transaction_id
           for r in read_topic(settings, settings.topic_transactions, expect=90)]
    assert sorted(txs) == sorted(f"tx{i}" for i in range(90))  # the window's, each once


@pytest.mark.services
def test_a_window_with_no_row_of_the_file_is_a_warning(settings: Settings, tmp_path: Path) -> None:
    path = our_csv(tmp_path / "ten.csv", rows=10, step=timedelta(minutes=1))  # T0 .. T0 + 9 min
    ensure_topics(settings, [settings.topic_transactions, settings.topic_labels])
    for window, seen in ((["--start", "2030-01-01"], "from 2024-05-01T00:00:00+00:00 to 2024-05-01T00:09:00+00:00"),
                         (["--end", "2024-04-01"], "from 2024-05-01T00:00:00+00:00 on")):
        result = CliRunner().invoke(main, ["replay", str(path), *window, "--no-progress"], env=cli_env(settings))
        assert result.exit_code == 0, result.output
        assert result.stderr.strip().splitlines()[-1] == (
            f"Warning: no transaction of {path} is in the window {' '.join(window)}; its rows {seen}")
        assert '"transactions": 0' in result.stdout
    result = CliRunner().invoke(main, ["replay", str(path), "--no-progress"], env=cli_env(settings))
    assert result.exit_code == 0 and "Warning" not in result.output, result.output


@pytest.mark.services
def test_labels_reported_beyond_the_future_skew_are_counted_and_not_sent(settings: Settings, tmp_path: Path) -> None:
    """A file of the last hours: at its end, the labels reported more than `max_future_skew` after now
    would be dead-lettered by the consumers (future_report_time), so replay holds them back and says so."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    path = tmp_path / "recent.csv"
    with path.open("w") as out:
        out.write(HEADER)
        for i in range(100):  # one a minute, the last 10 minutes ago
            out.write(f"tx{i},c{i % 13},t{i % 7},10.25,{(now - timedelta(minutes=109 - i)).isoformat()},0,0\n")
    ensure_topics(settings, [settings.topic_transactions, settings.topic_labels])
    skewed = settings.model_copy(update={"max_future_skew": timedelta(hours=1)})
    stats = replay(skewed, path, label_delay=timedelta(hours=2))
    # transaction i is reported 11 + i minutes from now: within the hour of skew for the first 49, not for
    # the last 51 (a minute's margin either way for the clock moving meanwhile)
    assert stats.transactions == 100 and 48 <= stats.labels <= 50 and stats.labels + stats.labels_not_sent == 100
    sent = [Label.model_validate_json(r.value) for r in read_topic(settings, settings.topic_labels, expect=stats.labels)]
    assert len(sent) == stats.labels and max(label.reported_at for label in sent) <= datetime.now(timezone.utc) + \
        timedelta(hours=1)
    unlimited = settings.model_copy(update={"max_future_skew": None})  # a simulated clock: every label goes
    assert replay(unlimited, path, label_delay=timedelta(hours=2)).labels == 100


@pytest.mark.services
def test_a_file_that_reaches_past_now_stops_there_and_says_how_to_go_on(settings: Settings, tmp_path: Path) -> None:
    """Transactions dated more than `max_future_skew` after now would be dead-lettered by the
    consumers (future_event_time), and so would the labels sent on the way: replay stops before the
    first of them, having sent what is due before it, and says how to resume."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    path = tmp_path / "ahead.csv"
    with path.open("w") as out:
        out.write(HEADER)
        for i in range(100):  # one a minute, from 50 minutes ago to 49 minutes ahead
            out.write(f"tx{i},c{i % 13},t{i % 7},10.25,{(now + timedelta(minutes=i - 50)).isoformat()},0,0\n")
    ensure_topics(settings, [settings.topic_transactions, settings.topic_labels])
    skewed = settings.model_copy(update={"max_future_skew": timedelta(minutes=20)})
    result = CliRunner().invoke(main, ["replay", str(path), "--label-delay", "10m", "--no-progress"],
                                env={**cli_env(settings), "FRAUDSTREAM_MAX_FUTURE_SKEW": "20m"})
    assert result.exit_code == 1, result.output
    message = " ".join(result.output.split())
    first_late = 71  # 21 minutes ahead (a minute's margin for the clock moving meanwhile: 70 or 71)
    sent = read_topic(settings, settings.topic_transactions, expect=first_late)
    assert len(sent) in (first_late - 1, first_late), len(sent)
    late = (now + timedelta(minutes=len(sent) - 50)).isoformat()
    assert f"the file's transactions reach {late}, more than FRAUDSTREAM_MAX_FUTURE_SKEW (20m) after now" in message
    assert f"published {len(sent)} transactions" in message  # the whole command, as on Ctrl-C
    assert f"resume with: fraudstream replay {shlex.quote(str(path))} --label-delay 10m --start {late} --no-progress" \
        in message
    labels = [Label.model_validate_json(r.value) for r in read_topic(settings, settings.topic_labels)]
    assert len(labels) == len(sent) - 10 and max(lb.reported_at for lb in labels) <= now + timedelta(minutes=21)
    assert replay(skewed.model_copy(update={"max_future_skew": None}), path,
                  label_delay=timedelta(minutes=10)).transactions == 100  # a simulated clock: no limit


@pytest.mark.services
def test_labels_beyond_the_skew_at_such_a_stop_are_sent_by_the_resumed_replay(settings: Settings, tmp_path: Path) -> None:
    """A stop before a transaction ahead of now leaves the labels the consumers would refuse as well
    (reported after now + skew, before that transaction): the resume point it names sends them."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    path = tmp_path / "gap.csv"
    with path.open("w") as out:
        out.write(HEADER)
        for i, hours in enumerate((-3, -1, 3)):  # frauds: labels 2 h later, at -1 h (sent), +1 h, +5 h
            out.write(f"tx{i},c{i},t{i},10.25,{(now + timedelta(hours=hours)).isoformat()},1,1\n")
    ensure_topics(settings, [settings.topic_transactions, settings.topic_labels])
    skewed = settings.model_copy(update={"max_future_skew": timedelta(minutes=30)})
    with pytest.raises(ConfigError) as stopped:
        replay(skewed, path, label_delay=timedelta(hours=2))
    resume = (now + timedelta(hours=1)).isoformat()  # tx1's label: not sent (refused), not lost
    assert f"resume with --start {resume}" in str(stopped.value)
    labels = [Label.model_validate_json(r.value).transaction_id for r in read_topic(settings, settings.topic_labels)]
    assert labels == ["tx0"]
    unlimited = settings.model_copy(update={"max_future_skew": None})
    stats = replay(unlimited, path, label_delay=timedelta(hours=2), start=datetime.fromisoformat(resume))
    assert (stats.transactions, stats.labels) == (1, 2)
    labels = [Label.model_validate_json(r.value).transaction_id for r in read_topic(settings, settings.topic_labels, expect=3)]
    txs = [r.key for r in read_topic(settings, settings.topic_transactions, expect=3)]
    assert sorted(labels) == ["tx0", "tx1", "tx2"] and len(txs) == 3  # each once


@pytest.mark.services
def test_a_broker_that_stops_answering_stops_a_replay_with_where_to_resume(settings: Settings, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Not 2 minutes of progress into kafka-python's buffer, then an error that says nothing of where
    it got to: the replay confirms delivery every `DELIVERED_EVERY_S` and stops once a confirmation
    takes longer than `DELIVERY_WAIT_S`, naming the last moment confirmed (a broker of the test's own,
    paused; what it holds after it is resumed has every transaction up to that moment)."""
    import re

    from fraudstream.producer import publisher as publishing
    from tests.kafka_helpers import PausedBroker

    monkeypatch.setattr(publishing, "DELIVERED_EVERY_S", 0.3)
    monkeypatch.setattr(publishing, "DELIVERY_WAIT_S", 2.0)
    path = our_csv(tmp_path / "day.csv", rows=3000, step=timedelta(seconds=30))  # 25 hours of event time
    with PausedBroker(settings) as broker:
        own = broker.settings
        ensure_topics(own, [own.topic_transactions, own.topic_labels])
        broker.pause_after(1.5)
        args = ["replay", str(path), "--speed", str(3600 * 6), "--label-delay", "1h", "--no-progress"]  # ~4 s
        failed = CliRunner().invoke(main, args, env=cli_env(own))
        broker.resume()
        message = failed.stderr.strip().splitlines()[-1]
        found = re.search(r"the first ([\d,]+) transactions \(up to (\S+)\).*resume with: (.*)$", message)
        assert failed.exit_code == 1 and found, failed.output
        count, at = int(found[1].replace(",", "")), datetime.fromisoformat(found[2])
        assert 0 < count < 3000 and at == T0 + timedelta(seconds=30) * (count - 1), message
        assert shlex.split(found[3]) == ["fraudstream", *args[:-1], "--start", at.isoformat(), args[-1]], message
        held = {Transaction.model_validate_json(r.value).transaction_id
                for r in read_topic(own, own.topic_transactions, timeout=10)}
        assert {f"tx{i}" for i in range(count)} <= held  # the confirmed ones are all there
        labelled = {Label.model_validate_json(r.value).transaction_id for r in read_topic(own, own.topic_labels, timeout=10)}
        due = {f"tx{i}" for i in range(count) if T0 + timedelta(seconds=30 * i, hours=1) <= at}
        assert due and due <= labelled  # and the labels reported by then (our_csv labels every row)
