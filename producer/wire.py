"""Message values on the wire: the JSON of a transaction or label, byte-identical to the models'.

`transaction_json` and `label_json` give exactly the bytes of ``model.to_json_bytes()`` (pydantic's
serializer, ``exclude_none``) but build them with one format string, which is several times cheaper
per message. Values the format string does not cover the same way fall back to pydantic: numbers
below 1e-4 or from 1e16 (pydantic writes ``1e-5`` where Python writes ``1e-05``), times not in UTC,
and strings that cannot be encoded as UTF-8. Property tests compare both on arbitrary models.

>>> from datetime import datetime, timezone
>>> tx = Transaction(transaction_id="7", customer_id='c"1', terminal_id="t", amount=12.5,
...                  event_time="2024-01-01T00:00:31Z", latitude=45.0)
>>> transaction_json(tx)
b'{"transaction_id":"7","customer_id":"c\\\\"1","terminal_id":"t","amount":12.5,"currency":"EUR","event_time":"2024-01-01T00:00:31Z","latitude":45.0}'
>>> transaction_json(tx) == tx.to_json_bytes()
True
>>> label = Label(transaction_id="7", customer_id='c"1', terminal_id="t", is_fraud=True,
...               event_time=tx.event_time, reported_at="2024-01-08T00:00:31.5Z")
>>> label_json(label) == label.to_json_bytes()
True
>>> label_json_for(tx, True, datetime(2024, 1, 8, 0, 0, 31, 500000, tzinfo=timezone.utc)) == label_json(label)
True
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from fraudstream.models.events import Label, Transaction

_UTC = timezone.utc
_quote = json.encoder.encode_basestring  # C: escapes '"', '\\' and control characters, as pydantic does
_TX_SERIALIZER = Transaction.__pydantic_serializer__
_LABEL_SERIALIZER = Label.__pydantic_serializer__
_DAYS: dict[int, str] = {}  # proleptic ordinal -> "YYYY-MM-DDT"
_CLOCK = tuple(f"{hour:02d}:{minute:02d}:" for hour in range(24) for minute in range(60))
_SECONDS = tuple(f"{second:02d}Z" for second in range(60))


class _Unusual(ValueError):
    """A value the format string would not write as pydantic does."""


_FALLBACK = (_Unusual, UnicodeEncodeError, TypeError)  # TypeError: not a str where the model says str


def _number(value: float) -> str:
    """A float as pydantic writes it; Python's ``repr`` agrees between 1e-4 and 1e16 (and for 0)."""
    if 1e-4 <= abs(value) < 1e16 or value == 0.0:
        return repr(value)
    raise _Unusual(value)


def _time(moment: datetime) -> str:
    """A UTC time as pydantic writes it: ISO-8601 with ``Z`` (microseconds only when there are any).

    Whole seconds are assembled from cached pieces (``isoformat`` of an aware time costs 4x more).
    """
    if moment.tzinfo is not _UTC:
        raise _Unusual(moment)
    if moment.microsecond:
        return moment.isoformat()[:-6] + "Z"  # isoformat ends with "+00:00" for timezone.utc
    day = _DAYS.get(moment.toordinal())
    if day is None:
        if len(_DAYS) >= 100_000:
            _DAYS.clear()
        day = _DAYS[moment.toordinal()] = f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T"
    return day + _CLOCK[moment.hour * 60 + moment.minute] + _SECONDS[moment.second]


def transaction_json(tx: Transaction) -> bytes:
    """``tx.to_json_bytes()``, built with a format string (pydantic for unusual values)."""
    try:
        text = (f'{{"transaction_id":{_quote(tx.transaction_id)},"customer_id":{_quote(tx.customer_id)},'
                f'"terminal_id":{_quote(tx.terminal_id)},"amount":{_number(tx.amount)},'
                f'"currency":{_quote(tx.currency)},"event_time":"{_time(tx.event_time)}"')
        if tx.merchant_category is not None:
            text += f',"merchant_category":{_quote(tx.merchant_category)}'
        if tx.latitude is not None:
            text += f',"latitude":{_number(tx.latitude)}'
        if tx.longitude is not None:
            text += f',"longitude":{_number(tx.longitude)}'
        return (text + "}").encode()
    except _FALLBACK:
        return _TX_SERIALIZER.to_json(tx, exclude_none=True)  # type: ignore[no-any-return]


def label_json(label: Label) -> bytes:
    """``label.to_json_bytes()``, built with a format string (pydantic for unusual values)."""
    try:
        return _label_text(label.transaction_id, label.customer_id, label.terminal_id, label.is_fraud,
                           label.event_time, label.reported_at).encode()
    except _FALLBACK:
        return _LABEL_SERIALIZER.to_json(label, exclude_none=True)  # type: ignore[no-any-return]


def label_json_for(tx: Transaction, is_fraud: bool, reported_at: datetime) -> bytes:
    """The JSON of the label of `tx`, reported at `reported_at`, without building the `Label`."""
    try:
        return _label_text(tx.transaction_id, tx.customer_id, tx.terminal_id, is_fraud, tx.event_time,
                           reported_at).encode()
    except _FALLBACK:
        label = Label.model_construct(transaction_id=tx.transaction_id, customer_id=tx.customer_id,
                                      terminal_id=tx.terminal_id, is_fraud=is_fraud, event_time=tx.event_time,
                                      reported_at=reported_at)
        return _LABEL_SERIALIZER.to_json(label, exclude_none=True)  # type: ignore[no-any-return]


def _label_text(tid: str, cid: str, term: str | None, is_fraud: bool, event_time: datetime,
                reported_at: datetime) -> str:
    if type(is_fraud) is not bool:
        raise _Unusual(is_fraud)
    terminal = "" if term is None else f'"terminal_id":{_quote(term)},'
    return (f'{{"transaction_id":{_quote(tid)},"customer_id":{_quote(cid)},{terminal}'
            f'"is_fraud":{"true" if is_fraud else "false"},"event_time":"{_time(event_time)}",'
            f'"reported_at":"{_time(reported_at)}"}}')
