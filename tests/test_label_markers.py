"""Labels' "applied" markers on the real Redis: fields of one hash per hour of the labelled
transactions' event time, with the longest time to live their labels asked for; markers kept one
key per label by an older fraudstream still count once `fraudstream migrate-records` moved them."""

from __future__ import annotations

from click.testing import CliRunner

from fraudstream.cli import main
from fraudstream.config import Settings
from fraudstream.stream.label_stream import LabelEntry, LabelOutcome
from fraudstream.stream.legacy_markers import migrate_legacy_markers
from fraudstream.stream.label_log import APPLIED_TTL_MS
from fraudstream.stream.registry import registry_for
from fraudstream.stream.state.redis_records import record_field as field

X = {"TX_AMOUNT": 12.5, "N": 2.0}
HOUR = 425_000  # 2018-06-25T08:00Z in whole hours since the epoch
DAY_MS = 86_400_000


def test_a_label_is_appended_once_and_its_marker_is_a_field_of_its_hours_hash(settings: Settings) -> None:
    registry = registry_for(settings)
    first = [LabelEntry(X, True, {}, field("c1", "t1"), 2 * DAY_MS, HOUR),
             LabelEntry(X, False, {}, field("c2", "t2"), DAY_MS, HOUR),
             LabelEntry(X, False, {}, field("c1", "t3"), DAY_MS, HOUR + 1),
             LabelEntry(X, True, {})]  # no marker asked for
    assert registry.labels.append(first) == [LabelOutcome.APPENDED] * 4
    again = [LabelEntry(X, True, {}, field("c1", "t1"), DAY_MS, HOUR), LabelEntry(X, True, {}, field("c2", "t2"), DAY_MS, HOUR),
             LabelEntry(None, False, {}, field("c1", "t3"), None, HOUR + 1),
             LabelEntry(None, False, {}, field("c9", "t9"), None, HOUR)]
    assert registry.labels.append(again) == [LabelOutcome.DUPLICATE, LabelOutcome.CONFLICT,
                                             LabelOutcome.DUPLICATE, LabelOutcome.UNKNOWN]
    assert registry.client.xlen(registry.key("labels")) == 4  # nothing appended twice

    client = registry.client
    hour = registry.key("markers", str(HOUR))
    assert client.hgetall(hour) == {b"2:c1t1": b"1", b"2:c2t2": b"0"}
    assert client.hgetall(registry.key("markers", str(HOUR + 1))) == {b"2:c1t3": b"0"}
    # the longest time to live asked for, not lowered by a later, shorter one
    assert DAY_MS < client.pttl(hour) <= 2 * DAY_MS
    assert DAY_MS - 60_000 < client.pttl(registry.key("markers", str(HOUR + 1))) <= DAY_MS
    registry.labels.append([LabelEntry(X, True, {}, field("c3", "t4"), 1000, HOUR)])
    assert client.pttl(hour) > DAY_MS
    # a time to live that makes no sense gets the default marker life (the hash never stays forever)
    registry.labels.append([LabelEntry(X, True, {}, field("c3", "t5"), -5, HOUR + 2)])
    assert APPLIED_TTL_MS - 60_000 < client.pttl(registry.key("markers", str(HOUR + 2))) <= APPLIED_TTL_MS
    assert not list(client.scan_iter(match=registry.key("applied", "*")))  # no key per label


def test_ids_with_colons_do_not_share_a_marker(settings: Settings) -> None:
    """Customer "a:b" with transaction "c" and customer "a" with transaction "b:c" are two labels."""
    registry = registry_for(settings)
    entries = [LabelEntry(X, True, {}, field("a:b", "c"), DAY_MS, HOUR), LabelEntry(X, True, {}, field("a", "b:c"), DAY_MS, HOUR)]
    assert registry.labels.append(entries) == [LabelOutcome.APPENDED] * 2
    assert registry.labels.append(entries) == [LabelOutcome.DUPLICATE] * 2


def test_markers_of_an_older_version_are_moved_and_still_count(settings: Settings) -> None:
    registry = registry_for(settings)
    client = registry.client
    for i, verdict in enumerate("1010"):  # the layout before 2026-12-05: a key per label
        client.set(registry.key("applied", f"c{i}:t{i}"), verdict, px=(i + 1) * DAY_MS)
    client.set(registry.key("applied", "c9:t9"), "1")  # one without a time to live
    client.set(registry.key("applied", "a:b:c"), "1")  # customer "a:b", transaction "c"
    client.set(registry.key("champion"), "logreg")  # not a marker: left alone

    result = CliRunner().invoke(main, ["migrate-records"], env={"FRAUDSTREAM_REDIS_URL": settings.redis_url,
                                                                 "FRAUDSTREAM_REDIS_KEY_PREFIX": settings.redis_key_prefix})
    assert result.exit_code == 0, result.output
    assert "moved 6 label markers" in result.output
    legacy = registry.key("markers", "legacy")
    assert client.hgetall(legacy) == {b"c0:t0": b"1", b"c1:t1": b"0", b"c2:t2": b"1", b"c3:t3": b"0", b"c9:t9": b"1",
                                      b"a:b:c": b"1"}
    assert APPLIED_TTL_MS - 60_000 < client.pttl(legacy) <= APPLIED_TTL_MS  # the default marker life, the longest here
    assert not list(client.scan_iter(match=registry.key("applied", "*")))
    assert client.get(registry.key("champion")) == b"logreg"
    assert migrate_legacy_markers(registry) == 0  # idempotent

    # a label delivered again after the upgrade, its scored record still there, is not learned twice
    outcomes = registry.labels.append([LabelEntry(X, True, {}, field("c0", "t0"), DAY_MS, HOUR),
                                       LabelEntry(X, True, {}, field("c1", "t1"), DAY_MS, HOUR),
                                       LabelEntry(None, True, {}, field("c2", "t2"), None, HOUR),
                                       LabelEntry(X, True, {}, field("a:b", "c"), DAY_MS, HOUR),
                                       LabelEntry(X, True, {}, field("c5", "t5"), DAY_MS, HOUR)])
    assert outcomes == [LabelOutcome.DUPLICATE, LabelOutcome.CONFLICT, LabelOutcome.DUPLICATE,
                        LabelOutcome.DUPLICATE, LabelOutcome.APPENDED]
    assert client.xlen(registry.key("labels")) == 1
    assert client.hgetall(registry.key("markers", str(HOUR))) == {b"2:c5t5": b"1"}  # new markers: the new layout


def test_the_legacy_hash_lives_as_long_as_its_longest_marker(settings: Settings) -> None:
    registry = registry_for(settings)
    client = registry.client
    legacy = registry.key("markers", "legacy")
    client.set(registry.key("applied", "c0:t0"), "1", px=DAY_MS)
    assert migrate_legacy_markers(registry) == 1
    assert DAY_MS - 60_000 < client.pttl(legacy) <= DAY_MS
    # moved later, a longer one (longer than the default 9 days) makes the hash live longer ...
    for i in (1, 2, 3):
        client.set(registry.key("applied", f"c{i}:t{i}"), "1", px=(12 if i == 2 else 1) * DAY_MS)
    assert migrate_legacy_markers(registry, chunk=1) == 3  # one key per round, in SCAN's order
    assert 12 * DAY_MS - 60_000 < client.pttl(legacy) <= 12 * DAY_MS
    # ... and a shorter one does not shorten it
    client.set(registry.key("applied", "c4:t4"), "1", px=DAY_MS)
    assert migrate_legacy_markers(registry) == 1
    assert 12 * DAY_MS - 60_000 < client.pttl(legacy) <= 12 * DAY_MS
    assert client.hlen(legacy) == 5


def test_migrating_markers_leaves_a_prefix_that_its_pattern_would_match_alone(settings: Settings) -> None:
    """A key prefix with glob characters is matched literally: ``fs*`` does not take ``fsb``'s markers."""
    mine = registry_for(settings.model_copy(update={"redis_key_prefix": f"{settings.redis_key_prefix}*"}))
    other = registry_for(settings.model_copy(update={"redis_key_prefix": f"{settings.redis_key_prefix}b"}))
    for registry in (mine, other):
        registry.client.set(registry.key("applied", "c0:t0"), "1", px=DAY_MS)
    assert migrate_legacy_markers(mine) == 1
    assert other.client.get(other.key("applied", "c0:t0")) == b"1"
    assert not other.client.exists(other.key("markers", "legacy"))
