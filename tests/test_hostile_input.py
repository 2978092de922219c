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
REASONS = {"empty", "oversized", "invalid_json", "invalid_fields", "future_event_time", "future_report_time", "too_late"}


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


LABEL = {"transaction_id": "t1", "customer_id": "c1", "is_fraud": True, "event_time": "2024-03-06T00:00:00+00:00",
         "reported_at": "2024-03-13T00:00:00+00:00"}


def test_labels_reported_before_their_transaction_or_in_the_future_are_refused() -> None:
    now = datetime(2026, 12, 7, tzinfo=timezone.utc)
    assert VALIDATOR.label(encode(LABEL), now=now).reported_at == datetime(2024, 3, 13, tzinfo=timezone.utc)
    assert VALIDATOR.label(encode({**LABEL, "reported_at": LABEL["event_time"]}), now=now).is_fraud  # at once: fine
    cases = {"2020-01-01T00:00:00+00:00": ("invalid_fields", "is before event_time"),
             "2099-01-01T00:00:00+00:00": ("future_report_time", "reported_at 2099-01-01T00:00:00+00:00 is in the future")}
    for reported_at, (reason, detail) in cases.items():
        try:
            VALIDATOR.label(encode({**LABEL, "reported_at": reported_at}), now=now)
        except ValidationFailed as exc:
            assert exc.reason == reason and detail in str(exc), (reported_at, exc.reason, str(exc))
        else:
            raise AssertionError(f"accepted a label reported at {reported_at}")
    # no limit (a simulated clock ahead of the wall clock): the future report time is accepted
    unlimited = RecordValidator(max_record_bytes=4096, max_future_skew=None, allowed_lateness=timedelta(hours=1))
    assert unlimited.label(encode({**LABEL, "reported_at": "2099-01-01T00:00:00+00:00"}), now=now).is_fraud


def test_invalid_json_reads_alike_for_transactions_and_labels() -> None:
    details = []
    for check in (lambda raw: VALIDATOR.transaction(raw, watermark=None), VALIDATOR.label):
        try:
            check(b"{not json")
        except ValidationFailed as exc:
            details.append((exc.reason, str(exc)))
    assert len(details) == 2 and details[0] == details[1] and details[0][0] == "invalid_json"
