"""A batch prepared in steps (`stream.decode.Preparation`), interleaved with the next batch's, as
the consumer does in its waits on Redis: the same result as preparing the batches one after the
other in one go."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

from hypothesis import given, settings as hsettings, strategies as st

from fraudstream.stream.decode import Prepared, Preparation, RecordValidator, prepare_batch

VALIDATOR = RecordValidator(max_record_bytes=4096, max_future_skew=None, allowed_lateness=timedelta(minutes=30))
T0 = datetime(2024, 3, 1, tzinfo=timezone.utc)
LABELS = "labels"
PARTITIONS = [("tx", 0), ("tx", 1), (LABELS, 0)]
DLQS: tuple[Any, Any] = ("transactions dlq", "labels dlq")


def record(kind: str, tp: tuple[str, int], offset: int, minute: int) -> SimpleNamespace:
    when = (T0 + timedelta(minutes=minute)).isoformat()
    if tp[0] == LABELS:
        doc: dict[str, object] = {"transaction_id": f"t{offset}", "customer_id": "c", "is_fraud": False,
                                  "event_time": when, "reported_at": when}
    else:
        doc = {"transaction_id": f"t{offset}", "customer_id": "c", "terminal_id": "m", "amount": 1.5, "event_time": when}
    value = json.dumps(doc).encode() if kind == "good" else b"{not json" if kind == "garbage" else b""
    return SimpleNamespace(topic=tp[0], partition=tp[1], offset=offset, key=b"c", value=value, timestamp=0)


# per record: its partition, whether it is good, and its event time in minutes (going back in time
# now and then, by more than the allowed lateness at times: too late)
records_strategy = st.lists(st.tuples(st.sampled_from(PARTITIONS), st.sampled_from(["good", "good", "good", "garbage", "empty"]),
                                      st.integers(0, 300)), min_size=1, max_size=60)


def stream(spec: list[tuple[tuple[str, int], str, int]]) -> list[SimpleNamespace]:
    offsets: dict[tuple[str, int], int] = {}
    out = []
    for tp, kind, minute in spec:
        offsets[tp] = offsets.get(tp, -1) + 1
        out.append(record(kind, tp, offsets[tp], minute))
    return out


def summary(p: Prepared) -> tuple[Any, ...]:
    return ([(r.offset, tx) for r, tx in p.transactions], [(r.offset, label) for r, label in p.labels],
            [(writer, r.topic, r.partition, r.offset, reason) for writer, r, reason, _ in p.dead], p.offsets, p.newest)


@hsettings(max_examples=200, deadline=None)
@given(records_strategy, st.data())
def test_interleaved_steps_prepare_what_one_go_does(spec: list[tuple[tuple[str, int], str, int]], data: st.DataObject) -> None:
    records = stream(spec)
    cut = data.draw(st.integers(0, len(records)))
    first, second = records[:cut], records[cut:]
    one_go: dict[tuple[str, int], datetime] = {}
    expected = [summary(prepare_batch(batch, LABELS, VALIDATOR, one_go, DLQS)) for batch in (first, second)]

    watermarks: dict[tuple[str, int], datetime] = {}
    a = Preparation(first, LABELS, VALIDATOR, watermarks, DLQS)
    a.step(data.draw(st.integers(0, len(first))))
    while not a.done:  # the consumer begins the second batch only once the first is decoded
        a.step(data.draw(st.integers(1, 7)))
    b = Preparation(second, LABELS, VALIDATOR, watermarks, DLQS)
    b.step(data.draw(st.integers(0, len(second))))  # the second begun before the first is finished
    assert [summary(a.finish()), summary(b.finish())] == expected
    assert watermarks == one_go


@hsettings(max_examples=200, deadline=None)
@given(records_strategy, st.data())
def test_a_revoked_partition_is_prepared_on_without(spec: list[tuple[tuple[str, int], str, int]], data: st.DataObject) -> None:
    """`without`: the records decoded before the revocation are dropped from the result, those after
    are not decoded (they leave the watermarks alone)."""
    records = stream(spec)
    revoked = data.draw(st.sampled_from(PARTITIONS))
    done = data.draw(st.integers(0, len(records)))
    watermarks: dict[tuple[str, int], datetime] = {}
    p = Preparation(records, LABELS, VALIDATOR, watermarks, DLQS)
    p.step(done)
    seen = dict(watermarks)
    got = p.without({revoked}).finish()
    # as if the revoked partition's records after the cut had never been fetched
    kept = records[:done] + [r for r in records[done:] if (r.topic, r.partition) != revoked]
    expected = prepare_batch(kept, LABELS, VALIDATOR, {}, DLQS).without({revoked})
    assert summary(got) == summary(expected)
    assert watermarks.get(revoked) == seen.get(revoked)
