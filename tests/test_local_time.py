"""The night and weekend flags in a local time zone: the batch conversion (one zoneinfo look-up per
distinct hour) equals zoneinfo row by row over a whole year with its DST changes, and `derive`
(one row) equals `derive_matrix` (a batch) equals zoneinfo's wall clock."""

from __future__ import annotations

import random
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from fraudstream.stream.feature_math import FeatureConfig, derive, derive_matrix
from fraudstream.stream.local_time import local_seconds, local_seconds_array, utc_offset
from fraudstream.stream.schema import FEATURE_NAMES
from tests.test_feature_math import case

ZONES = ["America/New_York", "Europe/London", "Asia/Kolkata", "Australia/Lord_Howe"]
YEAR = (int(datetime(2024, 1, 1, tzinfo=timezone.utc).timestamp()), int(datetime(2025, 1, 1, tzinfo=timezone.utc).timestamp()))
WEEKEND, NIGHT = FEATURE_NAMES.index("TX_DURING_WEEKEND"), FEATURE_NAMES.index("TX_DURING_NIGHT")


def changes(zone: ZoneInfo) -> list[int]:
    """The epoch seconds of the year at which the zone's UTC offset changes (found to the second)."""
    found = []
    start, end = YEAR
    for t in range(start, end, 900):
        if utc_offset(t, zone) != utc_offset(t + 900, zone):
            low, high = t, t + 900  # offset(low) != offset(high): bisect to the first second of the new one
            while high - low > 1:
                mid = (low + high) // 2
                low, high = (mid, high) if utc_offset(mid, zone) == utc_offset(t, zone) else (low, mid)
            found.append(high)
    return found


def year_of_seconds(zone: ZoneInfo) -> np.ndarray:
    """Every minute of 2024 at a random second, and every second of the two hours around each change."""
    rng = np.random.default_rng(7)
    start, end = YEAR
    minutes = np.arange(start, end, 60, dtype=np.int64) + rng.integers(0, 60, (end - start) // 60)
    around = [np.arange(t - 3600, t + 3600, dtype=np.int64) for t in changes(zone)]
    return np.concatenate([minutes, *around])


def wall_clock(seconds: int, zone: ZoneInfo) -> int:
    """zoneinfo's local date and time of an epoch second, as seconds since 1970-01-01 00:00 local."""
    local = datetime.fromtimestamp(seconds, zone).replace(tzinfo=timezone.utc)
    return int(local.timestamp())


@pytest.mark.parametrize("name", ZONES)
def test_batches_convert_a_year_as_zoneinfo_does_row_by_row(name: str) -> None:
    zone = ZoneInfo(name)
    found = changes(zone)
    assert len(found) == (0 if name == "Asia/Kolkata" else 2)  # the year's two DST changes
    seconds = year_of_seconds(zone)
    expected = np.array([wall_clock(t, zone) for t in seconds.tolist()], dtype=np.int64)
    assert [local_seconds(t, zone) for t in seconds[::97].tolist()] == expected[::97].tolist()
    for start in range(0, len(seconds), 2000):  # as the consumer's batches, in time order
        np.testing.assert_array_equal(local_seconds_array(seconds[start:start + 2000], zone),
                                      expected[start:start + 2000])
    shuffled = np.random.default_rng(3).permutation(len(seconds))[:5000]  # and out of order
    np.testing.assert_array_equal(local_seconds_array(seconds[shuffled], zone), expected[shuffled])


def test_lord_howe_changes_within_an_hour_of_utc() -> None:
    """Lord Howe Island's DST (+10:30 to +11:00) starts at 02:00 local, 15:30 UTC: an offset per epoch
    hour alone would be wrong for half an hour, which the batch conversion gets right."""
    zone = ZoneInfo("Australia/Lord_Howe")
    starts = [t for t in changes(zone) if utc_offset(t, zone) == 11 * 3600]
    assert [datetime.fromtimestamp(t, timezone.utc).strftime("%H:%M") for t in starts] == ["15:30"]
    hour = np.arange(starts[0] - 1800, starts[0] + 1800, dtype=np.int64)
    per_hour = hour + utc_offset(int(hour[0]), zone)
    assert (per_hour != [wall_clock(t, zone) for t in hour.tolist()]).sum() == 1800
    np.testing.assert_array_equal(local_seconds_array(hour, zone), [wall_clock(t, zone) for t in hour.tolist()])


def test_utc_is_not_converted() -> None:
    seconds = np.array([0, 1_709_953_200], dtype=np.int64)
    assert local_seconds_array(seconds, None) is seconds
    assert FeatureConfig().zone is None and FeatureConfig(local_timezone="Etc/UTC").zone is None


@pytest.mark.parametrize("name", ZONES)
def test_flags_one_at_a_time_in_a_batch_and_by_zoneinfo_agree(name: str) -> None:
    """Transactions at random seconds of 2024 and around each DST change: `derive` and `derive_matrix`
    give the same vectors, whose flags are zoneinfo's local weekday >= 5 and hour <= 6."""
    rng = random.Random(5)
    zone, config = ZoneInfo(name), FeatureConfig(local_timezone=name)
    instants = [rng.randrange(*YEAR) for _ in range(300)]
    instants += [t + rng.randrange(-7200, 7200) for t in changes(zone) for _ in range(100)]
    cases = []
    for i, t in enumerate(sorted(instants)):
        tx, _, cents, cust, term = case(rng, i)
        event_time = datetime.fromtimestamp(t, timezone.utc)
        cases.append((tx.model_copy(update={"event_time": event_time}), t * 1000, cents, cust, term))
    rows = np.array([list(derive(*c, config).values()) for c in cases], dtype=np.float64)
    matrix = derive_matrix(*zip(*cases), config)
    np.testing.assert_array_equal(matrix, rows)
    local = [datetime.fromtimestamp(t, zone) for t in sorted(instants)]
    np.testing.assert_array_equal(rows[:, WEEKEND], [float(d.weekday() >= 5) for d in local])
    np.testing.assert_array_equal(rows[:, NIGHT], [float(d.hour <= 6) for d in local])
    utc = derive_matrix(*zip(*cases), FeatureConfig())
    assert (utc[:, NIGHT] != matrix[:, NIGHT]).any()  # the zone changed some flags...
    others = [j for j in range(len(FEATURE_NAMES)) if j not in (WEEKEND, NIGHT)]
    np.testing.assert_array_equal(utc[:, others], matrix[:, others])  # ...and nothing else
