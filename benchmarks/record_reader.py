"""Reading fetched records: kafka-python 3.0.12's reader against fraudstream's
(`fraudstream.kafka_records`), on the same bytes, run by hand (no servers needed):

    .venv/bin/python benchmarks/record_reader.py [--records 2000] [--per-batch 40] [--repeat 40]

Builds v2 record batches of the handbook's first transactions as the benchmarks publish them (key:
customer id, value: the transaction's JSON; a synthetic stream when the data file is absent),
`--per-batch` records a batch (a 5 ms linger at ~20,000 tx/s gives batches of tens per partition),
then times `PartitionRecords.take()` of all of them with each reader, best of `--repeat`, and
prints the microseconds per record of each, their ratio, and whether the records are equal.
"""

from __future__ import annotations

import argparse
import itertools
import struct
import time
from pathlib import Path

from kafka.consumer.fetcher import Fetcher
from kafka.record.default_records import DefaultRecordBatchBuilder
from kafka.record.memory_records import MemoryRecords
from kafka.structs import TopicPartition

from fraudstream.kafka_records import InlinePartitionRecords

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "fdh_dev.csv.gz"


def messages(n: int) -> list[tuple[bytes, bytes]]:
    if DATA.exists():
        from fraudstream.producer.files import read_recorded

        txs = [r.transaction for r in itertools.islice(read_recorded(DATA), n)]
        return [(tx.customer_id.encode(), tx.to_json_bytes()) for tx in txs]
    print(f"({DATA} not found: synthetic transactions)")
    return [(str(i % 5000).encode(), b'{"transaction_id":"%d","customer_id":"%d","terminal_id":"%d","amount":%d.25,'
             b'"currency":"EUR","event_time":"2018-04-01T00:00:31Z"}' % (i, i % 5000, i % 10000, i % 300))
            for i in range(n)]


def batches(msgs: list[tuple[bytes, bytes]], per_batch: int) -> bytes:
    out = bytearray()
    for start in range(0, len(msgs), per_batch):
        builder = DefaultRecordBatchBuilder(2, 0, 0, -1, -1, -1, batch_size=1 << 22)
        for i, (key, value) in enumerate(msgs[start:start + per_batch]):
            builder.append(i, timestamp=1_700_000_000_000 + 3 * i, key=key, value=value, headers=[])
        batch = builder.build()
        struct.pack_into(">q", batch, 0, start)  # the base offset
        out += batch
    return bytes(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--per-batch", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=40)
    args = parser.parse_args()
    data = batches(messages(args.records), args.per_batch)
    tp = TopicPartition("transactions", 0)
    timings, results = {}, {}
    for reader in (Fetcher.PartitionRecords, InlinePartitionRecords):
        best = float("inf")
        for _ in range(args.repeat):
            start = time.perf_counter()
            records = reader(0, tp, MemoryRecords(data), check_crcs=True).take()
            best = min(best, time.perf_counter() - start)
        timings[reader] = best / args.records * 1e6
        results[reader] = records
    plain, inline = timings[Fetcher.PartitionRecords], timings[InlinePartitionRecords]
    print(f"{args.records:,} records of {len(data) / args.records:.0f} bytes on the wire, {args.per_batch} a batch")
    print(f"kafka-python's reader:  {plain:.2f} us per record")
    print(f"fraudstream's reader:   {inline:.2f} us per record ({plain / inline:.1f} times as fast)")
    print(f"the same records: {results[Fetcher.PartitionRecords] == results[InlinePartitionRecords]}")


if __name__ == "__main__":
    main()
