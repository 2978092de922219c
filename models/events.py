"""Event contracts on the wire: JSON, one record per Kafka message, key = customer_id.

>>> tx = Transaction.model_validate_json(
...     '{"transaction_id": "t1", "customer_id": "c1", "terminal_id": "m1", "amount": 12.5,'
...     ' "event_time": "2018-04-01T00:00:31Z"}')
>>> tx.currency, tx.event_time.isoformat()
('EUR', '2018-04-01T00:00:31+00:00')
>>> Transaction.model_validate_json('{"transaction_id": "t1", "customer_id": "c1", "terminal_id": "m1",'
...     ' "amount": -1, "event_time": "2018-04-01T00:00:31Z"}')  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for Transaction
...
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime, timezone
from numbers import Number
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, model_validator

from fraudstream.errors import FraudstreamError

MIN_EVENT_TIME = datetime(1990, 1, 1, tzinfo=timezone.utc)
MAX_EVENT_TIME = datetime(2100, 1, 1, tzinfo=timezone.utc)  # the feature state keeps 4-byte epoch seconds (to 2106)
MAX_AMOUNT = 1e9
# a number as text (what pydantic would read as Unix seconds or milliseconds, and more)
_NUMBER = re.compile(r"\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*")


def _utc(value: datetime) -> datetime:
    """Naive times are taken as UTC; aware ones are converted; absurd years are refused."""
    value = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    if not MIN_EVENT_TIME <= value < MAX_EVENT_TIME:
        raise ValueError(f"time {value.isoformat()} outside {MIN_EVENT_TIME.year}..{MAX_EVENT_TIME.year}")
    return value


def _iso_text(value: object) -> object:
    """Times are ISO-8601 text (or datetimes, in Python): pydantic alone also reads a JSON number, or
    a string of one (digits, also with a point or an exponent: "1.7e9"), as Unix seconds or
    milliseconds, guessing which by its size, where recorded files refuse them and the contract says
    ISO 8601. Numbers of other types from Python callers (Decimal, numpy's) and bytes of one alike.

    >>> _iso_text("2024-06-01T10:00:00Z"), _iso_text("1717236000")
    Traceback (most recent call last):
    ...
    ValueError: a time must be ISO-8601 text (e.g. "2024-06-01T10:00:00Z"), not a number of seconds or milliseconds: '1717236000'
    >>> _iso_text("1.7e9")
    Traceback (most recent call last):
    ...
    ValueError: a time must be ISO-8601 text (e.g. "2024-06-01T10:00:00Z"), not a number of seconds or milliseconds: '1.7e9'
    """
    if type(value) is str:
        # a number has no ":" and a "-" only first or in a negative exponent (a time before 1990, which
        # `_utc` refuses): the test spares most ISO text the regular expression
        if ":" in value or "-" in value[1:] or _NUMBER.fullmatch(value) is None:
            return value
    elif isinstance(value, (bytes, bytearray)):
        if _NUMBER.fullmatch(bytes(value).decode("latin-1")) is None:
            return value
    elif not isinstance(value, Number) or isinstance(value, bool):
        return value
    raise ValueError(f'a time must be ISO-8601 text (e.g. "2024-06-01T10:00:00Z"), not a number of seconds or '
                     f"milliseconds: {value!r}")


Id = Annotated[str, StringConstraints(min_length=1, max_length=128, strip_whitespace=True)]
UtcTime = Annotated[datetime, BeforeValidator(_iso_text), AfterValidator(_utc)]
# strict: JSON numbers only (no booleans, no numeric strings); NaN and infinities are refused by the
# events' `allow_inf_nan=False` (pydantic's finite_number error)
Amount = Annotated[float, Field(strict=True, ge=0.0, le=MAX_AMOUNT)]
# An alert's figures: JSON has no NaN nor infinity, and pydantic writes them as null, which reads back as NaN
Figure = Annotated[float, BeforeValidator(lambda value: math.nan if value is None else value)]
Latitude = Annotated[float, Field(strict=True, ge=-90.0, le=90.0)]
Longitude = Annotated[float, Field(strict=True, ge=-180.0, le=180.0)]


class Event(BaseModel):
    # The inputs' fields are scalars (strings, numbers, booleans, null) and have no aliases, and unknown
    # fields are refused: `check_fields_once` counts on it (tests/test_repeated_fields.py checks it).
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


class Transaction(Event):
    """A card payment at a terminal (merchant)."""

    transaction_id: Id
    customer_id: Id
    terminal_id: Id
    amount: Amount
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = "EUR"
    event_time: UtcTime
    merchant_category: Annotated[str, StringConstraints(max_length=64)] | None = None
    latitude: Latitude | None = None
    longitude: Longitude | None = None


class Label(Event):
    """The fraud status of a transaction, known some time after it happened."""

    transaction_id: Id
    customer_id: Id
    terminal_id: Id | None = None
    is_fraud: Annotated[bool, Field(strict=True)]
    event_time: UtcTime = Field(description="Event time of the labelled transaction.")
    reported_at: UtcTime = Field(description="When the label became known: not before `event_time`.")

    @model_validator(mode="after")
    def _reported_after_the_transaction(self) -> Label:
        """A label is known only once its transaction has happened: one reported before it (swapped
        columns, a time zone slip in a label feed) would count a fraud in terminal risk too early.

        >>> Label(transaction_id="t", customer_id="c", is_fraud=True, event_time="2024-03-06T00:00:00Z",
        ...       reported_at="2024-03-05T23:00:00Z")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        pydantic_core._pydantic_core.ValidationError: 1 validation error for Label
          Value error, reported_at 2024-03-05T23:00:00+00:00 is before event_time 2024-03-06T00:00:00+00:00: ...
        """
        if self.reported_at < self.event_time:
            raise ValueError(f"reported_at {self.reported_at.isoformat()} is before event_time "
                             f"{self.event_time.isoformat()}: a label is known only after its transaction")
        return self


class RepeatedField(FraudstreamError):
    """A JSON object names a field more than once (raised by `fields_once`)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"field {name!r} given twice (which value is meant?)")
        self.name = name


def fields_once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    r"""`json.loads`'s ``object_pairs_hook`` that raises `RepeatedField` for a name given twice (as
    decoded: ``"\u0061mount"`` is ``"amount"``), where `json` and pydantic keep the last value without a word.

    >>> try:
    ...     json.loads(r'{"amount": 12.5, "\u0061mount": 9000}', object_pairs_hook=fields_once)
    ... except RepeatedField as exc:
    ...     print(exc)
    field 'amount' given twice (which value is meant?)
    """
    obj = dict(pairs)
    if len(obj) < len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise RepeatedField(name)
            seen.add(name)
    return obj


def check_fields_once(raw: bytes, event: Event) -> None:
    r"""Raise `RepeatedField` if `raw`, the JSON that `event` was validated from, gives a field more
    than once. Another parser reading `raw` (the producer's, an audit log's) may take the first value
    where pydantic takes the last: ``"amount": 12.5, "amount": 9000`` was scored as 9000.

    Exact, and cheap: the members of the object are separated by commas, and a comma elsewhere can
    only be inside a string (an input's values are scalars; in UTF-8 no byte of another character is
    a comma), so the commas are at least the members less one. The members are at least the distinct
    names, which are `event`'s fields set (unknown names are refused). Commas plus one equal to the
    fields set thus leave no member to repeat a name, whatever the whitespace, escapes in names or
    ``":`` in values: one count of bytes for nearly every record. In a record without a backslash no
    quote is escaped: its quotes open and close strings in turn, and the commas outside them are
    exactly the members less one (a merchant category "Eating Places, Restaurants" costs a split at
    the quotes). Otherwise (an escape and a comma, or a name given twice) `raw` is parsed again with
    `fields_once`, which decodes names as pydantic does; json reads whatever pydantic's parser (the
    stricter) accepted.

    >>> raw = b'{"transaction_id": "t1", "customer_id": "c1", "terminal_id": "m1", "amount": 12.5,' \
    ...       b' "event_time": "2018-04-01T00:00:31Z"}'
    >>> check_fields_once(raw, Transaction.model_validate_json(raw))
    >>> twice = raw[:-1] + b', "amount": 9000}'
    >>> tx = Transaction.model_validate_json(twice)
    >>> tx.amount
    9000.0
    >>> try:
    ...     check_fields_once(twice, tx)
    ... except RepeatedField as exc:
    ...     print(exc)
    field 'amount' given twice (which value is meant?)
    >>> mcc = raw[:-1] + b', "merchant_category": "Eating Places, Restaurants"}'
    >>> check_fields_once(mcc, Transaction.model_validate_json(mcc))  # without parsing it again
    """
    fields = len(event.model_fields_set)
    if raw.count(b",") + 1 == fields:
        return
    if b"\\" not in raw and b"".join(raw.split(b'"')[::2]).count(b",") + 1 == fields:
        return
    json.loads(raw.decode("utf-8"), object_pairs_hook=fields_once)


class Reason(BaseModel):
    """One feature's part in a score."""

    model_config = ConfigDict(frozen=True)

    feature: str
    value: Figure
    contribution: Figure


class Alert(Event):
    """A transaction whose champion score reached the alert threshold.

    Read by subscribers, whose fraudstream may be older than the consumers': fields it does not
    know are ignored (a field added later would otherwise have every alert refused, and skipped by
    `fraudstream alerts`), unlike the inputs, whose unknown fields are refused.

    >>> line = ('{"transaction_id": "t1", "customer_id": "c1", "terminal_id": "m1", "amount": 9.5,'
    ...         ' "event_time": "2024-01-01T00:00:00Z", "score": 0.9, "threshold": 0.5, "model_name": "logreg",'
    ...         ' "model_version": "7+12", "reasons": [], "features": {}, "scored_at": "2024-01-01T00:00:01Z",'
    ...         ' "latency_ms": 12.0, "a_later_field": 1}')
    >>> alert = Alert.model_validate_json(line)
    >>> alert.model_version
    '7+12'

    A feature that is not a number (NaN, infinite) goes out as null, and reads back as NaN:

    >>> odd = alert.model_copy(update={"features": {"ratio": float("inf")}})
    >>> odd.to_json_bytes()[-79:]
    b'"features":{"ratio":null},"scored_at":"2024-01-01T00:00:01Z","latency_ms":12.0}'
    >>> Alert.model_validate_json(odd.to_json_bytes()).features
    {'ratio': nan}
    """

    model_config = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=True)

    transaction_id: Id
    customer_id: Id
    terminal_id: Id
    amount: float
    event_time: datetime
    score: float
    threshold: float
    model_name: str
    model_version: str
    reasons: list[Reason]
    features: dict[str, Figure]
    scored_at: datetime
    latency_ms: float
