"""Reading recorded files: formats detected from the header, exact values, clear errors."""

from __future__ import annotations

import gzip
import itertools
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from fraudstream.errors import InputError
from fraudstream.models.events import Label, Transaction
from fraudstream.producer.files import read_recorded
from fraudstream.producer.recorded import Recorded, Span, labels_for

UTC = timezone.utc
HANDBOOK = (
    "TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_FRAUD,TX_FRAUD_SCENARIO\n"
    "0,2018-04-01T00:00:31,596,3156,57.16,0,0\n"
    "1,2018-04-01T00:02:10,4961,3412,81.51,0,0\n"
    "2,2018-04-01T00:07:56,2,1365,146.0,1,3\n"
    "3,2018-04-01T00:09:29,4128,8737,64.49,0,0\n"
)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    if name.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("name", ["hb.csv", "hb.csv.gz", "no-extension"])
def test_handbook_csv_gives_validated_transactions(tmp_path: Path, name: str) -> None:
    rows = list(read_recorded(write(tmp_path, name, HANDBOOK)))
    assert [r.transaction.transaction_id for r in rows] == ["0", "1", "2", "3"]
    expected = Transaction(transaction_id="2", customer_id="2", terminal_id="1365", amount=146.0,
                           event_time=datetime(2018, 4, 1, 0, 7, 56, tzinfo=UTC))
    assert rows[2].transaction == expected
    assert rows[2].transaction.to_json_bytes() == expected.to_json_bytes()
    assert [(r.is_fraud, r.fraud_scenario) for r in rows] == [(False, "0"), (False, "0"), (True, "3"), (False, "0")]


def test_handbook_without_scenario_column(tmp_path: Path) -> None:
    text = "TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_FRAUD\n5,2018-04-02 10:00:00,1,2,3.5,1\n"
    (row,) = read_recorded(write(tmp_path, "hb.csv", text))
    assert (row.transaction.amount, row.is_fraud, row.fraud_scenario) == (3.5, True, None)
    assert row.transaction.event_time == datetime(2018, 4, 2, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("2,2018-04-01T00:07:56,2,1365,abc,0,0", "amount 'abc' is not a number"),
        ("2,2018-04-01T00:07:56,2,1365,-4,0,0", "amount '-4' outside"),
        ("2,2018-13-01T00:07:56,2,1365,4,0,0", "is not an ISO-8601 date-time"),
        ("2,2018-04-01T00:07:56,,1365,4,0,0", "customer_id is empty"),
        ("2,2018-04-01T00:07:56,2,1365,4,yes,0", "TX_FRAUD 'yes' is not 0 or 1"),
        ("2,2018-04-01T00:07:56,2,1365", "expected 7 fields, found 4"),
        ("2,2018-03-01T00:07:56,2,1365,4,0,0", "is before line 3's 2018-04-01T00:02:10+00:00 (files must be in "
                                               "event-time order; either line may be the wrong one, and neither was used)"),
    ],
)
def test_broken_row_names_file_line_and_problem(tmp_path: Path, line: str, problem: str) -> None:
    lines = HANDBOOK.splitlines()
    lines[3] = line  # the third data row, line 4 of the file
    path = write(tmp_path, "broken.csv", "\n".join(lines) + "\n")
    seen: list[Recorded] = []
    with pytest.raises(InputError) as info:
        for rec in read_recorded(path):
            seen.append(rec)
    assert f"{path}:4:" in str(info.value)
    assert problem in str(info.value)
    # the rows before it; a row out of order holds back the one before it too (either may be wrong)
    assert len(seen) == (1 if "event-time order" in problem else 2)


def test_a_file_cut_short_gives_every_row_read_before_the_cut(tmp_path: Path) -> None:
    rows = [f"{i},2018-04-01T{i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d},{i % 7},{i % 5},{i % 90 + 1}.5,0,0"
            for i in range(5000)]
    data = gzip.compress((HANDBOOK.splitlines()[0] + "\n" + "\n".join(rows) + "\n").encode())
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(data[:len(data) * 2 // 3])
    seen: list[Recorded] = []
    with pytest.raises(InputError, match=r"cut\.csv\.gz: cannot read after line (\d+)") as info:
        for rec in read_recorded(path):
            seen.append(rec)
    last_line = int(re.search(r"after line (\d+)", str(info.value)).group(1))
    assert 1000 < len(seen) == last_line - 1  # lines 2..last_line, the last one included


def test_bad_header_fails_before_iteration(tmp_path: Path) -> None:
    path = write(tmp_path, "odd.csv", "a,b,c\n1,2,3\n")
    with pytest.raises(InputError, match=r"odd\.csv:1: unrecognised header"):
        read_recorded(path)  # raised by the call itself, not by the first next()
    partial = write(tmp_path, "partial.csv", "transaction_id,customer_id,amount\n1,2,3\n")
    with pytest.raises(InputError, match="lacks column.*terminal_id, event_time"):
        read_recorded(partial)
    no_labels = write(tmp_path, "hb.csv", "TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT\n"
                                          "0,2018-04-01 00:00:31,596,3156,57.16\n")
    with pytest.raises(InputError, match=r"hb\.csv:1: header lacks the handbook's column\(s\) TX_FRAUD$"):
        read_recorded(no_labels)
    with pytest.raises(InputError, match="empty"):
        read_recorded(write(tmp_path, "empty.csv", ""))
    misspelt = write(tmp_path, "misspelt.csv", "transaction_id,customer_id,terminal_id,amount,event_time,isFraud\n")
    with pytest.raises(InputError, match=r"misspelt\.csv:1: unknown column\(s\) 'isFraud'; known: .*is_fraud"):
        read_recorded(misspelt)  # not every label dropped without a word
    with pytest.raises(InputError, match="cannot open"):
        read_recorded(tmp_path / "missing.csv")



@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("lower.csv", HANDBOOK.lower(), "column names are case-sensitive: 'transaction_id' should be TRANSACTION_ID, "
                                        "'tx_datetime' should be TX_DATETIME"),
        ("upper.csv", "TRANSACTION_ID,CUSTOMER_ID,TERMINAL_ID,AMOUNT,EVENT_TIME\n1,2,3,4.5,2024-01-01\n",
         "column names are case-sensitive: 'TRANSACTION_ID' should be transaction_id"),
        ("label.csv", "transaction_id,customer_id,terminal_id,amount,event_time,Is_Fraud\n1,2,3,4.5,2024-01-01,1\n",
         "column names are case-sensitive: 'Is_Fraud' should be is_fraud$"),
        ("semi.csv", HANDBOOK.replace(",", ";"), "the header is one field holding ';': fields must be separated by commas"),
        ("tabs.csv", HANDBOOK.replace(",", "\t"), r"the header is one field holding '\\t'"),
        ("array.json", '[{"transaction_id": "1"}]\n', "a JSON array: write JSON lines instead"),
        ("index.csv", ",transaction_id,customer_id,terminal_id,amount,event_time\n0,1,2,3,4.5,2024-01-01\n",
         r"field 1 of the header has no name \(a trailing comma\? an index written by pandas' to_csv"),
        ("twice.csv", "transaction_id,customer_id,terminal_id,amount,event_time,transaction_id\n1,2,3,4.5,2024-01-01,9\n",
         r"column transaction_id appears twice \(fields 1 and 6\): which one is meant\?"),  # not the first, silently
        ("hb2.csv", HANDBOOK.replace("TX_FRAUD_SCENARIO", "TX_AMOUNT"), r"column TX_AMOUNT appears twice \(fields 5 and 7\)"),
        ("case.jsonl", '{"transaction_id": "1", "customer_id": "2", "terminal_id": "3", "Amount": 4.5, '
                       '"event_time": "2024-01-01"}\n',
         r"missing field\(s\) amount \(names are case-sensitive: 'Amount' should be amount\)"),
    ],
)
def test_header_of_another_dialect_says_what_differs(tmp_path: Path, name: str, text: str, message: str) -> None:
    """Exported files' usual slips are named as such, not as columns that are missing."""
    with pytest.raises(InputError, match=rf"{re.escape(name)}:1: {message}"):
        read_recorded(write(tmp_path, name, text))



def test_a_pipe_is_refused_not_read_from_its_ninth_kilobyte(tmp_path: Path) -> None:
    """`replay <(zcat f.gz)`: the gzip check read the pipe's first 8 KB and the file was read from
    there, its first rows lost (a JSON lines file cut at a line's end: without a word)."""
    import os
    import threading

    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    text = HANDBOOK + "".join(f"{i},2018-04-01T01:{i // 60 % 60:02d}:{i % 60:02d},1,2,3.5,0,0\n" for i in range(4, 900))

    def write() -> None:
        try:
            with fifo.open("w") as out:
                out.write(text)
        except OSError:  # the reader went away
            pass

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    outcome: list[BaseException | int] = []

    def read() -> None:
        try:
            outcome.append(len(list(read_recorded(fifo))))
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(10)
    os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))  # lets the writer go when nothing read the pipe
    assert outcome and isinstance(outcome[0], InputError), outcome
    assert str(outcome[0]) == f"{fifo}: not a regular file (a pipe?): fraudstream reads a file more than once; " \
                              "save it to a file first"


def test_our_csv_and_jsonl_formats(tmp_path: Path) -> None:
    csv_text = (
        "transaction_id,customer_id,terminal_id,amount,currency,event_time,merchant_category,latitude,longitude,"
        "is_fraud,fraud_scenario\n"
        "a1,c1,t1,10.5,EUR,2024-01-01T00:00:00Z,grocery,48.85,2.35,0,0\n"
        "a2,c1,t2,900.0,USD,2024-01-01T00:00:05+00:00,,,,1,1\n"
        "a3,c2,t2,1.0,,2024-01-01T00:00:05Z,,,,,\n"
    )
    jsonl_text = "\n".join(json.dumps(obj) for obj in [
        {"transaction_id": "a1", "customer_id": "c1", "terminal_id": "t1", "amount": 10.5, "currency": "EUR",
         "event_time": "2024-01-01T00:00:00Z", "merchant_category": "grocery", "latitude": 48.85,
         "longitude": 2.35, "is_fraud": False, "fraud_scenario": "0"},
        {"transaction_id": "a2", "customer_id": "c1", "terminal_id": "t2", "amount": 900, "currency": "USD",
         "event_time": "2024-01-01T00:00:05Z", "is_fraud": True, "fraud_scenario": "1"},
        {"transaction_id": "a3", "customer_id": "c2", "terminal_id": "t2", "amount": 1,
         "event_time": "2024-01-01T00:00:05Z"},
    ]) + "\n"
    from_csv = list(read_recorded(write(tmp_path, "ours.csv.gz", csv_text)))
    from_jsonl = list(read_recorded(write(tmp_path, "ours.jsonl", jsonl_text)))
    assert from_csv == from_jsonl
    first = Transaction(transaction_id="a1", customer_id="c1", terminal_id="t1", amount=10.5,
                        event_time="2024-01-01T00:00:00Z", merchant_category="grocery", latitude=48.85, longitude=2.35)
    assert from_csv[0].transaction == first
    assert from_csv[1].transaction.currency == "USD"
    assert [(r.is_fraud, r.fraud_scenario) for r in from_csv] == [(False, "0"), (True, "1"), (None, None)]
    assert labels_for(from_csv[2], timedelta(days=7)) is None


def test_jsonl_errors(tmp_path: Path) -> None:
    good = json.dumps({"transaction_id": "a", "customer_id": "c", "terminal_id": "t", "amount": 1,
                       "event_time": "2024-01-01T00:00:00Z"})
    with pytest.raises(InputError, match=r"bad\.jsonl:1: missing field\(s\) customer_id, terminal_id, amount, event_time"):
        read_recorded(write(tmp_path, "bad.jsonl", '{"transaction_id": "a"}\n'))
    misspelt = good[:-1] + ', "isFraud": true}'
    with pytest.raises(InputError, match=r"misspelt\.jsonl:2: unknown field\(s\) 'isFraud'"):
        list(read_recorded(write(tmp_path, "misspelt.jsonl", f"{good}\n{misspelt}\n")))
    rows = read_recorded(write(tmp_path, "late.jsonl", f"{good}\n\n{{not json\n"))
    with pytest.raises(InputError, match=r"late\.jsonl:3: not valid JSON: Expecting property name .* at column 2$"):
        list(rows)
    twice = good[:-1] + ', "amount": 100}'  # json keeps the last value: refused, not guessed
    with pytest.raises(InputError, match=r"twice\.jsonl:2: field 'amount' given twice"):
        list(read_recorded(write(tmp_path, "twice.jsonl", f"{good}\n{twice}\n")))
    escaped = good[:-1] + ', "\\u0061mount": 100}'  # the same name, as json (and the topics) decode it
    with pytest.raises(InputError, match=r"escaped\.jsonl:2: field 'amount' given twice \(which value is meant\?\)$"):
        list(read_recorded(write(tmp_path, "escaped.jsonl", f"{good}\n{escaped}\n")))
    cut = good[:22]  # an object cut short: the error is at the end of its line, not "column 1" of a next one
    with pytest.raises(InputError, match=r"cut\.jsonl:2: not valid JSON: .* at the end of the line \(column 23\)$"):
        list(read_recorded(write(tmp_path, "cut.jsonl", f"{good}\n{cut}\n{good}\n")))


@pytest.mark.parametrize("bad_line", [2, 1501])  # in the decoder's first chunk, and far past it
@pytest.mark.parametrize("gz", [False, True])
def test_a_byte_that_is_not_utf8_is_named_by_line_and_column(tmp_path: Path, bad_line: int, gz: bool) -> None:
    rows = [f"{i},2018-04-01T00:{i // 60 % 60:02d}:{i % 60:02d},c{i},t{i},1.5,0,0" for i in range(2000)]
    rows[bad_line - 2] = rows[bad_line - 2].replace(f",c{bad_line - 2},", f",caf\xe9{bad_line - 2},")
    data = (HANDBOOK.splitlines()[0] + "\n" + "\n".join(rows) + "\n").encode("latin-1")
    path = tmp_path / ("latin.csv.gz" if gz else "latin.csv")
    path.write_bytes(gzip.compress(data) if gz else data)
    column = data.splitlines()[bad_line - 1].index(b"\xe9") + 1
    with pytest.raises(InputError, match=rf"latin\.csv(\.gz)?:{bad_line}: not UTF-8: byte 0xe9 at column {column} "):
        list(read_recorded(path))


def test_start_end_window_and_labels(tmp_path: Path) -> None:
    path = write(tmp_path, "hb.csv", HANDBOOK)
    rows = list(read_recorded(path, start=datetime(2018, 4, 1, 0, 2, 10, tzinfo=UTC),
                              end=datetime(2018, 4, 1, 0, 9, 29, tzinfo=UTC)))
    assert [r.transaction.transaction_id for r in rows] == ["1", "2"]
    label = labels_for(rows[1], timedelta(days=7))
    assert label == Label(transaction_id="2", customer_id="2", terminal_id="1365", is_fraud=True,
                          event_time=datetime(2018, 4, 1, 0, 7, 56, tzinfo=UTC),
                          reported_at=datetime(2018, 4, 8, 0, 7, 56, tzinfo=UTC))


def test_span_of_what_was_read(tmp_path: Path) -> None:
    """The file's first and last event time, for a window that holds none of its rows."""
    path = write(tmp_path, "hb.csv", HANDBOOK)
    first, last = datetime(2018, 4, 1, 0, 0, 31, tzinfo=UTC), datetime(2018, 4, 1, 0, 9, 29, tzinfo=UTC)
    after, before, empty = Span(), Span(), Span()
    assert list(read_recorded(path, start=datetime(2030, 1, 1, tzinfo=UTC), span=after)) == []
    assert after == Span(first, last, complete=True)
    assert list(read_recorded(path, end=datetime(2017, 1, 1, tzinfo=UTC), span=before)) == []
    assert before == Span(first, first, complete=False)  # stopped at the first row: the last is not known
    assert list(read_recorded(write(tmp_path, "empty.csv", HANDBOOK.splitlines()[0] + "\n"), span=empty)) == []
    assert empty == Span(None, None, complete=True)


def test_real_handbook_head(handbook_csv: Path) -> None:
    rows = list(itertools.islice(read_recorded(handbook_csv), 20_000))
    assert len(rows) == 20_000
    assert [r.transaction.transaction_id for r in rows[:3]] == ["0", "1", "2"]
    assert rows[0].transaction.amount == 57.16 and rows[0].transaction.customer_id == "596"
    assert all(r.is_fraud == (r.fraud_scenario != "0") for r in rows)
