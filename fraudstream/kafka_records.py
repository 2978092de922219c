"""A faster reader of fetched records for kafka-python 3.0.12's consumer.

kafka-python reads each record of a fetched v2 batch with seven calls of `decode_varint`, builds a
`DefaultRecord`, reads a dozen of its properties, calls the key and value deserializers, then builds
the `ConsumerRecord`: ~4.3 us per 131-byte transaction here, about a seventh of the scoring
consumer's CPU per record (2026-12-05, docs/performance.md). `read_records_inline(consumer)` gives
one consumer's fetcher a `PartitionRecords` whose `_unpack_records` reads the records of a v2 batch
in one loop: a one-byte varint (every field but the longer lengths and deltas) without a call, the
`ConsumerRecord` built as the tuple it is. It yields the same records, in the same order, with the
same errors for corrupt batches, and keeps the position and the counts kafka-python keeps after
each record (a poll may stop in the middle of a batch); but for a header name that is not UTF-8,
which it reads escaped instead of failing the fetch (see `_headers`).

Everything else goes kafka-python's own way: consumers with deserializers or `read_committed`
isolation (aborted transactions), legacy (v0/v1) batches, and a kafka-python version other than
the one whose `_unpack_records` this mirrors (nothing is changed then).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import kafka
from kafka import KafkaConsumer
from kafka.consumer import fetcher as kafka_fetcher
from kafka.consumer.fetcher import ConsumerRecord, Fetcher
from kafka.errors import CorruptRecordError
from kafka.record.util import decode_varint

log = logging.getLogger(__name__)
MENDED_VERSIONS = frozenset({"3.0.12"})
_LOG_APPEND_TIME = 1
_new_record = tuple.__new__  # a namedtuple's __new__ without its Python frame


class InlinePartitionRecords(Fetcher.PartitionRecords):
    """kafka-python's `PartitionRecords` with v2 batches read by `read_batch`."""

    def _unpack_records(self, tp: Any, records: Any, key_deserializer: Any,
                        value_deserializer: Any) -> Iterator[ConsumerRecord]:
        if (key_deserializer is not None or value_deserializer is not None
                or self.isolation_level != kafka_fetcher.IsolationLevel.READ_UNCOMMITTED):  # (where 3.0.12 has it)
            yield from super()._unpack_records(tp, records, key_deserializer, value_deserializer)
            return
        # kafka-python 3.0.12's loop for read_uncommitted and no deserializers, but the records
        try:
            batch = records.next_batch()
            last_batch = None
            while batch is not None:
                last_batch = batch
                if self.check_crcs and not batch.validate_crc():
                    raise CorruptRecordError("Record batch for partition %s at offset %s failed crc check" % (
                        self.topic_partition, batch.base_offset))
                if batch.magic != 2:
                    yield from self._other_magic_records(tp, batch)
                    batch = records.next_batch()
                    continue
                self.leader_epoch = batch.leader_epoch
                if batch.is_control_batch:
                    self.next_fetch_offset = batch.next_offset
                else:
                    for record, size in read_batch(batch, tp.topic, tp.partition):
                        self.records_read += 1
                        self.bytes_read += size
                        self.next_fetch_offset = record[3] + 1
                        yield record
                batch = records.next_batch()
            else:
                if last_batch and last_batch.magic == 2:
                    self.next_fetch_offset = last_batch.next_offset
                self.drain()
        except StopIteration:  # as kafka-python: a StopIteration would silently end the generator
            log.exception('StopIteration raised unpacking messageset')
            raise RuntimeError('StopIteration raised unpacking messageset')

    def _other_magic_records(self, tp: Any, batch: Any) -> Iterator[ConsumerRecord]:
        """A batch of a magic other than 2 (v0/v1: legacy) the way kafka-python 3.0.12's loop reads
        it (no deserializers here)."""
        for record in batch:
            if self.check_crcs and not record.validate_crc():
                raise CorruptRecordError("Record for partition %s at offset %s failed crc check" % (
                    self.topic_partition, record.offset))
            key, value, headers = record.key, record.value, record.headers
            self.records_read += 1
            self.bytes_read += record.size_in_bytes
            self.next_fetch_offset = record.offset + 1
            yield ConsumerRecord(tp.topic, tp.partition, self.leader_epoch, record.offset, record.timestamp,
                                 record.timestamp_type, key, value, headers, record.checksum,
                                 len(key) if key is not None else -1, len(value) if value is not None else -1,
                                 _header_size(headers))


def read_batch(batch: Any, topic: str, partition: int) -> Iterator[tuple[ConsumerRecord, int]]:
    """The records of a v2 `DefaultRecordBatch` (decompressed here), each with its size in bytes,
    as kafka-python 3.0.12's `DefaultRecordBatch._read_msg` and `_unpack_records` give them.

    >>> from kafka.record.default_records import DefaultRecordBatchBuilder, DefaultRecordBatch
    >>> builder = DefaultRecordBatchBuilder(2, 0, 0, -1, -1, -1, batch_size=1024)
    >>> _ = builder.append(0, timestamp=1_000, key=b"c1", value=b"{}", headers=[])
    >>> _ = builder.append(1, timestamp=1_300, key=None, value=b"x" * 200, headers=[("h", None)])
    >>> [(r.offset, r.timestamp, r.key, len(r.value), r.headers, size)
    ...  for r, size in read_batch(DefaultRecordBatch(bytes(builder.build())), "t", 0)]
    [(0, 1000, b'c1', 2, [], 10), (1, 1300, None, 200, [('h', None)], 211)]
    """
    batch._maybe_uncompress()
    # slices of bytes are the values (one copy each, not two as from the bytearray); the batch keeps
    # the bytes instead of its bytearray, so that it is held once while its records are read
    buf = batch._buffer = bytes(batch._buffer)
    pos, end = batch._pos, len(buf)
    epoch, base, first_ts, ts_type = batch.leader_epoch, batch.base_offset, batch.first_timestamp, batch.timestamp_type
    append_ts = batch.max_timestamp if ts_type == _LOG_APPEND_TIME else None
    varint = decode_varint
    try:
        for _ in range(batch.records_count):
            # A varint below 128 is one byte, zigzag-encoded: (b >> 1) ^ -(b & 1). Written out for
            # each field, not a helper: a call per field costs about what reading it inline saves.
            b = buf[pos]
            if b < 128:
                length, pos = (b >> 1) ^ -(b & 1), pos + 1
            else:
                length, pos = varint(buf, pos)
            start = pos
            pos = pos + 1 if buf[pos] < 128 else varint(buf, pos)[1]  # attributes, unused
            b = buf[pos]
            if b < 128:
                ts_delta, pos = (b >> 1) ^ -(b & 1), pos + 1
            else:
                ts_delta, pos = varint(buf, pos)
            b = buf[pos]
            if b < 128:
                offset_delta, pos = (b >> 1) ^ -(b & 1), pos + 1
            else:
                offset_delta, pos = varint(buf, pos)
            b = buf[pos]
            if b < 128:
                key_size, pos = (b >> 1) ^ -(b & 1), pos + 1
            else:
                key_size, pos = varint(buf, pos)
            key = None
            if key_size >= 0:
                key, pos = buf[pos:pos + key_size], pos + key_size
            b = buf[pos]
            if b < 128:
                value_size, pos = (b >> 1) ^ -(b & 1), pos + 1
            else:
                value_size, pos = varint(buf, pos)
            value = None
            if value_size >= 0:
                value, pos = buf[pos:pos + value_size], pos + value_size
            if buf[pos] == 0:  # no headers
                headers: list[tuple[str, bytes | None]] = []
                header_size, pos = -1, pos + 1
            else:
                headers, header_size, pos = _headers(buf, pos)
            if pos - start != length:
                raise CorruptRecordError("Invalid record size: expected to read {} bytes in record "
                                         "payload, but instead read {}".format(length, pos - start))
            yield _new_record(ConsumerRecord, (
                topic, partition, epoch, base + offset_delta,
                first_ts + ts_delta if append_ts is None else append_ts, ts_type, key, value, headers, None,
                len(key) if key is not None else -1, len(value) if value is not None else -1,
                header_size)), length
    except (ValueError, IndexError) as err:
        raise CorruptRecordError("Found invalid record structure: {!r}".format(err))
    if pos != end:
        raise CorruptRecordError("{} unconsumed bytes after all records consumed".format(end - pos))


def _headers(buf: bytes, pos: int) -> tuple[list[tuple[str, bytes | None]], int, int]:
    """A record's headers from `pos`, their size (`_header_size`), the position after.

    The one place this reader parts from kafka-python's: a header name that is not UTF-8 (Kafka
    does not check, and some producers send bytes) is read with its bad bytes escaped (``\\xff``),
    where kafka-python fails the whole fetch as a corrupt batch, so that a consumer stopped at that
    record again after every restart. Its size is counted from the bytes on the wire, which is
    kafka-python's count for a UTF-8 name. (Varints are zigzag: 4 is two headers, or a name of two
    bytes; 2 a value of one byte; 1 none.)

    >>> _headers(bytes([4, 4]) + b"\\xffk" + bytes([2]) + b"v" + bytes([2]) + b"t" + bytes([1]), 0)
    ([('\\\\xffk', b'v'), ('t', None)], 4, 9)
    """
    count, pos = decode_varint(buf, pos)
    if count < 0:
        raise CorruptRecordError("Found invalid number of record headers {}".format(count))
    headers: list[tuple[str, bytes | None]] = []
    size = 0
    for _ in range(count):
        key_size, pos = decode_varint(buf, pos)
        if key_size < 0:
            raise CorruptRecordError("Invalid negative header key size {}".format(key_size))
        key, pos = buf[pos:pos + key_size].decode("utf-8", "backslashreplace"), pos + key_size
        value_size, pos = decode_varint(buf, pos)
        value = None
        if value_size >= 0:
            value, pos = buf[pos:pos + value_size], pos + value_size
        headers.append((key, value))
        size += key_size + max(value_size, 0)
    return headers, size if headers else -1, pos


def _header_size(headers: list[tuple[str, bytes | None]]) -> int:
    """A record's `serialized_header_size` as kafka-python 3.0.12 counts it: -1 without headers."""
    return sum(len(key.encode("utf-8")) + (len(value) if value is not None else 0)
               for key, value in headers) if headers else -1


def read_records_inline(consumer: KafkaConsumer) -> bool:
    """Give `consumer`'s fetcher `InlinePartitionRecords` (see the module docstring); False, and
    nothing changed, when its kafka-python version is not one this mirrors."""
    fetcher = getattr(consumer, "_fetcher", None)
    if kafka.__version__ not in MENDED_VERSIONS or fetcher is None:
        return False
    fetcher.PartitionRecords = InlinePartitionRecords
    return True
