"""Labels' "applied" markers on the real Redis: fields of one hash per hour of the labelled
transactions' event time, with the longest time to live their labels asked for; markers kept one
key per label by an older fraudstream still count once `fraudstream migrate-records` moved them."""

from __future__ import annotations

from click.testing import CliRunner

from fraudstream.cli import main
from fraudstream.config import Settings
from fraudstream.stream.label_stream import LabelEntry, LabelOutcome
from fraudstream.stream.legacy_markers import migrate_legacy_markers
from fraudstream.stream.registry import registry_for

X = {"TX_AMOUNT": 12.5, "N": 2.0}
HOUR = 425_000  # 2018-06-25T08:00Z in whole hours since the epoch
DAY_MS = 86_400_000


def test_a_label_is_appended_once_and_its_marker_is_a_field_of_its_hours_hash(settings: Settings) -> None:
    registry = registry_for(settings)
    first = [LabelEntry(X, True, {}, "c1:t1", 2 * DAY_MS, HOUR), LabelEntry(X, False, {}, "c2:t2", DAY_MS, HOUR),
             LabelEntry(X, False, {}, "c1:t3", DAY_MS, HOUR + 1)]
    assert registry.append_labels(first) == [LabelOutcome.APPENDED] * 3
    again = [LabelEntry(X, True, {}, "c1:t1", DAY_MS, HOUR), LabelEntry(X, True, {}, "c2:t2", DAY_MS, HOUR),
             LabelEntry(None, False, {}, "c1:t3", None, HOUR + 1), LabelEntry(None, False, {}, "c9:t9", None, HOUR)]
    assert registry.append_labels(again) == [LabelOutcome.DUPLICATE, LabelOutcome.CONFLICT,
                                             LabelOutcome.DUPLICATE, LabelOutcome.UNKNOWN]
    assert registry.client.xlen(registry.key("labels")) == 3  # nothing appended twice

    client = registry.client
    hour = registry.key("markers", str(HOUR))
    assert client.hgetall(hour) == {b"c1:t1": b"1", b"c2:t2": b"0"}
    assert client.hgetall(registry.key("markers", str(HOUR + 1))) == {b"c1:t3": b"0"}
    # the longest time to live asked for, not lowered by a later, shorter one
    assert DAY_MS < client.pttl(hour) <= 2 * DAY_MS
    assert DAY_MS - 60_000 < client.pttl(registry.key("markers", str(HOUR + 1))) <= DAY_MS
    registry.append_labels([LabelEntry(X, True, {}, "c3:t4", 1000, HOUR)])
    assert client.pttl(hour) > DAY_MS
    assert not list(client.scan_iter(match=registry.key("applied", "*")))  # no key per label


def test_markers_of_an_older_version_are_moved_and_still_count(settings: Settings) -> None:
    registry = registry_for(settings)
    client = registry.client
    for i, verdict in enumerate("1010"):  # the layout before 2026-12-05: a key per label
        client.set(registry.key("applied", f"c{i}:t{i}"), verdict, px=(i + 1) * DAY_MS)
    client.set(registry.key("applied", "c9:t9"), "1")  # one without a time to live
    client.set(registry.key("champion"), "logreg")  # not a marker: left alone

    result = CliRunner().invoke(main, ["migrate-records"], env={"FRAUDSTREAM_REDIS_URL": settings.redis_url,
                                                                 "FRAUDSTREAM_REDIS_KEY_PREFIX": settings.redis_key_prefix})
    assert result.exit_code == 0, result.output
    assert "moved 5 label markers" in result.output
    legacy = registry.key("markers", "legacy")
    assert client.hgetall(legacy) == {b"c0:t0": b"1", b"c1:t1": b"0", b"c2:t2": b"1", b"c3:t3": b"0", b"c9:t9": b"1"}
    assert 8 * DAY_MS < client.pttl(legacy) <= 9 * DAY_MS  # the default marker life, the longest here
    assert not list(client.scan_iter(match=registry.key("applied", "*")))
    assert client.get(registry.key("champion")) == b"logreg"
    assert migrate_legacy_markers(registry) == 0  # idempotent

    # a label delivered again after the upgrade, its scored record still there, is not learned twice
    outcomes = registry.append_labels([LabelEntry(X, True, {}, "c0:t0", DAY_MS, HOUR),
                                       LabelEntry(X, True, {}, "c1:t1", DAY_MS, HOUR),
                                       LabelEntry(None, True, {}, "c2:t2", None, HOUR),
                                       LabelEntry(X, True, {}, "c5:t5", DAY_MS, HOUR)])
    assert outcomes == [LabelOutcome.DUPLICATE, LabelOutcome.CONFLICT, LabelOutcome.DUPLICATE, LabelOutcome.APPENDED]
    assert client.xlen(registry.key("labels")) == 1
    assert client.hgetall(registry.key("markers", str(HOUR))) == {b"c5:t5": b"1"}  # new markers: the new layout
