"""Consumer throughput, latency and memory against issue 8's targets, run by hand:

    .venv/bin/python benchmarks/consumer_throughput.py [--transactions 100000] [--rate 2000] [--latency-seconds 20]
        [--memory-days 40] [--checkpoint FILE]

Prints the machine, then, in one run on the same topic: the raw kafka-python consume rate (poll and
discard, partitions assigned, timed from its first records; measured before and after the scoring
run, their mean is the ratio's denominator; and the same with the record reader the scoring
consumer uses, `fraudstream.kafka_records`, for comparison only), the end-to-end scoring rate (validate -> features in
Redis -> score -> record -> learn from labels -> alerts -> commit; timed from the end of its first
batch), their ratio, publish-to-alert latency percentiles at a fixed offered load (and a bare
kafka-python consumer's at the same load, on a fresh topic: the broker's and the client's share;
and the p99 of each half of those transactions with the CPU of the broker, the load process and
Valkey meanwhile: the embedded broker's grows through the run; and the garbage collector's pauses),
and the peak RSS of `fraudstream consume` run on the same backlog in a process of its own, with
its rate (the benchmark's consumer shares its process with the rows it publishes); then Redis
memory per customer after `--memory-days` days of the handbook's traffic (40 by default: every
retention filled; `feature_state_memory.measure`, on a Valkey server of its own); last, each figure against its
target.
Input: the first N rows of the handbook CSV when present (with their labels, reported 7 days after
each transaction, on the labels topic: a replay's traffic), else a synthetic stream without labels
(and no memory figure).
Until 2026-12-05 it also printed the measures used until 2026-12-04 (the raw rate of a group member
with its first records counted, the scoring rate with its first batch): docs/performance.md.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from cli_consumer import run_cli_consumer
from feature_state_memory import STEADY_DAYS, measure
from issue_targets import targets
from process_stats import CpuSampler, GcTimes, machine_description, python_loop_seconds

from fraudstream.config import Settings
from fraudstream.kafka_io import ensure_topics
from fraudstream.kafka_records import read_records_inline
from fraudstream.models.events import Label, Transaction
from fraudstream.services import embedded_services
from fraudstream.stream.app import scoring_consumer
from fraudstream.stream.consumer import IDLE_POLL_MS
from fraudstream.stream.stats import RunStats

# ../shared/data beside the checkout; FRAUDSTREAM_BENCHMARK_DATA for a checkout elsewhere (a worktree
# in /tmp for an A/B run would otherwise measure the synthetic stream, which is much cheaper)
DATA = Path(os.environ.get("FRAUDSTREAM_BENCHMARK_DATA")
            or Path(__file__).resolve().parents[2] / "shared" / "data" / "fdh_dev.csv.gz")


def describe_data(n: int) -> str:
    """The input line every run prints, so that a run on the synthetic stream is never taken for one
    on the handbook's rows."""
    if DATA.exists():
        return f"data: the handbook's first {n:,} rows with their labels ({DATA})"
    return (f"data: {DATA} NOT FOUND: a synthetic stream without labels, NOT comparable with the README's "
            "figures (set FRAUDSTREAM_BENCHMARK_DATA)")


LABEL_DELAY = timedelta(days=7)


def transactions(n: int) -> tuple[list[Transaction], dict[str, bool]]:
    """Transactions and, for the handbook rows, whether each is a fraud."""
    frauds: dict[str, bool] = {}
    if DATA.exists():
        import csv
        import gzip

        out = []
        with gzip.open(DATA, "rt") as handle:
            for i, row in enumerate(csv.DictReader(handle)):
                if i >= n:
                    break
                out.append(Transaction(transaction_id=row["TRANSACTION_ID"], customer_id=row["CUSTOMER_ID"],
                                       terminal_id=row["TERMINAL_ID"], amount=float(row["TX_AMOUNT"]),
                                       event_time=datetime.fromisoformat(row["TX_DATETIME"]).replace(tzinfo=timezone.utc)))
                frauds[row["TRANSACTION_ID"]] = row["TX_FRAUD"] == "1"
        return out, frauds
    t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
    return [Transaction(transaction_id=str(i), customer_id=str(i % 5000), terminal_id=str(i % 10000),
                        amount=float(5 + i % 200), event_time=t0 + timedelta(seconds=9 * i)) for i in range(n)], frauds


def labels(txs: list[Transaction], frauds: dict[str, bool]) -> list[Label]:
    """The labels reported (7 days after their transaction) before the last transaction's time."""
    if not frauds:
        return []
    end = txs[-1].event_time
    return [Label(transaction_id=tx.transaction_id, customer_id=tx.customer_id, terminal_id=tx.terminal_id,
                  is_fraud=frauds[tx.transaction_id], event_time=tx.event_time, reported_at=tx.event_time + LABEL_DELAY)
            for tx in txs if tx.event_time + LABEL_DELAY <= end]


def publish_backlog(settings: Settings, txs: list[Transaction], due_labels: list[Label]) -> None:
    """Publish the transactions, each label interleaved as a replay publishes it: once event time
    passes its report time."""
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=5, batch_size=256 * 1024)
    due = iter(due_labels)
    label = next(due, None)
    for tx in txs:
        while label is not None and label.reported_at <= tx.event_time:
            producer.send(settings.topic_labels, key=label.customer_id.encode(), value=label.to_json_bytes())
            label = next(due, None)
        producer.send(settings.topic_transactions, key=tx.customer_id.encode(), value=tx.to_json_bytes())
    producer.flush()
    producer.close()


def offer_load(bootstrap: str, topic: str, txs: list[Transaction], rate: float) -> None:
    """Publish `txs` at `rate` per second (run in a child process)."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, batch_size=256 * 1024)
    interval = 1.0 / rate
    t_next = time.perf_counter()
    for tx in txs:
        producer.send(topic, key=tx.customer_id.encode(), value=tx.to_json_bytes())
        t_next += interval
        pause = t_next - time.perf_counter()
        if pause > 0:
            if pause > 0.002:
                producer.flush()
            time.sleep(max(0.0, t_next - time.perf_counter()))
    producer.flush()
    producer.close()


def bare_consumer(settings: Settings, topic: str, **config: Any) -> KafkaConsumer:
    """A kafka-python consumer of `topic` from its start, in a group of its own, that does nothing else."""
    return KafkaConsumer(topic, bootstrap_servers=settings.kafka_bootstrap, group_id=f"raw-{uuid.uuid4().hex[:6]}",
                         auto_offset_reset="earliest", enable_auto_commit=False, session_timeout_ms=6000,
                         heartbeat_interval_ms=1000, **config)


def raw_consume_rate(settings: Settings, n: int, inline: bool = False) -> tuple[float, float]:
    """Records per second of a kafka-python consumer that is assigned the transactions topic's
    partitions, polls them from their start and discards the records, timed from its first records
    (not counted), as the scoring rate is timed from the end of its first batch, and the CPU
    microseconds per record this process used meanwhile (well below the wall time per record: the
    consumer then waits for the broker). (A group member's rate swung with how much of the backlog
    kafka-python's IO thread fetched during the group join, before the clock started: 93,556-99,362
    msg/s against a steady 62,561-65,382; docs/performance.md.) `inline`: with fraudstream's record
    reader (`fraudstream.kafka_records`), which the scoring consumer uses; not the ratio's denominator."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False,
                             max_poll_records=settings.max_poll_records, fetch_max_bytes=16 * 1024 * 1024,
                             max_partition_fetch_bytes=4 * 1024 * 1024)
    if inline:
        read_records_inline(consumer)
    try:
        partitions = [TopicPartition(settings.topic_transactions, p)
                      for p in sorted(consumer.partitions_for_topic(settings.topic_transactions) or ())]
        if not partitions:
            raise SystemExit(f"topic {settings.topic_transactions} has no partitions")
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        seen, start, counted, cpu = 0, 0.0, 0, 0.0
        deadline = time.monotonic() + 120
        while seen < n:
            if time.monotonic() > deadline:
                raise SystemExit(f"the raw consumer got {seen:,} of {n:,} records in 120 s")
            batch = consumer.poll(timeout_ms=500)
            records = sum(len(v) for v in batch.values())
            if records and not seen:
                start, cpu = time.perf_counter(), time.process_time()  # the first records are not counted: their time is not
            else:
                counted += records
            seen += records
        return counted / (time.perf_counter() - start), (time.process_time() - cpu) / max(counted, 1) * 1e6
    finally:
        consumer.close()


def raw_latency(settings: Settings, txs: list[Transaction], rate: float) -> list[float]:
    """Publish-to-poll latency of a bare kafka-python consumer (same fetch wait and idle poll as the
    scoring consumer) at the same offered load, on a fresh topic of as many partitions: the share
    of the scoring consumer's latency that the broker and the client alone take (slightly less than
    on the scoring topic: Tansu's fetches cost more with more batches stored, and that topic also
    holds the backlog)."""
    topic = f"{settings.topic_transactions}-raw"
    ensure_topics(settings, [topic])
    consumer = bare_consumer(settings, topic, fetch_max_wait_ms=settings.fetch_max_wait_ms)
    while not consumer.assignment():
        consumer.poll(timeout_ms=100)
    offer = multiprocessing.get_context("spawn").Process(target=offer_load,
                                                          args=(settings.kafka_bootstrap, topic, txs, rate))
    offer.start()
    latencies: list[float] = []
    deadline = time.monotonic() + len(txs) / rate + 60
    try:
        while len(latencies) < len(txs) and time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=IDLE_POLL_MS)
            now_ms = time.time() * 1000.0
            latencies.extend(now_ms - r.timestamp for records in batch.values() for r in records)
    finally:
        offer.join(timeout=30)
        if offer.is_alive():
            offer.kill()
        consumer.close()
    return latencies


def import_champion(settings: Settings, checkpoint: Path | None) -> str:
    """Publish a signed checkpoint (`fraudstream backtest --save-model`) as the champion, as
    `fraudstream models import --promote` does, so that the consumer starts from a trained model as
    it would in production; without one the consumer starts the default model fresh. Returns what
    the consumer starts from."""
    if checkpoint is None:
        return f"{settings.model}, fresh"
    from fraudstream.stream.registry import registry_for

    registry = registry_for(settings)
    try:
        info = registry.import_blob(checkpoint.read_bytes())
        registry.promote(info.name)
    finally:
        registry.client.close()
    return f"{info.name} from {checkpoint.name} ({info.kind}, {info.labels_learned:,} labels learned before)"


def champion_fits(app: Any) -> int:
    """How many times the consumer's champion has fitted its trees (0 for a model without trees):
    a trained champion's refits cost CPU, so the benchmarks print how many a run made."""
    return int(getattr(app.scorer.champion.model, "n_fits", 0))


def _records_done(stats: RunStats) -> int:
    """Transactions and labels a consumer has handled."""
    return (stats.processed + stats.dead_lettered + stats.labels_learned + stats.labels_duplicate
            + stats.labels_dead_lettered)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--transactions", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument("--memory-days", type=int, default=STEADY_DAYS,
                        help="days of handbook traffic for the Redis memory figure (0: skip it)")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="start from this signed checkpoint (fraudstream backtest --save-model) as the champion")
    args = parser.parse_args()

    print(f"machine: {machine_description()}; broker, Redis and consumer share its cores", flush=True)
    print(f"Python speed: a 10-million-step loop took {python_loop_seconds():.2f} s (quiet days: 0.7-0.8 s)", flush=True)
    print(describe_data(args.transactions), flush=True)
    txs, frauds = transactions(args.transactions + int(args.rate * args.latency_seconds))
    bulk, paced = txs[: args.transactions], txs[args.transactions:]
    bulk_labels = labels(bulk, frauds)
    with embedded_services(Settings()) as settings:
        ensure_topics(settings)
        publish_backlog(settings, bulk, bulk_labels)
        model = import_champion(settings, args.checkpoint)
        raw, raw_cpu = raw_consume_rate(settings, len(bulk))
        inline, inline_cpu = raw_consume_rate(settings, len(bulk), inline=True)
        with scoring_consumer(settings) as app:
            # the group join and the first batch are left out of the CPU figure, as out of the rate (a
            # join's CPU varied with how many JoinGroup rounds it took: see benchmarks/group_join.py)
            stats = app.run(max_transactions=1)
            records_before = _records_done(stats)
            fits = champion_fits(app)
            cpu_start = time.process_time()
            app.run(max_transactions=len(bulk))
            fits = champion_fits(app) - fits
            cpu_per_record = (time.process_time() - cpu_start) / (_records_done(stats) - records_before) * 1e6
            # from the end of its first batch, that batch not counted (as the raw rate: from its first
            # records, those not counted); and from the partitions' assignment (offsets, first fetches)
            pipeline = stats.throughput
            pipeline_started = stats.processed / (stats.last_record - app.assigned_at) if stats.last_record else 0.0
            learned, label_dlq = stats.labels_learned, stats.labels_dead_lettered
            # the raw rates again, right after, in the opposite order (the machine's speed drifts: the
            # mean of the two is the denominator, and both are printed)
            inline_after, inline_after_cpu = raw_consume_rate(settings, len(bulk), inline=True)
            raw_after, raw_after_cpu = raw_consume_rate(settings, len(bulk))
            # the same backlog, as a user runs the consumer; before the paced load adds batches to the
            # topic (Tansu's fetches cost more the more batches a partition holds)
            cli = run_cli_consumer(settings, len(bulk))
            # latency at a fixed offered load, same consumer (already joined)
            stats.latencies_ms.clear()
            # the offered load comes from another process, as in production (a producer thread in
            # this process would compete with the consumer for the GIL and delay its own sends)
            offer = multiprocessing.get_context("spawn").Process(
                target=offer_load, args=(settings.kafka_bootstrap, settings.topic_transactions, paced, args.rate))
            with CpuSampler() as cpu:
                offer.start()  # (pickles the paced rows for the new process: its collections are not the consumer's)
                try:
                    with GcTimes() as gc_pauses:
                        app.run(max_transactions=len(bulk) + len(paced))
                finally:
                    offer.join(timeout=30)
                    if offer.is_alive():
                        offer.kill()
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        bare_latencies = raw_latency(settings, paced, args.rate)
        if not bare_latencies:
            raise SystemExit("the bare consumer received nothing: did the load process fail?")
        bare = np.percentile(bare_latencies, [50, 95, 99])
        raw_mean = (raw + raw_after) / 2
        print(f"raw kafka-python consume rate: {raw_mean:,.0f} msg/s (before the scoring run {raw:,.0f}, "
              f"after it {raw_after:,.0f}; partitions assigned, from the first records; CPU {raw_cpu:.1f} / "
              f"{raw_after_cpu:.1f} us per record)")
        print(f"  the same with fraudstream's record reader (which the scoring consumer uses; not the denominator): "
              f"{(inline + inline_after) / 2:,.0f} msg/s (before {inline:,.0f}, after {inline_after:,.0f}; CPU "
              f"{inline_cpu:.1f} / {inline_after_cpu:.1f} us per record)")
        print(f"end-to-end scoring rate:       {pipeline:,.0f} tx/s   (champion: {model}; after the first batch; "
              f"from the partitions' assignment, the start included: {pipeline_started:,.0f})")
        print(f"ratio pipeline / raw:          {pipeline / raw_mean:.3f}")
        print(f"consumer CPU per record:       {cpu_per_record:.0f} us (transactions and labels after the first batch; all threads, "
              "less sensitive to a busy machine than the rates)")
        print(f"labels: {len(bulk_labels):,} published, {learned:,} learned, {label_dlq:,} dead-lettered "
              f"during the scoring run; the champion's tree fits meanwhile: {fits}")
        p99 = stats.latency_percentile(99)
        print(f"latency publish->scored at {args.rate:,.0f} tx/s offered: p50 {stats.latency_percentile(50):.1f} ms, "
              f"p95 {stats.latency_percentile(95):.1f} ms, p99 {p99:.1f} ms ({len(stats.latencies_ms)} transactions)")
        in_order = list(stats.latencies_ms)  # as the transactions were scored
        half = len(in_order) // 2
        first_half, second_half = (np.percentile(in_order[:half], 99), np.percentile(in_order[half:], 99)) if half else (0, 0)
        edge = min(5, (len(cpu.samples) - 1) // 2)  # seconds at each end of the paced run
        print(f"  p99 of the first and the second half of those transactions: {first_half:.1f} / {second_half:.1f} ms; "
              f"the broker (Tansu: each fetch that returns records costs it more the more batches the partition "
              f"holds) used {cpu.cores('tansu', 0, edge):.2f} cores in the first {edge} s and "
              f"{cpu.cores('tansu', -1 - edge, -1):.2f} in the last {edge} s, the load process "
              f"{cpu.cores(offer.pid or 0, 0, -1):.2f}, Valkey {cpu.cores('valkey-server', 0, -1):.2f}")
        print(f"  garbage collector meanwhile: {gc_pauses.summary()}")
        print(f"latency publish->polled, bare kafka-python consumer, same load on a fresh topic: p50 {bare[0]:.1f} ms, "
              f"p95 {bare[1]:.1f} ms, p99 {bare[2]:.1f} ms")
        print(f"`fraudstream consume` in a process of its own (default settings: {Settings().max_poll_records:,} "
              f"records per poll) on the same backlog: {cli.summary['processed']:,} transactions, "
              f"{cli.summary['labels_learned']:,} labels learned, {cli.summary['throughput_tps']:,.0f} tx/s; "
              f"max RSS {cli.max_rss_mb:,.0f} MB")
        print(f"this process's max RSS: {rss_mb:,.0f} MB (its own consumer and the rows it publishes)", flush=True)
    memory = None
    if args.memory_days > 0 and DATA.exists():  # after the servers above have stopped
        memory = measure(args.memory_days)
        print(f"Redis per customer after {memory.days} days of handbook traffic ({memory.transactions:,} "
              f"transactions, {memory.customers:,} customers, {memory.terminals:,} terminals, "
              f"{memory.transactions / memory.customers / memory.days:.2f} transactions a customer a day; MEMORY USAGE): "
              f"feature state {memory.feature_state:,.0f} B (the customer's events {memory.customer_state:,.0f} B, "
              f"its share of the terminals' {memory.terminal_share:,.0f} B); scored records waiting for their labels "
              f"{memory.records:,.0f} B; total {memory.total:,.0f} B (Valkey used_memory {memory.used_memory_mb:,.1f} MB)")
    elif args.memory_days > 0:
        print(f"Redis per customer: not measured (needs {DATA})")
    print("targets:")
    for t in targets(pipeline, pipeline / raw_mean, p99, args.rate, memory):
        print(f"  {t.what:70s} {t.measured:>12s}  {'met' if t.met else 'NOT met'}")


if __name__ == "__main__":
    main()
