"""Reading recorded transactions: our ``.jsonl``/``.csv`` (optionally ``.gz``) and the handbook CSV.

The format is detected from the content, not the name: gzip by its magic bytes, JSON lines by a
first line that starts with ``{``, and the two CSV dialects by their header. The header (for JSON
lines: the first record) is checked when `read_recorded` is called, before anything is yielded, so
a caller that publishes what it reads publishes nothing from a file that fails that check. A bad row
later in the file raises `InputError` naming the file, the line and the problem.

Rows must be in event-time order (equal times keep file order); a row dated before the previous
one is an error, because replay and backtests rely on the order and ``end`` stops reading early.

>>> import tempfile, os
>>> from datetime import timedelta
>>> from fraudstream.producer.recorded import labels_for
>>> path = os.path.join(tempfile.mkdtemp(), "hb.csv")
>>> _ = open(path, "w").write(
...     "TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_FRAUD,TX_FRAUD_SCENARIO\\n"
...     "0,2018-04-01T00:00:31,596,3156,57.16,0,0\\n"
...     "1,2018-04-01T00:02:10,4961,3412,281.51,1,1\\n")
>>> rows = list(read_recorded(path))
>>> rows[1].transaction.amount, rows[1].is_fraud, rows[1].fraud_scenario
(281.51, True, '1')
>>> labels_for(rows[1], timedelta(days=7)).reported_at.isoformat()
'2018-04-08T00:02:10+00:00'
>>> import shutil; shutil.rmtree(os.path.dirname(path))
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from fraudstream.errors import InputError
from fraudstream.models.events import RepeatedField, fields_once
from fraudstream.producer.fields import csv_transaction, make_transaction, parse_flag
from fraudstream.producer.file_text import not_utf8, open_text
from fraudstream.producer.header_hints import case_slips, csv_header_mistake, repeated_column
from fraudstream.producer.recorded import (HANDBOOK_COLUMNS, HANDBOOK_OWN, HANDBOOK_SCENARIO, OUR_COLUMNS, OUR_REQUIRED,
                                           Recorded, Span)

log = logging.getLogger(__name__)

def read_recorded(path: str | Path, start: datetime | None = None, end: datetime | None = None,
                  span: Span | None = None) -> Iterator[Recorded]:
    """Rows of a recorded file with event time in ``[start, end)``, in file (event-time) order.

    The header is checked now; rows are read lazily. Raises `InputError` naming file, line and problem.
    `span`, if given, is filled in with what was read (see `Span`) as the rows are.
    """
    path = Path(path)
    stream = open_text(path)
    try:
        first = _first_line(stream, path)
        if first.lstrip().startswith("{"):
            rows = _jsonl_rows(stream, path, first)
        else:
            rows = _csv_rows(stream, path, first)
    except BaseException:
        stream.close()
        raise
    return _ordered(rows, stream, path, start, end, span)


def _first_line(stream: IO[str], path: Path) -> str:
    try:
        first = stream.readline()
    except UnicodeDecodeError as exc:
        raise not_utf8(path, exc) from exc
    except (OSError, EOFError) as exc:
        raise InputError(f"{path}:1: cannot read: {exc}") from exc
    if not first.strip():
        raise InputError(f"{path}:1: empty file, or an empty first line (where a CSV's header or a JSONL file's "
                         "first record belongs)")
    return first


def _ordered(rows: Iterator[tuple[int, Recorded]], stream: IO[str], path: Path,
             start: datetime | None, end: datetime | None, span: Span | None) -> Iterator[Recorded]:
    # A row is given out only once the next one is read and found in order: a row out of order stops
    # the reading before either of the two rows is used, since either may be the wrong one.
    previous: datetime | None = None
    previous_line = line = 1
    held: Recorded | None = None
    try:
        while True:
            try:
                line, rec = next(rows)
            except StopIteration:
                break
            except (InputError, OSError, EOFError, UnicodeDecodeError, csv.Error):  # a row bad in itself, or a
                if held is not None:  # file cut short: the row before it is good
                    yield held
                raise
            moment = rec.transaction.event_time
            if previous is None:
                if span is not None:
                    span.first = moment
            elif moment < previous:
                raise InputError(f"{path}:{line}: event time {moment.isoformat()} is before line {previous_line}'s "
                                 f"{previous.isoformat()} (files must be in event-time order; either line may be "
                                 "the wrong one, and neither was used)")
            previous, previous_line = moment, line
            if held is not None:
                yield held
                held = None
            if end is not None and moment >= end:
                return
            if start is None or moment >= start:
                held = rec
        if held is not None:
            yield held
        if span is not None:
            span.complete = True
    except UnicodeDecodeError as exc:
        raise not_utf8(path, exc) from exc
    except (OSError, EOFError, csv.Error) as exc:
        raise InputError(f"{path}: cannot read after line {line}: {exc}") from exc
    finally:
        if span is not None:
            span.last = previous
        stream.close()


def _csv_rows(stream: IO[str], path: Path, first: str) -> Iterator[tuple[int, Recorded]]:
    header = [name.strip() for name in next(csv.reader([first]))]
    repeated = repeated_column(header, (*HANDBOOK_COLUMNS, HANDBOOK_SCENARIO, *OUR_COLUMNS))
    if repeated:
        raise InputError(f"{path}:1: {repeated}")
    if all(name in header for name in HANDBOOK_COLUMNS):
        index = [header.index(name) for name in HANDBOOK_COLUMNS]
        scenario = header.index(HANDBOOK_SCENARIO) if HANDBOOK_SCENARIO in header else None
        return _handbook_rows(csv.reader(stream), path, len(header), index, scenario)
    handbook = any(name.upper() in HANDBOOK_OWN for name in header)
    mistake = csv_header_mistake(header, first, (*HANDBOOK_COLUMNS, HANDBOOK_SCENARIO) if handbook else OUR_COLUMNS)
    if mistake:  # another separator, names in another case, a JSON array: not "lacks column(s)"
        raise InputError(f"{path}:1: {mistake}")
    if "transaction_id" in header or "event_time" in header:
        missing = [name for name in OUR_REQUIRED if name not in header]
        if missing:
            raise InputError(f"{path}:1: header lacks column(s) {', '.join(missing)}")
        _refuse_unknown([name for name in header if name not in OUR_COLUMNS], path, 1, "column")
        positions = {name: header.index(name) for name in OUR_COLUMNS if name in header}
        return _our_csv_rows(csv.reader(stream), path, len(header), positions)
    if "TRANSACTION_ID" in header or "TX_DATETIME" in header:
        missing = [name for name in HANDBOOK_COLUMNS if name not in header]
        raise InputError(f"{path}:1: header lacks the handbook's column(s) {', '.join(missing)}")
    raise InputError(f"{path}:1: unrecognised header {first.strip()[:120]!r}; expected our columns "
                     f"({', '.join(OUR_REQUIRED)}, ...) or the handbook's ({', '.join(HANDBOOK_COLUMNS)})")


def _handbook_rows(reader: Any, path: Path, width: int, index: list[int],
                   scenario: int | None) -> Iterator[tuple[int, Recorded]]:
    i_id, i_time, i_customer, i_terminal, i_amount, i_fraud = index
    line = 1
    for row in reader:
        line += 1
        if not row:
            continue
        if len(row) != width:
            raise InputError(f"{path}:{line}: expected {width} fields, found {len(row)}")
        try:
            tx = csv_transaction(row[i_id], row[i_customer], row[i_terminal], row[i_amount], row[i_time])
        except ValueError as exc:
            raise InputError(f"{path}:{line}: {exc}") from None
        fraud = row[i_fraud]
        if fraud != "0" and fraud != "1":
            fraud = fraud.strip()
            if fraud not in ("0", "1"):
                raise InputError(f"{path}:{line}: TX_FRAUD {row[i_fraud]!r} is not 0 or 1")
        yield line, Recorded(tx, fraud == "1", row[scenario].strip() if scenario is not None else None)


def _our_csv_rows(reader: Any, path: Path, width: int, pos: dict[str, int]) -> Iterator[tuple[int, Recorded]]:
    required = [pos[name] for name in ("transaction_id", "customer_id", "terminal_id", "amount", "event_time")]
    optional = [pos.get(name) for name in ("currency", "merchant_category", "latitude", "longitude")]
    i_fraud, i_scenario = pos.get("is_fraud"), pos.get("fraud_scenario")
    line = 1
    for row in reader:
        line += 1
        if not row:
            continue
        if len(row) != width:
            raise InputError(f"{path}:{line}: expected {width} fields, found {len(row)}")
        try:
            tx = csv_transaction(*[row[i] for i in required], *[row[i] if i is not None else None for i in optional])
            fraud = parse_flag(row[i_fraud]) if i_fraud is not None else None
        except ValueError as exc:
            raise InputError(f"{path}:{line}: {exc}") from None
        scenario = row[i_scenario] if i_scenario is not None and row[i_scenario] != "" else None
        yield line, Recorded(tx, fraud, scenario)


def _jsonl_rows(stream: IO[str], path: Path, first: str) -> Iterator[tuple[int, Recorded]]:
    first_rec = _json_record(first, path, 1)  # the "header check": the first record must be valid

    def rows() -> Iterator[tuple[int, Recorded]]:
        yield 1, first_rec
        line = 1
        for text in stream:
            line += 1
            if text.strip():
                yield line, _json_record(text, path, line)

    return rows()


def _refuse_unknown(unknown: list[str], path: Path, line: int, what: str) -> None:
    """A misspelt name (``isFraud``) would otherwise be dropped without a word, as the wire refuses it."""
    if unknown:
        raise InputError(f"{path}:{line}: unknown {what}(s) {', '.join(map(repr, unknown))}; "
                         f"known: {', '.join(OUR_COLUMNS)}")


def _json_record(text: str, path: Path, line: int) -> Recorded:
    """The record of one line of a JSONL file.

    >>> _json_record('{"transaction_id": "t1", "amount": 2,\\n', Path("f.jsonl"), 3)
    Traceback (most recent call last):
    ...
    fraudstream.errors.InputError: f.jsonl:3: not valid JSON: Expecting property name enclosed in double quotes at the end of the line (column 38)
    """
    text = text.rstrip("\r\n")
    try:
        obj = json.loads(text, object_pairs_hook=fields_once)
    except RepeatedField as exc:  # json would keep the last value without a word
        raise InputError(f"{path}:{line}: {exc}") from None
    except json.JSONDecodeError as exc:
        where = "at the end of the line (column" if exc.pos >= len(text) else "at column"
        raise InputError(f"{path}:{line}: not valid JSON: {exc.msg} {where} {exc.pos + 1}"
                         f"{')' if exc.pos >= len(text) else ''}") from None
    if not isinstance(obj, dict):
        raise InputError(f"{path}:{line}: expected a JSON object, found {type(obj).__name__}")
    missing = [name for name in OUR_REQUIRED if name not in obj]
    if missing:
        slips = case_slips(list(obj), OUR_COLUMNS)
        raise InputError(f"{path}:{line}: missing field(s) {', '.join(missing)}"
                         + (f" (names are case-sensitive: {', '.join(slips)})" if slips else ""))
    _refuse_unknown([name for name in obj if name not in OUR_COLUMNS], path, line, "field")
    try:
        tx = make_transaction(obj["transaction_id"], obj["customer_id"], obj["terminal_id"], obj["amount"],
                              obj["event_time"], obj.get("currency"), obj.get("merchant_category"),
                              obj.get("latitude"), obj.get("longitude"))
        fraud = parse_flag(obj.get("is_fraud"))
    except ValueError as exc:
        raise InputError(f"{path}:{line}: {exc}") from None
    scenario = obj.get("fraud_scenario")
    return Recorded(tx, fraud, None if scenario is None else str(scenario))
