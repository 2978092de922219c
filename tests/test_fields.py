"""The quick path for CSV fields gives what the general checks give: the same model or the same error."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from fraudstream.models.events import Transaction
from fraudstream.producer.fields import csv_transaction, make_transaction

ids = st.one_of(st.sampled_from(["7", "c1", " c1", "c1 ", "", " ", "x" * 129, "t-9"]), st.text(max_size=6))
amounts = st.one_of(st.sampled_from(["12.5", "0", "-1", "nan", "inf", "1e9", "1e10", " 3.5", "1_0", "x", ""]),
                    st.floats(allow_nan=True).map(str), st.text(max_size=5))
times = st.sampled_from(["2018-04-01 00:00:31", "2018-04-01T00:00:31Z", "2018-04-01T02:00:31+02:00",
                         "2018-04-01T00:00:31+00:00", "2018-04-01", "2018-04-01T00:00:31.25", "1989-12-31 23:59:59",
                         "2200-01-01 00:00:00", "20180401T000031", "yesterday", "", " 2018-04-01 00:00:31",
                         "2018-04-01T00:00:31z"])
optional = st.one_of(st.none(), st.sampled_from(["", "EUR", "USD", "eur", "grocery", "45.5", "-91", "0", "nan",
                                                 "y" * 65, "180", "-180.5"]))


def outcome(build: Any, *fields: Any) -> Any:
    try:
        tx = build(*fields)
    except ValueError as exc:
        return "error", str(exc)
    return tx.__dict__, tx.__pydantic_fields_set__, tx.event_time.tzinfo


@settings(max_examples=1500, deadline=None)
@given(tid=ids, cid=ids, term=ids, amount=amounts, when=times, currency=optional, category=optional,
       lat=optional, lon=optional)
def test_csv_transaction_equals_make_transaction(tid: str, cid: str, term: str, amount: str, when: str,
                                                 currency: str | None, category: str | None, lat: str | None,
                                                 lon: str | None) -> None:
    fields = (tid, cid, term, amount, when, currency, category, lat, lon)
    assert outcome(csv_transaction, *fields) == outcome(make_transaction, *fields)


def test_a_lower_case_z_is_utc_in_files_as_on_the_wire() -> None:
    """RFC 3339 allows it; Python 3.11's `fromisoformat` alone refuses it, pydantic (the wire) takes it."""
    fields = ("7", "c1", "t1", "12.5")
    upper = make_transaction(*fields, "2018-04-01T00:00:31Z")
    assert make_transaction(*fields, "2018-04-01T00:00:31z") == upper == csv_transaction(*fields, "2018-04-01T00:00:31z")
    wire = Transaction.model_validate_json(b'{"transaction_id": "7", "customer_id": "c1", "terminal_id": "t1",'
                                           b' "amount": 12.5, "event_time": "2018-04-01T00:00:31z"}')
    assert wire.event_time == upper.event_time
