"""Files the CLI writes (`fraudstream.outputs`): a failed write is one line naming the file, exit 1,
and leaves nothing under its name or beside it; a path that cannot be written is refused before
any work; a gzip header names the file, not its temporary name."""

from __future__ import annotations

import errno
import gzip
import os
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from fraudstream import outputs
from fraudstream.cli import main
from fraudstream.errors import OutputError
from tests.test_backtest import write_handbook_csv

SMALL = ["--customers", "50", "--terminals", "100"]
UNWRITABLE = Path("/proc/fraudstream-test.csv")  # no file can be created there, even by root


def disk_full(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every file renamed into place fails as on a full disk (the last step of each write)."""
    def no_space(*args: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(outputs.os, "replace", no_space)


def test_a_failed_write_leaves_no_file_and_names_the_target(tmp_path: Path) -> None:
    target = tmp_path / "scores.csv"
    with pytest.raises(OutputError, match=f"{target}: cannot write: No space left on device"):
        with outputs.written(target) as partial:
            partial.write_text("half a file")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert list(tmp_path.iterdir()) == []


def test_an_error_about_another_file_is_left_as_it_is(tmp_path: Path) -> None:
    """Reading the input inside the block fails: that is not the output's fault."""
    with pytest.raises(FileNotFoundError):
        with outputs.written(tmp_path / "out.csv"):
            (tmp_path / "missing.csv").read_text()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["r.csv", "r.jsonl.gz"])
def test_record_on_a_full_disk_is_one_line_and_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              name: str) -> None:
    disk_full(monkeypatch)
    result = CliRunner().invoke(main, ["record", "--days", "1", *SMALL, "--out", str(tmp_path / name)])
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines()[-1] == f"Error: {tmp_path / name}: cannot write: No space left on device"
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc, where no file can be created")
@pytest.mark.parametrize("command", [["record", "--days", "1", *SMALL, "--out"], ["features", "{data}", "--out"],
                                     ["backtest", "{data}", "--scores"], ["backtest", "{data}", "--save-model"]])
def test_an_output_that_cannot_be_written_is_refused_before_any_work(tmp_path: Path, command: list[str]) -> None:
    data = write_handbook_csv(tmp_path / "data.csv", days=3, customers=5)
    args = [str(data) if a == "{data}" else a for a in command]
    result = CliRunner().invoke(main, [*args, str(UNWRITABLE)])
    assert result.exit_code == 2, result.output
    assert f"{UNWRITABLE}: cannot write" in result.output and "Traceback" not in result.output
    assert not any(line.startswith("{") for line in result.output.splitlines())  # nothing was done: no summary


def test_the_gzip_header_names_the_file_not_its_temporary_name(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["record", "--days", "1", *SMALL, "--out", str(tmp_path / "sim.csv.gz")])
    assert result.exit_code == 0, result.output
    data = (tmp_path / "sim.csv.gz").read_bytes()
    assert data[3] & 0x08 and data[10:data.index(b"\0", 10)] == b"sim.csv"  # FNAME flag, then the name
    assert gzip.decompress(data).startswith(b"transaction_id,")


def test_a_link_is_written_through_and_a_device_in_place(tmp_path: Path) -> None:
    """A symbolic link stays a link to the file written; /dev/stdout and pipes are not replaced by
    files (`backtest --json /dev/stdout`)."""
    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    outputs.check_writable(link)
    outputs.write_text(link, "new")
    assert link.is_symlink() and real.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.json", "real.json"]
    outputs.check_writable(Path("/dev/null"))
    outputs.write_text(Path("/dev/null"), "into the void")
    assert Path("/dev/null").is_char_device()
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        outputs.write_text(fifo, "through the pipe")
        assert os.read(reader, 100) == b"through the pipe"
    finally:
        os.close(reader)
    assert not fifo.is_file() and sorted(p.name for p in tmp_path.iterdir()) == ["link.json", "pipe", "real.json"]
