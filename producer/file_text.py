"""Opening a recorded file as text (gzip told by its first bytes, not its name), and where a file
stops being UTF-8."""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import IO

from fraudstream.errors import InputError


def open_bytes(path: Path) -> IO[bytes]:
    """The file's bytes, decompressed when it is gzip (told by its first bytes, not its name).

    A pipe (``<(zcat f.gz)``, ``/dev/stdin``) is refused: the gzip check, the progress bar's end
    and an error's line each read the file from its start again, and a pipe gives its bytes once
    (its first 8 KB went to the gzip check, and the rest read as if they were the file).
    """
    if path.exists() and not path.is_file():
        raise InputError(f"{path}: not a regular file (a pipe?): fraudstream reads a file more than once; "
                         "save it to a file first")
    with path.open("rb") as probe:
        compressed = probe.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if compressed else path.open("rb")


def open_text(path: Path) -> IO[str]:
    try:
        return io.TextIOWrapper(open_bytes(path), encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise InputError(f"{path}: cannot open: {exc.strerror or exc}") from exc


def not_utf8(path: Path, exc: UnicodeDecodeError) -> InputError:
    """Where the file stops being UTF-8, by line and column: the decoder reads ahead in chunks, so
    its own position counts from a chunk somewhere past the line being read.

    >>> import tempfile
    >>> bad = Path(tempfile.mkdtemp()) / "bad.csv"
    >>> _ = bad.write_bytes(b"transaction_id,amount\\n1,2\\nt\\xc3\\xa92,caf\\xe9\\n")  # "té2,caf" then Latin-1 é
    >>> str(not_utf8(bad, UnicodeDecodeError("utf-8", b"", 0, 1, "x"))).removeprefix(str(bad.parent))
    '/bad.csv:3: not UTF-8: byte 0xe9 at column 8 (save the file as UTF-8)'
    >>> import shutil; shutil.rmtree(bad.parent)
    """
    try:
        with open_bytes(path) as raw:
            for number, line in enumerate(raw, start=1):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as found:  # the column as an editor shows it: characters before it
                    column = len(line[:found.start].decode("utf-8", "replace")) + 1
                    return InputError(f"{path}:{number}: not UTF-8: byte 0x{line[found.start]:02x} at column "
                                      f"{column} (save the file as UTF-8)")
    except (OSError, EOFError):
        pass
    return InputError(f"{path}: not UTF-8: {exc}")
