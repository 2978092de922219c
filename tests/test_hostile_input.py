"""Hostile input: every bad record is refused with a reason, every good one accepted (fuzzed)."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from fraudstream.errors import ValidationFailed
from fraudstream.stream.decode import RecordValidator

VALIDATOR = RecordValidator(max_record_bytes=4096, max_future_skew=timedelta(days=1), allowed_lateness=timedelta(hours=1))
GOOD = {"transaction_id": "t1", "customer_id": "c1", "terminal_id": "m1", "amount": 12.5,
        "event_time": "2018-04-01T10:00:00+00:00"}
REASONS = {"empty", "oversized", "invalid_json", "invalid_fields", "future_event_time", "too_late"}


def encode(doc: object) -> bytes:
    return json.dumps(doc, allow_nan=True).encode()


def good_transactions() -> st.SearchStrategy[dict[str, object]]:
    chars = st.characters(min_codepoint=33, max_codepoint=0x2FFF, exclude_categories=("Zs", "Zl", "Zp", "Cc", "Cs"))
    ids = st.text(chars, min_size=1, max_size=40)
    return st.fixed_dictionaries({
        "transaction_id": ids, "customer_id": ids, "terminal_id": ids,
        "amount": st.floats(min_value=0, max_value=1e6, allow_nan=False),
        "event_time": st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2025, 1, 1),
                                   timezones=st.just(timezone.utc)).map(datetime.isoformat),
    })


def bad_records() -> st.SearchStrategy[bytes]:
    field = st.sampled_from(sorted(GOOD))
    wrong_values = st.one_of(st.none(), st.booleans(), st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
    return st.one_of(
        st.binary(max_size=200).filter(lambda b: _not_valid(b)),
        field.map(lambda f: encode({k: v for k, v in GOOD.items() if k != f})),                         # missing field
        st.tuples(field, wrong_values).map(lambda fv: encode({**GOOD, fv[0]: fv[1]})),                   # wrong type
        st.sampled_from([math.nan, math.inf, -math.inf, -0.01, -1e9, 1e12]).map(lambda a: encode({**GOOD, "amount": a})),
        st.sampled_from(["1850-01-01T00:00:00Z", "2999-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "yesterday", ""])
        .map(lambda t: encode({**GOOD, "event_time": t})),
        st.integers(min_value=4097, max_value=20000).map(lambda n: encode({**GOOD, "pad": "x" * n})),  # oversized
        st.just(encode({**GOOD, "extra_field": 1})),
        st.just(b""),
    )


def _not_valid(raw: bytes) -> bool:
    try:
        VALIDATOR.transaction(raw, watermark=None)
    except ValidationFailed:
        return True
    return False


@given(good_transactions())
@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_good_transactions_are_accepted(doc: dict[str, object]) -> None:
    tx = VALIDATOR.transaction(encode(doc), watermark=None)
    assert tx.amount == doc["amount"]


@given(bad_records())
@hsettings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_bad_records_are_refused_with_a_reason(raw: bytes) -> None:
    try:
        VALIDATOR.transaction(raw, watermark=None)
    except ValidationFailed as exc:
        assert exc.reason in REASONS
    else:
        raise AssertionError(f"accepted a bad record: {raw[:200]!r}")


def test_too_late_relative_to_the_partition_watermark() -> None:
    watermark = datetime(2018, 4, 1, 12, tzinfo=timezone.utc)
    ok = encode({**GOOD, "event_time": "2018-04-01T11:30:00+00:00"})
    late = encode({**GOOD, "event_time": "2018-04-01T10:59:59+00:00"})
    assert VALIDATOR.transaction(ok, watermark).transaction_id == "t1"
    try:
        VALIDATOR.transaction(late, watermark)
    except ValidationFailed as exc:
        assert exc.reason == "too_late"
    else:
        raise AssertionError("a transaction older than the allowed lateness was accepted")
