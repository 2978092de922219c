"""Local wall-clock seconds of event times in one IANA time zone, for the night and weekend flags.

`local_seconds` converts one epoch second with zoneinfo; `local_seconds_array` a batch's, asking
zoneinfo only twice per distinct epoch hour of the batch (its first and last second): an hour whose
two ends have the same UTC offset has it throughout, and the few rows of an hour in which the offset
changes (a DST change, at a whole or half hour of UTC: Lord Howe Island's, Newfoundland's) are
converted one at a time. The two give the same seconds (tests/test_local_time.py checks a year of
four zones against zoneinfo). A zone of None is UTC: the seconds are returned as they are.

>>> from zoneinfo import ZoneInfo
>>> ny = ZoneInfo("America/New_York")
>>> t = 1_709_953_200  # 2024-03-09T03:00:00Z, Friday 22:00 in New York
>>> local_seconds(t, ny) - t, local_seconds(t, None) - t
(-18000, 0)
>>> local_seconds_array(np.array([t, t + 86400 * 2]), ny).tolist() == [local_seconds(t, ny), local_seconds(t + 86400 * 2, ny)]
True
"""

from __future__ import annotations

import zoneinfo
from datetime import datetime, timedelta
from functools import lru_cache
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

# Names of zones that are UTC at every instant: no conversion at all
UTC_NAMES = frozenset({"UTC", "Etc/UTC", "Etc/UCT", "UCT", "Etc/Universal", "Universal", "Etc/Zulu", "Zulu",
                       "GMT", "Etc/GMT", "Etc/GMT0", "Etc/GMT+0", "Etc/GMT-0", "GMT0", "GMT+0", "GMT-0", "Greenwich",
                       "Etc/Greenwich"})


@lru_cache(maxsize=16)
def zone_named(name: str) -> ZoneInfo | None:
    """The zone of an IANA name; None for UTC (whose local time is the event time itself).

    >>> zone_named("UTC") is None, zone_named("Europe/London")
    (True, zoneinfo.ZoneInfo(key='Europe/London'))
    """
    return None if name in UTC_NAMES else ZoneInfo(name)


def same_zone(a: str, b: str) -> bool:
    """Whether two IANA names give the same local times: the same name, two names of UTC, or two
    names of one zone (a link such as ``US/Eastern`` to ``America/New_York``: the same TZif data).

    >>> same_zone("UTC", "Etc/UTC"), same_zone("US/Eastern", "America/New_York"), same_zone("UTC", "Europe/London")
    (True, True, False)
    """
    if a == b or (a in UTC_NAMES and b in UTC_NAMES):
        return True
    data = _tzif(a)
    return data is not None and data == _tzif(b)


@lru_cache(maxsize=16)
def _tzif(name: str) -> bytes | None:
    """The TZif data of zone `name` where zoneinfo finds it (`zoneinfo.TZPATH`, then the tzdata
    package); None for a name zoneinfo does not know."""
    try:
        ZoneInfo(name)  # (refuses a name that is not a zone's, such as a path)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None
    for root in zoneinfo.TZPATH:
        path = Path(root, name)
        if path.is_file():
            return path.read_bytes()
    try:
        return resources.files("tzdata.zoneinfo").joinpath(name).read_bytes()
    except (ModuleNotFoundError, OSError):
        return None


def utc_offset(seconds: int, zone: ZoneInfo) -> int:
    """The zone's UTC offset in seconds at the epoch second `seconds`.

    >>> utc_offset(1_700_000_000, ZoneInfo("Asia/Kolkata"))
    19800
    """
    offset = datetime.fromtimestamp(seconds, zone).utcoffset()
    return int((offset or timedelta(0)).total_seconds())


def local_seconds(seconds: int, zone: ZoneInfo | None) -> int:
    """Epoch second `seconds` as the wall-clock seconds of the zone (seconds since 1970-01-01 00:00
    local), from which day of the week and hour are read as from UTC's."""
    return seconds if zone is None else seconds + utc_offset(seconds, zone)


def local_seconds_array(seconds: np.ndarray, zone: ZoneInfo | None) -> np.ndarray:
    """`local_seconds` of every element of an int64 array of epoch seconds."""
    if zone is None or len(seconds) == 0:
        return seconds
    hours, inverse = np.unique(seconds // 3600, return_inverse=True)
    inverse = inverse.reshape(-1)  # (numpy 2.0 gave it the input's shape)
    offsets = np.empty(len(hours), dtype=np.int64)
    changing = []
    for k, hour in enumerate(hours.tolist()):
        first, last = utc_offset(hour * 3600, zone), utc_offset(hour * 3600 + 3599, zone)
        offsets[k] = first
        if first != last:
            changing.append(k)
    out = seconds + offsets[inverse]
    for k in changing:  # the rows of an hour in which the offset changes: each its own
        for i in np.flatnonzero(inverse == k).tolist():
            out[i] = local_seconds(int(seconds[i]), zone)
    return out
