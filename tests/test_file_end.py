"""`last_event_time`: the event time of a recorded file's last row, in every format `replay` reads,
equal to what reading the whole file gives; None where there is no row to read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fraudstream.producer.file_end import TAIL, last_event_time
from fraudstream.producer.files import read_recorded
from tests.test_files import HANDBOOK, write

OURS_CSV = ("transaction_id,customer_id,terminal_id,amount,event_time,is_fraud\r\n"
            "t1,c1,m1,10.5,2024-01-01T00:00:05Z,0\r\n"
            "t2,c2,m2,20.0,2024-01-03T12:30:00+02:00,1\r\n")
OURS_JSONL = "".join(json.dumps({"transaction_id": f"t{i}", "customer_id": "c1", "terminal_id": "m1", "amount": 1.0,
                                 "event_time": f"2024-02-0{i}T00:00:00Z"}) + "\n" for i in (1, 2, 3))


@pytest.mark.parametrize(("name", "text"), [
    ("hb.csv", HANDBOOK), ("hb.csv.gz", HANDBOOK), ("hb.csv", "\ufeff" + HANDBOOK + "\n\n"),
    ("ours.csv", OURS_CSV), ("ours.csv.gz", OURS_CSV),
    ("ours.jsonl", OURS_JSONL), ("ours.jsonl.gz", OURS_JSONL), ("one.jsonl", OURS_JSONL.splitlines()[0]),
])
def test_the_last_rows_time_as_reading_the_file_gives_it(tmp_path: Path, name: str, text: str) -> None:
    path = write(tmp_path, name, text)
    assert last_event_time(path) == list(read_recorded(path))[-1].transaction.event_time


def test_a_long_file_is_read_to_its_end(tmp_path: Path) -> None:
    header, row = HANDBOOK.splitlines()[0], "{},2018-04-{:02d}T00:00:00,1,2,3.0,0,0"
    rows = [row.format(i, 1 + i * 29 // 40_000) for i in range(40_000)]  # ~1.4 MB: past a chunk and the tail
    for name in ("long.csv", "long.csv.gz"):
        path = write(tmp_path, name, "\n".join([header, *rows]) + "\n")
        assert path.stat().st_size > TAIL
        assert last_event_time(path) == list(read_recorded(path))[-1].transaction.event_time


@pytest.mark.parametrize("text", [HANDBOOK.splitlines()[0] + "\n", "", "not,a,header\n1,2,3\n",
                                  HANDBOOK + "5,yesterday,1,2,3.0,0,0\n"])
def test_no_readable_last_row_is_none(tmp_path: Path, text: str) -> None:
    assert last_event_time(write(tmp_path, "x.csv", text)) is None
