"""`fraudstream.kafka_records`: the inline record reader gives exactly what kafka-python's own gives
(records, errors, position and counts after each take), on built batches and from the real broker."""

from __future__ import annotations

import struct
import uuid
from typing import Any

import kafka
import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.consumer import fetcher as kafka_fetcher
from kafka.consumer.fetcher import Fetcher
from kafka.errors import CorruptRecordError
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from kafka.record.legacy_records import LegacyRecordBatchBuilder
from kafka.record.memory_records import MemoryRecords
from kafka.record.util import calc_crc32c
from kafka.structs import TopicPartition

from fraudstream.config import Settings
from fraudstream.kafka_io import ensure_topics, make_consumer
from fraudstream.kafka_records import MENDED_VERSIONS, InlinePartitionRecords, read_records_inline

pytestmark = pytest.mark.skipif(kafka.__version__ not in MENDED_VERSIONS,
                                reason=f"kafka-python {kafka.__version__}: the reader mirrors {sorted(MENDED_VERSIONS)} only")
TP = TopicPartition("t", 0)
GZIP = DefaultRecordBatchBuilder.CODEC_GZIP


def batch(base_offset: int, records: list[tuple[int, bytes | None, bytes | None, list[Any]]],
          compression: int = 0, timestamp_type: int = 0) -> bytes:
    """A v2 batch of (timestamp, key, value, headers) at `base_offset`."""
    builder = DefaultRecordBatchBuilder(2, compression, 0, -1, -1, -1, batch_size=1 << 20)
    for i, (ts, key, value, headers) in enumerate(records):
        builder.append(i, timestamp=ts, key=key, value=value, headers=headers)
    data = builder.build()
    struct.pack_into(">q", data, 0, base_offset)
    if timestamp_type:  # LOG_APPEND_TIME: attribute bit 3, then the CRC again
        attributes = struct.unpack_from(">h", data, 21)[0] | 0x08
        struct.pack_into(">h", data, 21, attributes)
        struct.pack_into(">I", data, 17, calc_crc32c(bytes(data[21:])))
    return bytes(data)


VARIED = [
    (1_700_000_000_000, b"c1", b'{"amount": 1}', []),
    (1_700_000_000_500, None, b"x" * 300, [("trace", b"abc"), ("empty", None), ("h\u00e9", b"")]),
    (1_699_999_999_000, b"k" * 70, None, []),  # earlier than the first: negative delta; a tombstone
    (1_700_000_100_000, b"", b"", [("a", b"b")]),
    (1_700_000_000_001, b"c2", b"y" * 9_000, []),  # a three-byte length
]
MANY = [(1_700_000_000_000 + 7 * i, f"c{i % 50}".encode(), b"v" * (i % 200), []) for i in range(150)]


def fetched(records_class: type, data: bytes, fetch_offset: int = 0, takes: tuple[int | None, ...] = (None,),
            **options: Any) -> list[tuple[list[Any], int, int, int]]:
    """Per take: the records, and the position, records and bytes read after it."""
    parts = records_class(fetch_offset, TP, MemoryRecords(data), **options)
    out = []
    for n in takes:
        records = parts.take(n) if parts else []  # (a drained one has nothing to take)
        out.append((records, parts.next_fetch_offset, parts.records_read, parts.bytes_read))
    return out


def both(data: bytes, **kwargs: Any) -> tuple[Any, Any]:
    return fetched(Fetcher.PartitionRecords, data, **kwargs), fetched(InlinePartitionRecords, data, **kwargs)


@pytest.mark.parametrize("data", [
    pytest.param(batch(0, VARIED), id="varied"),
    pytest.param(batch(0, MANY[:60]) + batch(60, MANY[60:]), id="two-batches"),
    pytest.param(batch(10, VARIED, compression=GZIP), id="gzip"),
    pytest.param(batch(0, VARIED, timestamp_type=1), id="log-append-time"),
    pytest.param(b"", id="empty"),
])
def test_the_same_records_as_kafka_python(data: bytes) -> None:
    expected, got = both(data)
    assert got == expected
    if data:
        assert got[0][0] and got[0][0][0].value is not None


def test_a_poll_that_stops_inside_a_batch_leaves_the_same_position() -> None:
    """`take(n)` stops in the middle of a batch; position and counts after each take are kafka-python's."""
    data = batch(0, MANY[:60]) + batch(60, MANY[60:])
    expected, got = both(data, takes=(7, 50, 1, 200, 5))
    assert got == expected
    assert [len(records) for records, *_ in got] == [7, 50, 1, 92, 0]


def test_records_before_the_fetch_offset_are_skipped_alike() -> None:
    expected, got = both(batch(100, MANY), fetch_offset=130)
    assert got == expected
    assert got[0][0][0].offset == 130


def test_legacy_batches_are_read_by_kafka_pythons_way() -> None:
    builder = LegacyRecordBatchBuilder(magic=1, compression_type=0, batch_size=1 << 20)
    for i in range(3):
        builder.append(i, timestamp=1_700_000_000_000 + i, key=b"k", value=b"v%d" % i)
    expected, got = both(bytes(builder.build()) + batch(3, VARIED))
    assert got == expected
    assert [r.offset for r in got[0][0]] == list(range(3 + len(VARIED)))


def test_a_batch_of_an_unknown_magic_is_read_by_kafka_pythons_way() -> None:
    """kafka-python reads a batch whose magic byte (outside the CRC) is above 2 as a v2 batch with its
    generic loop; so does the reader (found by a reviewer's fuzzing: the header size differed)."""
    data = bytearray(batch(0, VARIED))
    data[16] = 3
    expected, got = both(bytes(data))
    assert got == expected
    assert [r.serialized_header_size for r in got[0][0]] == [-1, 16, -1, 2, -1]


def test_deserializers_and_read_committed_go_kafka_pythons_way() -> None:
    data = batch(0, VARIED)

    class Upper:
        def deserialize(self, topic: str, headers: Any, data: bytes | None) -> Any:
            return None if data is None else data.upper()

    expected, got = both(data, value_deserializer=Upper())
    assert got == expected and got[0][0][0].value == b'{"AMOUNT": 1}'
    expected, got = both(data, isolation_level=kafka_fetcher.IsolationLevel.READ_COMMITTED)
    assert got == expected


def corrupted(data: bytes, at: int, byte: int) -> bytes:
    changed = bytearray(data)
    changed[at] = byte
    return bytes(changed)


def counted(data: bytes, change: int) -> bytes:
    """`data` with its record count (bytes 57-60 of a v2 batch header) changed by `change`."""
    out = bytearray(data)
    struct.pack_into(">i", out, 57, struct.unpack_from(">i", out, 57)[0] + change)
    return bytes(out)


@pytest.mark.parametrize("change", [
    pytest.param(lambda d: counted(d, 1), id="a-record-too-many"),
    pytest.param(lambda d: counted(d, -1), id="bytes-left-over"),
    pytest.param(lambda d: corrupted(d, 61, 0x7E), id="record-length"),  # the first record's length varint
    pytest.param(lambda d: corrupted(d, 65, 0x03), id="key-length"),     # its key's length: -2
])
def test_corrupt_batches_raise_as_kafka_python_does(change: Any) -> None:
    data = change(batch(0, VARIED))
    errors = []
    for records_class in (Fetcher.PartitionRecords, InlinePartitionRecords):
        parts = records_class(0, TP, MemoryRecords(data), check_crcs=False)
        got: list[Any] = []
        with pytest.raises(CorruptRecordError) as raised:
            while True:
                more = parts.take(1)
                if not more:
                    break
                got.append(more)
        # the same records first, the same error (its text up to the cause's own message)
        errors.append((got, type(raised.value), str(raised.value).split(":")[0]))
    assert errors[1] == errors[0]


def test_a_batch_that_fails_its_crc_check_raises() -> None:
    data = corrupted(batch(0, VARIED), 70, 0x21)
    for records_class in (Fetcher.PartitionRecords, InlinePartitionRecords):
        with pytest.raises(CorruptRecordError, match="failed crc check"):
            records_class(0, TP, MemoryRecords(data), check_crcs=True).take()


def test_the_gzip_case_is_a_compressed_batch() -> None:
    data = batch(0, VARIED, compression=GZIP)
    assert DefaultRecordBatch(data).compression_type == GZIP
    assert len(data) < sum(len(v or b"") for _, _, v, _ in VARIED)


@pytest.mark.services
def test_a_consumer_reads_from_the_broker_what_kafka_python_reads(settings: Settings) -> None:
    """`make_consumer` installs the reader; it and a plain kafka-python consumer read one topic alike."""
    topic = f"records-{uuid.uuid4().hex[:8]}"
    ensure_topics(settings, [topic], partitions=2)
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=20, compression_type=None)
    for i in range(400):
        ts, key, value, headers = (VARIED + MANY)[i % (len(VARIED) + len(MANY))]
        headers = [(k, v if v is not None else b"") for k, v in headers]  # the producer takes no None
        producer.send(topic, key=key, value=value, headers=headers, timestamp_ms=ts)
    producer.flush()
    producer.close()
    mended = make_consumer(settings, group_id=None)
    plain = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    try:
        assert mended._fetcher.PartitionRecords is InlinePartitionRecords
        read = []
        for consumer in (mended, plain):
            parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
            consumer.assign(parts)
            consumer.seek_to_beginning(*parts)
            records: list[Any] = []
            for _ in range(100):
                for batch_records in consumer.poll(timeout_ms=200, max_records=37).values():
                    records.extend(batch_records)
                if len(records) >= 400:
                    break
            read.append(sorted(records, key=lambda r: (r.partition, r.offset)))
        assert len(read[0]) == 400
        assert read[0] == read[1]
    finally:
        mended.close()
        plain.close()


def test_another_kafka_python_version_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    consumer = KafkaConsumer(bootstrap_servers="127.0.0.1:1", api_version=(2, 5, 0))
    try:
        monkeypatch.setattr(kafka, "__version__", "0.0.0")
        assert not read_records_inline(consumer)
        assert consumer._fetcher.PartitionRecords is Fetcher.PartitionRecords
        monkeypatch.undo()
        assert read_records_inline(consumer)
        assert consumer._fetcher.PartitionRecords is InlinePartitionRecords
    finally:
        consumer.close()
