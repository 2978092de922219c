"""Raw field values checked into `Transaction` models: the models' rules without pydantic's cost.

`make_transaction` checks any values (strings from CSV, JSON values) and says which field is wrong;
`csv_transaction` does the same for text fields, with a quick path for the usual shape of a row
(ids without surrounding blanks, a number, an ISO time without offset or ending in ``Z``, currency
EUR) that falls back to `make_transaction` for everything else, so results and error messages are
the same (a property test compares both).

>>> csv_transaction("7", "c1", "t1", "12.50", "2018-04-01 00:00:31") == make_transaction(
...     "7", "c1", "t1", "12.50", "2018-04-01T00:00:31Z")
True
>>> csv_transaction("7", " c1", "t1", "12.50", "2018-04-01T02:00:31+02:00").customer_id
'c1'
>>> csv_transaction("7", "c1", "t1", "-3", "2018-04-01")
Traceback (most recent call last):
...
ValueError: amount '-3' outside 0..1e+09
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from fraudstream.models.events import MAX_AMOUNT, MAX_EVENT_TIME, MIN_EVENT_TIME, Transaction

UTC = timezone.utc
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_MAX_ID = 128
_REQUIRED = frozenset({"transaction_id", "customer_id", "terminal_id", "amount", "event_time"})
_fromisoformat = datetime.fromisoformat


def build_model(cls: type[Any], values: dict[str, Any], fields_set: set[str]) -> Any:
    """Build a pydantic model from values already checked here, skipping re-validation.

    Does what ``model_construct`` does (which is slower than validating on pydantic 2.14): the
    callers check every constraint of the model themselves; tests compare with validated models.
    """
    obj = object.__new__(cls)
    object.__setattr__(obj, "__dict__", values)
    object.__setattr__(obj, "__pydantic_fields_set__", fields_set)
    object.__setattr__(obj, "__pydantic_extra__", None)
    object.__setattr__(obj, "__pydantic_private__", None)
    return obj


def _id(value: Any, name: str) -> str:
    text = str(value).strip() if value is not None else ""
    if not text:
        raise ValueError(f"{name} is empty")
    if len(text) > _MAX_ID:
        raise ValueError(f"{name} longer than {_MAX_ID} characters")
    return text


def _time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"event_time must be an ISO-8601 string, got {value!r}")
    try:
        # RFC 3339 allows a lower-case z, which Python 3.11's fromisoformat refuses (pydantic takes it)
        moment = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value)
    except ValueError:
        raise ValueError(f"event_time {value!r} is not an ISO-8601 date-time") from None
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    if not MIN_EVENT_TIME <= moment < MAX_EVENT_TIME:
        raise ValueError(f"event_time {value!r} outside {MIN_EVENT_TIME.year}..{MAX_EVENT_TIME.year}")
    return moment


def _number(value: Any, name: str, low: float, high: float) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{name} {value!r} is not a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} {value!r} is not a number") from None
    if not low <= number <= high:  # also refuses NaN and infinities
        raise ValueError(f"{name} {value!r} outside {low:g}..{high:g}")
    return number


def parse_flag(value: Any) -> bool | None:
    if value is None or value == "":
        return None
    if value in (True, 1, "1", "true", "True"):
        return True
    if value in (False, 0, "0", "false", "False"):
        return False
    raise ValueError(f"fraud label {value!r} is not 0/1 or true/false")


def make_transaction(tid: Any, cid: Any, term: Any, amount: Any, event_time: Any, currency: Any = None,
                     category: Any = None, latitude: Any = None, longitude: Any = None) -> Transaction:
    """A `Transaction` from raw field values, checked here (ValueError says which field is wrong).

    >>> make_transaction("7", "c1", "t1", "12.50", "2018-04-01T00:00:31") == Transaction(
    ...     transaction_id="7", customer_id="c1", terminal_id="t1", amount=12.5, event_time="2018-04-01T00:00:31Z")
    True
    >>> make_transaction("7", "c1", "t1", "nan", "2018-04-01")
    Traceback (most recent call last):
    ...
    ValueError: amount 'nan' outside 0..1e+09
    """
    values = {"transaction_id": _id(tid, "transaction_id"), "customer_id": _id(cid, "customer_id"),
              "terminal_id": _id(term, "terminal_id"), "amount": _number(amount, "amount", 0.0, MAX_AMOUNT),
              "currency": "EUR", "event_time": _time(event_time), "merchant_category": None,
              "latitude": None, "longitude": None}
    fields_set = {"transaction_id", "customer_id", "terminal_id", "amount", "event_time"}
    if currency not in (None, ""):
        if not isinstance(currency, str) or not _CURRENCY.match(currency):
            raise ValueError(f"currency {currency!r} is not a 3-letter code")
        values["currency"] = currency
        fields_set.add("currency")
    if category not in (None, ""):
        if len(str(category)) > 64:
            raise ValueError("merchant_category longer than 64 characters")
        values["merchant_category"] = str(category)
        fields_set.add("merchant_category")
    if latitude not in (None, ""):
        values["latitude"] = _number(latitude, "latitude", -90.0, 90.0)
        fields_set.add("latitude")
    if longitude not in (None, ""):
        values["longitude"] = _number(longitude, "longitude", -180.0, 180.0)
        fields_set.add("longitude")
    return build_model(Transaction, values, fields_set)  # type: ignore[no-any-return]


def csv_transaction(tid: str, cid: str, term: str, amount: str, event_time: str, currency: str | None = None,
                    category: str | None = None, latitude: str | None = None,
                    longitude: str | None = None) -> Transaction:
    """`make_transaction` for fields read as text (None: no such column), quicker for the usual shape."""
    try:
        return _usual_csv_transaction(tid, cid, term, amount, event_time, currency, category, latitude, longitude)
    except (ValueError, TypeError):
        return make_transaction(tid, cid, term, amount, event_time, currency, category, latitude, longitude)


def _usual_csv_transaction(tid: str, cid: str, term: str, amount: str, event_time: str, currency: str | None,
                           category: str | None, latitude: str | None, longitude: str | None) -> Transaction:
    """The transaction when every field has the usual shape; ValueError (or TypeError) otherwise."""
    moment = _fromisoformat(event_time)
    if moment.tzinfo is None:
        moment = _fromisoformat(event_time + "+00:00")  # UTC; 3x cheaper than moment.replace(tzinfo=UTC)
    elif moment.tzinfo is not UTC:
        raise ValueError(event_time)
    number = float(amount)
    if not (tid and cid and term and 0.0 <= number <= MAX_AMOUNT and MIN_EVENT_TIME <= moment < MAX_EVENT_TIME
            and len(tid) <= _MAX_ID and len(cid) <= _MAX_ID and len(term) <= _MAX_ID
            and tid == tid.strip() and cid == cid.strip() and term == term.strip()):
        raise ValueError(tid)
    values = {"transaction_id": tid, "customer_id": cid, "terminal_id": term, "amount": number, "currency": "EUR",
              "event_time": moment, "merchant_category": None, "latitude": None, "longitude": None}
    fields_set = set(_REQUIRED)
    if currency:
        if currency != "EUR":  # other codes are checked by make_transaction
            raise ValueError(currency)
        fields_set.add("currency")
    if category:
        if len(category) > 64:
            raise ValueError(category)
        values["merchant_category"] = category
        fields_set.add("merchant_category")
    if latitude:
        values["latitude"] = _degrees(latitude, 90.0)
        fields_set.add("latitude")
    if longitude:
        values["longitude"] = _degrees(longitude, 180.0)
        fields_set.add("longitude")
    return build_model(Transaction, values, fields_set)  # type: ignore[no-any-return]


def _degrees(text: str, limit: float) -> float:
    number = float(text)
    if not -limit <= number <= limit:  # also refuses NaN
        raise ValueError(text)
    return number
