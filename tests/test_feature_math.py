"""The batch feature math (`derive_matrix`) gives the floats of the one-at-a-time math (`derive`),
and the batch record codec (`encode_records`) the bytes of `encode_record`, one value at a time."""

from __future__ import annotations

import math
import random
import struct
from datetime import datetime, timedelta, timezone

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraudstream.models.events import Transaction
from fraudstream.stream.feature_math import FeatureConfig, derive, derive_matrix
from fraudstream.stream.features import FeatureEngine
from fraudstream.stream.schema import (DERIVED_FEATURES, FEATURE_NAMES, MONEY_FEATURES, StoredRecord, decode_record,
                                       encode_record, encode_records)
from fraudstream.stream.state import MemoryStore

T0 = datetime(2024, 3, 1, tzinfo=timezone.utc)


def case(rng: random.Random, i: int, huge: bool = False) -> tuple[Transaction, int, int, tuple[int, ...], tuple[int, ...]]:
    """A transaction with aggregates that reach every branch: no previous transaction, equal amounts
    (no spread), a zero mean, coordinates with and without a home or a previous position, terminals
    without transactions or frauds."""
    amount = rng.choice([0.0, 0.01, 12.34, round(rng.expovariate(0.01), 2), 999.99])
    if huge:
        amount = 9e8 + i
    cents = round(amount * 100)
    nb30 = rng.choice([1, 1, 2, 3, 40])
    other = [rng.choice([0, cents, rng.randint(0, 50_000)]) for _ in range(nb30 - 1)]
    c30 = cents + sum(other)
    sq30 = cents * cents + sum(c * c for c in other)
    nb7 = rng.randint(1, nb30)
    nb1 = rng.randint(1, nb7)
    nbh = rng.randint(1, nb1)
    coords = rng.random() < 0.4
    hn = rng.choice([0, 3]) if coords else 0
    pcoord = rng.choice([0, 1]) if coords else 0
    cust = (nb1, cents * nb1, nb7, cents * nb7, nb30, c30, sq30, nbh, cents * nbh, rng.randint(1, nbh),
            rng.choice([-1, 0, 30_000, 5_000_000]), rng.randint(1, 5), rng.randint(0, 1),
            hn * 48_000_000, hn * 2_000_000, hn, 51_500_000 * pcoord, -120_000 * pcoord, pcoord)
    ta, tb, tc = (rng.choice([0, 1, 9]) for _ in range(3))
    term = (ta, rng.randint(0, ta), tb, rng.randint(0, tb), tc, rng.randint(0, tc), rng.randint(0, 4),
            rng.randint(0, 3), rng.randint(0, 1), rng.randint(0, 1), rng.choice([-1, 0, 86_400_000 * 3 + 17]))
    position = {"latitude": 48.85 + rng.random(), "longitude": 2.35 - rng.random()} if coords else {}
    t = T0 + timedelta(seconds=rng.randint(0, 14 * 86400), milliseconds=rng.randint(0, 999))
    tx = Transaction(transaction_id=f"t{i}", customer_id="c", terminal_id="m", amount=amount, event_time=t, **position)
    t_ms = int((t - datetime(1970, 1, 1, tzinfo=timezone.utc)).total_seconds() * 1000)
    return tx, t_ms, cents, cust, term


@pytest.mark.parametrize("huge", [False, True])
def test_matrix_rows_equal_one_at_a_time_features(huge: bool) -> None:
    rng = random.Random(11)
    cases = [case(rng, i, huge=huge and i == 7) for i in range(400)]
    config = FeatureConfig()
    expected = [list(derive(*c, config).values()) for c in cases]
    got = derive_matrix(*map(list, zip(*cases)), config).tolist()
    assert list(map(repr, got)) == list(map(repr, expected))  # float for float (and -0.0 is not 0.0)
    column = {name: j for j, name in enumerate(FEATURE_NAMES)}
    # every branch was taken
    assert {row[column["customer_amount_zscore_30d"]] == 0.0 for row in got} == {True, False}
    assert {row[column["has_coordinates"]] for row in got} == {0.0, 1.0}
    assert any(row[column["customer_speed_from_prev_kmh"]] > 0 for row in got)
    assert any(row[column["TERMINAL_ID_RISK_7DAY_WINDOW"]] > 0 for row in got)
    assert any(row[column["terminal_days_since_fraud"]] == 60.0 for row in got)
    assert not any(math.isnan(v) for row in got for v in row)


def test_sums_of_squares_beyond_int64_are_derived_with_python_integers() -> None:
    rng = random.Random(4)
    cases = [case(rng, i) for i in range(100)]
    tx, t_ms, cents, cust, term = cases[9]
    cases[9] = (tx, t_ms, cents, cust[:6] + (2 ** 64 + 12_345,) + cust[7:], term)  # int64 cannot hold it
    config = FeatureConfig()
    got = derive_matrix(*map(list, zip(*cases)), config).tolist()
    assert got == [list(derive(*c, config).values()) for c in cases]


def test_engine_batches_equal_one_transaction_at_a_time() -> None:
    """A batch large enough for the matrix path gets the features of one-at-a-time transforms, also
    for transactions delivered again and reused ids."""
    rng = random.Random(3)
    txs = [Transaction(transaction_id=f"t{i}", customer_id=f"c{i % 7}", terminal_id=f"m{i % 5}",
                       amount=round(rng.expovariate(0.02), 2), event_time=T0 + timedelta(minutes=13 * i),
                       **({"latitude": 40.0 + i % 9, "longitude": -3.5} if i % 4 else {})) for i in range(300)]
    one, batched = FeatureEngine(MemoryStore()), FeatureEngine(MemoryStore())
    expected = [one.transform([tx])[0] for tx in txs]
    assert batched.transform(txs) == expected
    again = txs[:50] + [txs[60].model_copy(update={"amount": 1.0})]  # the same ids; one with another amount
    batch = batched.transform_batch(again)
    assert batch.conflict == [False] * 50 + [True]
    assert all(s is None for s in batch.stored)  # nothing was recorded: no stored records
    assert batch.rows()[:50] == expected[:50] and batch.rows()[50] is None
    assert batch.features[50].tolist() == [0.0] * len(FEATURE_NAMES)
    # scored before: the stored record, and its features in the row
    batched.record_scored(txs[:40], expected[:40], [{"m": i / 40} for i in range(40)])  # type: ignore[arg-type]
    batch = batched.transform_batch(txs[:60])
    assert [s is not None for s in batch.stored] == [True] * 40 + [False] * 20
    assert [s.scores for s in batch.stored[:40]] == [{"m": i / 40} for i in range(40)]  # type: ignore[union-attr]
    assert batch.rows() == expected[:60]
    assert batch.features.tolist() == [list(x.values()) for x in expected[:60]]  # type: ignore[union-attr]


def record_as_written_before(rec: StoredRecord) -> bytes:
    """The record codec before money was packed as cents: whole counts and flags as integers, every
    other value a float. Redis may still hold records written by it."""
    whole = [i for i, name in enumerate(FEATURE_NAMES)
             if "_NB_" in name or "_nb_" in name or name.startswith(("TX_DURING", "has_")) or "first_use" in name
             or name.startswith(("terminal_frauds_", "terminal_last_is_"))]
    values = [float(rec.features[name]) for name in FEATURE_NAMES]
    for i in whole:
        if values[i].is_integer() and -2.0 ** 53 < values[i] < 2.0 ** 53:
            values[i] = int(values[i])  # type: ignore[call-overload]
    fields = [rec.t_ms, rec.terminal_id, values, rec.scores] + ([rec.alert] if rec.alert is not None else [])
    return msgpack.packb(fields, use_bin_type=True)


def record_one_value_at_a_time(rec: StoredRecord) -> bytes:
    """The record codec, one value at a time: a value that is a whole number of its unit (a cent
    for money, 1 otherwise) as that number, where dividing it by the unit gives the value back; a
    derivable feature (a mean as its sum over its count, the ratio to the previous 30-day mean) as
    None where the derivation gives back the very same float; the time within its hour."""
    def packed(value: float, unit: float) -> float | int:
        if not math.isfinite(value) or (value == 0.0 and math.copysign(1.0, value) < 0):
            return value
        count = round(value * unit)
        return count if abs(count) < 2 ** 53 and count / unit == value else value

    x = {name: float(rec.features[name]) for name in FEATURE_NAMES}

    def derived(name: str) -> float | None:
        try:
            if name == "customer_amount_over_mean_30d":
                nb, amount = x["CUSTOMER_ID_NB_TX_30DAY_WINDOW"], x["TX_AMOUNT"]
                sum_cents = float(round(x["CUSTOMER_ID_AVG_AMOUNT_30DAY_WINDOW"] * nb * 100.0))
                previous_mean = (sum_cents - float(round(amount * 100.0))) / 100.0 / (nb - 1.0)
                return amount / previous_mean if math.isfinite(previous_mean) else None
            total, count = DERIVED_FROM[name]
            return x[total] / x[count]
        except (ZeroDivisionError, OverflowError, ValueError):
            return None

    def same(a: float | None, b: float) -> bool:
        return a is not None and math.isfinite(a) and struct.pack("<d", a) == struct.pack("<d", b)

    values = [None if name in DERIVED_FEATURES and same(derived(name), x[name])
              else packed(x[name], 100.0 if name in MONEY_FEATURES else 1.0) for name in FEATURE_NAMES]
    fields = [rec.t_ms % 3_600_000, rec.terminal_id, values, rec.scores] + ([rec.alert] if rec.alert is not None else [])
    return msgpack.packb(fields, use_bin_type=True)


DERIVED_FROM = {"customer_mean_amount_1h": ("customer_sum_amount_1h", "customer_nb_tx_1h"),
                "CUSTOMER_ID_AVG_AMOUNT_1DAY_WINDOW": ("customer_sum_amount_1d", "CUSTOMER_ID_NB_TX_1DAY_WINDOW"),
                "CUSTOMER_ID_AVG_AMOUNT_7DAY_WINDOW": ("customer_sum_amount_7d", "CUSTOMER_ID_NB_TX_7DAY_WINDOW")}


def test_batch_encoding_equals_one_record_at_a_time() -> None:
    rng = np.random.default_rng(5)
    features = np.round(rng.exponential(20.0, size=(64, len(FEATURE_NAMES))), 2)
    features[::2, :] = rng.exponential(20.0, size=(32, len(FEATURE_NAMES)))  # not whole cents either
    features[:, FEATURE_NAMES.index("CUSTOMER_ID_NB_TX_1DAY_WINDOW")] = np.arange(64)
    features[3, FEATURE_NAMES.index("terminal_nb_last_3")] = 2.5  # a count that is not whole: kept a float
    features[4, FEATURE_NAMES.index("terminal_nb_last_3")] = float("nan")
    features[5, FEATURE_NAMES.index("has_coordinates")] = 2.0 ** 60  # whole but not exact as a float
    features[7, FEATURE_NAMES.index("customer_amount_zscore_30d")] = -0.0
    features[9, FEATURE_NAMES.index("TX_AMOUNT")] = 3e14  # whole, but too many cents to be exact
    features[11, FEATURE_NAMES.index("TX_AMOUNT")] = float("inf")
    features[13, FEATURE_NAMES.index("TERMINAL_ID_RISK_30DAY_WINDOW")] = 0.0  # a whole risk: an integer
    times = [1_714_521_600_000 + i for i in range(64)]
    terminals = [f"m{i}" for i in range(64)]
    scores = [{"gbt_window": i / 64} for i in range(64)]
    alerts = [b'{"alert": 1}' if i % 9 == 0 else None for i in range(64)]
    records = [StoredRecord(t, m, dict(zip(FEATURE_NAMES, row)), s, a)
               for t, m, row, s, a in zip(times, terminals, features.tolist(), scores, alerts)]
    encoded = encode_records(times, terminals, features, scores, alerts)
    assert encoded == [encode_record(r) for r in records] == [record_one_value_at_a_time(r) for r in records]
    for old, new, record in zip(map(record_as_written_before, records), encoded, records):
        if record is not records[4]:  # NaN != NaN
            assert decode_record(new, record.t_ms) == decode_record(old, record.t_ms) == record  # old ones read too
    decoded = [decode_record(p, t) for p, t in zip(encoded, times)]
    assert decoded[4].features["terminal_nb_last_3"] != decoded[4].features["terminal_nb_last_3"]  # NaN
    assert math.copysign(1.0, decoded[7].features["customer_amount_zscore_30d"]) == -1.0
    # whole counts and whole cents are packed as integers, the rest as floats
    amount, zscore = FEATURE_NAMES.index("TX_AMOUNT"), FEATURE_NAMES.index("customer_amount_zscore_30d")
    values = msgpack.unpackb(encoded[1])[2]
    assert type(values[FEATURE_NAMES.index("CUSTOMER_ID_NB_TX_1DAY_WINDOW")]) is int
    assert values[amount] == round(features[1, amount] * 100)
    assert type(msgpack.unpackb(encoded[0])[2][amount]) is float  # not whole cents
    assert [type(msgpack.unpackb(encoded[i])[2][amount]) for i in (9, 11)] == [float, float]
    assert type(msgpack.unpackb(encoded[7])[2][zscore]) is float  # -0.0
    assert type(msgpack.unpackb(encoded[13])[2][FEATURE_NAMES.index("TERMINAL_ID_RISK_30DAY_WINDOW")]) is int
    assert type(msgpack.unpackb(encoded[3])[2][FEATURE_NAMES.index("terminal_nb_last_3")]) is float
    # whole cents: 3 or 5 bytes of the 9 of a float, for 8 of the 35 values
    assert sum(map(len, encoded[1::2])) < 0.9 * sum(len(record_as_written_before(r)) for r in records[1::2])


def _whole_cents(cents: int) -> float:
    return cents / 100


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True),
                          st.integers(-2 ** 60, 2 ** 60).map(_whole_cents),
                          st.integers(-2 ** 60, 2 ** 60).map(float),
                          st.sampled_from([0.0, -0.0, 2.0 ** 53, 2.0 ** 53 - 1, 2.0 ** 53 / 100, 1e306])),
                min_size=len(FEATURE_NAMES), max_size=len(FEATURE_NAMES)))
def test_record_codec_gives_back_every_float_bit_for_bit(values: list[float]) -> None:
    """Whatever the features (money or not, whole cents or not, -0.0, NaN, infinities, subnormals,
    magnitudes around 2^53 and beyond), a record decodes to the very same floats."""
    rec = StoredRecord(1_714_521_600_000, "m1", dict(zip(FEATURE_NAMES, values)), {"logreg": 0.5})
    back = decode_record(encode_record(rec), rec.t_ms).features
    assert [struct.pack("<d", back[name]) for name in FEATURE_NAMES] == [struct.pack("<d", v) for v in values]


def test_records_of_engine_features_leave_out_what_follows_and_read_back_bit_for_bit() -> None:
    """Features as the engine computes them (`case`'s branches, huge amounts too): every mean of a
    window with transactions and most ratios are packed as nil, and every record reads back the
    very same floats and time, from a time of the same hour."""
    rng = random.Random(23)
    cases = [case(rng, i, huge=i % 50 == 7) for i in range(400)]
    rows = np.array([list(derive(*c, FeatureConfig()).values()) for c in cases], dtype=np.float64)
    times = [c[1] for c in cases]
    encoded = encode_records(times, ["m"] * len(cases), rows, [{"gbt_window": 0.5}] * len(cases), [None] * len(cases))
    columns = {name: FEATURE_NAMES.index(name) for name in DERIVED_FEATURES}
    nils = {name: sum(msgpack.unpackb(p)[2][j] is None for p in encoded) for name, j in columns.items()}
    assert all(n == len(cases) for name, n in nils.items() if name != "customer_amount_over_mean_30d"), nils
    with_previous = sum(c[3][4] > 1 and c[2] < c[3][5] for c in cases)  # a previous transaction, a positive mean
    assert nils["customer_amount_over_mean_30d"] >= 0.9 * with_previous > 0
    for payload, t_ms, row in zip(encoded, times, rows.tolist()):
        hour_start = t_ms - t_ms % 3_600_000
        for hint in (t_ms, hour_start, hour_start + 3_599_999):
            back = decode_record(payload, hint)
            assert back.t_ms == t_ms
            assert [struct.pack("<d", back.features[n]) for n in FEATURE_NAMES] == [struct.pack("<d", v) for v in row]
    assert encoded == [record_one_value_at_a_time(StoredRecord(t, "m", dict(zip(FEATURE_NAMES, row)), {"gbt_window": 0.5}))
                       for t, row in zip(times, rows.tolist())]


_ANY_FLOAT = st.one_of(st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True),
                       st.integers(-2 ** 60, 2 ** 60).map(_whole_cents), st.integers(0, 60).map(float),
                       st.sampled_from([0.0, -0.0, 1.0, 2.0 ** 53, 1e306, 5e-324]))


@settings(max_examples=400, deadline=None)
@given(st.lists(_ANY_FLOAT, min_size=len(FEATURE_NAMES), max_size=len(FEATURE_NAMES)), st.integers(0, 2 ** 42))
def test_derived_features_read_back_bit_for_bit_whatever_their_inputs(values: list[float], t_ms: int) -> None:
    """Each derivable feature set to exactly what its derivation gives from arbitrary inputs (zero
    counts, overflows, NaN, -0.0, huge sums), so that the codec may leave it out: the record still
    reads back the very same floats."""
    x = dict(zip(FEATURE_NAMES, values))
    with np.errstate(all="ignore"):
        for mean, (total, count) in DERIVED_FROM.items():
            x[mean] = float(np.float64(x[total]) / np.float64(x[count]))
        nb, amount = np.float64(x["CUSTOMER_ID_NB_TX_30DAY_WINDOW"]), np.float64(x["TX_AMOUNT"])
        sum_cents = np.rint(np.float64(x["CUSTOMER_ID_AVG_AMOUNT_30DAY_WINDOW"]) * nb * 100.0)
        x["customer_amount_over_mean_30d"] = float(amount / ((sum_cents - np.rint(amount * 100.0)) / 100.0 / (nb - 1.0)))
    rec = StoredRecord(t_ms, "m1", x, {"logreg": 0.5})
    back = decode_record(encode_record(rec), t_ms).features
    assert [struct.pack("<d", back[name]) for name in FEATURE_NAMES] == [struct.pack("<d", x[name]) for name in FEATURE_NAMES]


def test_a_float32_matrix_is_encoded_as_its_float64_values() -> None:
    """The decoder derives in float64, so the encoder checks derivations in float64 too."""
    rows = np.full((1, len(FEATURE_NAMES)), 1.0, dtype=np.float32)
    rows[0, FEATURE_NAMES.index("customer_sum_amount_1h")] = 1.0
    rows[0, FEATURE_NAMES.index("customer_nb_tx_1h")] = 30.0
    rows[0, FEATURE_NAMES.index("customer_mean_amount_1h")] = np.float32(1.0) / np.float32(30.0)
    payload = encode_records([0], ["m"], rows, [{}], [None])[0]
    back = decode_record(payload, 0).features
    assert [back[name] for name in FEATURE_NAMES] == rows[0].astype(np.float64).tolist()
