"""The format-string JSON of transactions and labels equals pydantic's, byte for byte, on any model."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from fraudstream.models.events import MAX_AMOUNT, Label, Transaction
from fraudstream.producer import wire

ids = st.text(min_size=1, max_size=20).filter(lambda s: s.strip() != "")
zones = st.sampled_from([timezone.utc, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))])
any_times = st.datetimes(min_value=datetime(1991, 1, 1), max_value=datetime(2099, 1, 1), timezones=zones)
times = st.one_of(any_times, any_times.map(lambda moment: moment.replace(microsecond=0)))
amounts = st.one_of(st.floats(0.0, MAX_AMOUNT), st.floats(0.0, 1e-3), st.sampled_from([0.0, 1e-4, 1e-5, 57.16, 1e9]))
degrees = st.one_of(st.none(), st.floats(-90.0, 90.0), st.sampled_from([-0.0, 1e-5, -1e-4, 45.0]))


@settings(max_examples=500, deadline=None)
@given(tid=ids, cid=ids, term=ids, amount=amounts, when=times, category=st.one_of(st.none(), ids),
       lat=degrees, lon=degrees)
def test_transaction_json_equals_pydantic(tid: str, cid: str, term: str, amount: float, when: datetime,
                                          category: str | None, lat: float | None, lon: float | None) -> None:
    tx = Transaction(transaction_id=tid, customer_id=cid, terminal_id=term, amount=amount, event_time=when,
                     merchant_category=category, latitude=lat, longitude=lon)
    assert wire.transaction_json(tx) == tx.to_json_bytes()


@settings(max_examples=300, deadline=None)
@given(tid=ids, cid=ids, term=st.one_of(st.none(), ids), fraud=st.booleans(), when=times,
       delay=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=30)))
def test_label_json_equals_pydantic(tid: str, cid: str, term: str | None, fraud: bool, when: datetime,
                                    delay: timedelta) -> None:
    label = Label(transaction_id=tid, customer_id=cid, terminal_id=term, is_fraud=fraud, event_time=when,
                  reported_at=when + delay)
    assert wire.label_json(label) == label.to_json_bytes()
    if term is not None:
        tx = Transaction(transaction_id=tid, customer_id=cid, terminal_id=term, amount=1.0, event_time=when)
        assert wire.label_json_for(tx, fraud, label.reported_at) == label.to_json_bytes()


def test_odd_values_fall_back_to_pydantic() -> None:
    """Times in another zone (model_construct skips the UTC conversion) and lone surrogates."""
    when = datetime(2024, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    tx = Transaction.model_construct(transaction_id="\ud800", customer_id="c", terminal_id="t", amount=1e-7,
                                     currency="EUR", event_time=when)
    try:
        expected = tx.to_json_bytes()
    except Exception as exc:  # noqa: BLE001 - whatever pydantic does, the fast path does too
        try:
            wire.transaction_json(tx)
        except Exception as again:  # noqa: BLE001
            assert type(again) is type(exc)
        else:
            raise AssertionError("expected the same error as pydantic") from exc
    else:
        assert wire.transaction_json(tx) == expected
    plain = Transaction.model_construct(transaction_id="1", customer_id="c", terminal_id="t", amount=1.0,
                                        currency="EUR", event_time=when)
    assert wire.transaction_json(plain) == plain.to_json_bytes()
