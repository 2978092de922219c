"""Files the CLI writes (recordings, features, scores, reports, model checkpoints): each is written
beside its name and renamed into place once complete, so that a failed write (a full disk, a path
that cannot be written) leaves no file, partial or empty, under the name asked for, and is reported
in one line naming that file (`OutputError`). A symbolic link is written through (the file it
points to is replaced); what is not a regular file (`/dev/stdout`, a pipe) is written in place.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as tmp:
...     target = Path(tmp) / "scores.csv"
...     with written(target) as partial:
...         _ = partial.write_text("transaction_id,score\\n")
...         print(partial.name, target.exists())
...     print(target.read_text().strip(), sorted(p.name for p in Path(tmp).iterdir()))
scores.csv.part False
transaction_id,score ['scores.csv']
>>> with tempfile.TemporaryDirectory() as tmp:
...     with written(Path(tmp) / "no" / "scores.csv") as partial:
...         _ = partial.write_text("x")
Traceback (most recent call last):
...
fraudstream.errors.OutputError: .../no/scores.csv: cannot write: No such file or directory
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from fraudstream.errors import OutputError

PARTIAL_SUFFIX = ".part"


@contextlib.contextmanager
def written(target: Path) -> Iterator[Path]:
    """A path beside `target` to write it under: renamed to `target` when the block ends, removed
    when it raises. An error of writing it (or of the rename), an `OSError` that names no other
    file, becomes an `OutputError` naming `target`. `target` itself when it is not a regular file
    (`/dev/stdout`): written in place."""
    if _special(target):
        try:
            yield target
        except OSError as exc:
            if isinstance(exc, ConnectionError) or not _about(exc, target):
                raise
            raise OutputError(f"{target}: cannot write: {exc.strerror or exc}") from exc
        return
    real = Path(os.path.realpath(target)) if target.is_symlink() else target  # through a link, not over it
    partial = real.with_name(real.name + PARTIAL_SUFFIX)
    try:
        yield partial
        os.replace(partial, real)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, ConnectionError) and _about(exc, partial, real, target):
            raise OutputError(f"{target}: cannot write: {exc.strerror or exc}") from exc
        raise


def _special(target: Path) -> bool:
    """Whether `target` exists and is not a regular file (a device, a pipe, /dev/stdout)."""
    return target.exists() and not target.is_file()


def _about(exc: OSError, *paths: Path) -> bool:
    """Whether `exc` is about one of `paths`, or about no file in particular (a write: no space left)."""
    return exc.filename is None or str(exc.filename) in {str(p) for p in paths}


def write_bytes(target: Path, data: bytes) -> None:
    """`target.write_bytes(data)`, through `written`."""
    with written(target) as partial:
        partial.write_bytes(data)


def write_text(target: Path, text: str) -> None:
    """`target.write_text(text)` in UTF-8, through `written`."""
    with written(target) as partial:
        partial.write_text(text, encoding="utf-8")


def check_writable(target: Path) -> None:
    """Raise `OutputError` now, before any work, if nothing can be written in `target`'s directory
    (it does not exist, is read-only, or is not a real file system such as /proc): a probe file is
    created there and removed. Not for what is there and not a regular file (`/dev/stdout`)."""
    if _special(target):
        return
    if target.is_symlink():
        target = Path(os.path.realpath(target))
    try:
        with open(target.with_name(f".{target.name}.{os.getpid()}.probe"), "xb") as probe:
            probe.close()
            os.unlink(probe.name)
    except OSError as exc:
        raise OutputError(f"{target}: cannot write: {exc.strerror or exc}") from exc


class _GzipWriter(gzip.GzipFile):
    """A gzip file written to `raw` that closes it when closed."""

    def __init__(self, raw: IO[bytes], name: str, compresslevel: int) -> None:
        self._raw = raw
        # mtime=0: no time of writing in the header, so the same content gives the same bytes
        super().__init__(filename=name, mode="wb", compresslevel=compresslevel, fileobj=raw, mtime=0)

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._raw.close()


def open_text(partial: Path, target: Path, compressed: bool, compresslevel: int = 1) -> IO[str]:
    """A text stream (UTF-8, newlines as written) writing to `partial`, gzip-compressed or not; a gzip
    header names `target`, the file it becomes (`gunzip -N` restores that name).

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     with written(Path(tmp) / "rows.csv.gz") as partial, open_text(partial, Path(tmp) / "rows.csv.gz", True) as out:
    ...         _ = out.write("a,b\\n")
    ...     data = (Path(tmp) / "rows.csv.gz").read_bytes()
    >>> gzip.decompress(data), data[10:19]
    (b'a,b\\n', b'rows.csv\\x00')
    """
    raw = partial.open("wb", buffering=1 << 20)
    if not compressed:
        return io.TextIOWrapper(raw, encoding="utf-8", newline="")
    try:
        return io.TextIOWrapper(_GzipWriter(raw, target.name, compresslevel), encoding="utf-8", newline="")
    except BaseException:
        raw.close()
        raise
