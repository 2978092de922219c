"""Regression: numeric times in every spelling pydantic reads as Unix seconds are refused (models/events.py)."""
import json
from datetime import datetime, timezone
from decimal import Decimal

import numpy as np
import pytest
from pydantic import ValidationError

from fraudstream.models.events import Label, Transaction

BASE = {"transaction_id": "t1", "customer_id": "c1", "terminal_id": "m1", "amount": 1.0}


@pytest.mark.parametrize("text", ["1.7e9", "1.7E9", "1.7e+9", "1.7e09", ".5e10", "1717236000.", "0.0", "00000000"])
def test_a_number_in_exponent_or_dotted_spelling_is_refused_on_the_wire(text: str) -> None:
    with pytest.raises(ValidationError, match="must be ISO-8601 text"):
        Transaction.model_validate_json(json.dumps({**BASE, "event_time": text}))
    label = {"transaction_id": "t1", "customer_id": "c1", "is_fraud": True, "event_time": "2024-06-01T10:00:00Z",
             "reported_at": text}
    with pytest.raises(ValidationError, match="must be ISO-8601 text"):
        Label.model_validate_json(json.dumps(label))


@pytest.mark.parametrize("value", [Decimal("1717236000"), np.int64(1717236000), np.float64(1.7e9), b"1717236000",
                                   b"1.7e9"])
def test_a_number_from_python_is_refused_whatever_its_type(value: object) -> None:
    with pytest.raises(ValidationError, match="must be ISO-8601 text"):
        Transaction(**{**BASE, "event_time": value})


@pytest.mark.parametrize("value", ["2024-06-01T10:00:00Z", "2024-06-01 10:00:00Z", "2024-06-01T10:00:00.5+02:00",
                                   "2024-06-01", datetime(2024, 6, 1, 10, tzinfo=timezone.utc)])
def test_iso_times_and_datetimes_still_pass(value: object) -> None:
    assert Transaction(**{**BASE, "event_time": value}).event_time.year == 2024
