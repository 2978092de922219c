"""How long a scoring consumer takes to join its group, and to get its partitions back when a second
member joins, run by hand:

    .venv/bin/python benchmarks/group_join.py [--starts 8] [--join-poll-ms 500 20] [--mend on off]

Embedded servers. Per variant (each value of the consumer's `JOIN_POLL_MS`, how long a poll waits
while a join is in progress, 20 ms being what every idle poll waited before 2026-12-05; with and
without `fraudstream.kafka_join`'s mend of kafka-python 3.0.12), alternating start by start so that a
busy moment affects them alike:

- a start: a fresh scoring consumer in a group of its own (one member, so one JoinGroup round should
  do), run until idle for 0.3 s: seconds from `run()` to the assignment, and JoinGroup rounds
  (kafka-python's "Successfully joined group" log lines);
- a rebalance: then a second member (subscribed to the labels topic, polling every 100 ms) joins:
  seconds from its first poll until the scoring consumer has partitions again.

kafka-python 3.0.12 throws away a join that completes while no poll is waiting for it, and joins
again: each extra round costs another ~3 s with Tansu.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import threading
import time
from collections import defaultdict
from typing import Any

from pydantic import SecretStr

from fraudstream import kafka_io
from fraudstream.config import Settings
from fraudstream.kafka_io import close_group_consumer, ensure_topics, make_consumer
from fraudstream.services import embedded_services
from fraudstream.stream import consumer
from fraudstream.stream.app import scoring_consumer

MEND = kafka_io.keep_completed_joins


class JoinCounter(logging.Handler):
    """Counts kafka-python's log lines of completed JoinGroup rounds."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.rounds = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("Successfully joined group"):
            self.rounds += 1


def one_start(settings: Settings, counter: JoinCounter) -> tuple[float, int, float]:
    """(seconds to the assignment, JoinGroup rounds, seconds to the assignment after a second member joined)."""
    counter.rounds = 0
    with scoring_consumer(settings) as app:
        started = time.monotonic()
        app.run(idle_timeout=0.3)
        joined, rounds = app.assigned_at - started, counter.rounds
        other = make_consumer(settings, [settings.topic_labels])
        stop = threading.Event()

        def other_member() -> None:
            while not stop.is_set():
                other.poll(timeout_ms=100)

        thread = threading.Thread(target=other_member)
        before = app.assigned_at
        joins_at = time.monotonic()
        thread.start()
        try:
            while app.assigned_at == before and time.monotonic() - joins_at < 60:
                app.run(idle_timeout=0.3)
        finally:
            stop.set()
            thread.join(timeout=10)
            close_group_consumer(other)
        return joined, rounds, app.assigned_at - joins_at


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--starts", type=int, default=8, help="starts per variant")
    parser.add_argument("--join-poll-ms", type=int, nargs="+", default=[500, 20])
    parser.add_argument("--mend", choices=["on", "off"], nargs="+", default=["on", "off"])
    args = parser.parse_args()
    counter = JoinCounter()
    coordinator_log = logging.getLogger("kafka.coordinator")
    coordinator_log.setLevel(logging.INFO)
    coordinator_log.addHandler(counter)
    variants = [(mend, poll_ms) for mend in args.mend for poll_ms in args.join_poll_ms]
    results: dict[tuple[str, int], list[tuple[float, int, float]]] = defaultdict(list)
    # a key of its own: no warning about the built-in demo key at every start
    with embedded_services(Settings(model_signing_key=SecretStr("group-join-benchmark"))) as settings:
        ensure_topics(settings)
        for i in range(args.starts):
            for mend, poll_ms in variants:
                consumer.JOIN_POLL_MS = poll_ms
                kafka_io.keep_completed_joins = MEND if mend == "on" else _no_mend
                fresh = settings.model_copy(update={"group_id": f"join-{i}-{mend}-{poll_ms}",
                                                    "redis_key_prefix": f"join-{i}-{mend}-{poll_ms}"})
                results[(mend, poll_ms)].append(one_start(fresh, counter))
    for mend, poll_ms in variants:
        runs = results[(mend, poll_ms)]
        joins, rounds, rebalances = [r[0] for r in runs], [r[1] for r in runs], [r[2] for r in runs]
        print(f"mend {mend:3s}, JOIN_POLL_MS {poll_ms:4d}: start: {sum(r > 1 for r in rounds)} of {len(runs)} "
              f"took more than one JoinGroup round, seconds to the assignment median "
              f"{statistics.median(joins):.1f}, max {max(joins):.1f}; rebalance with a second member: seconds "
              f"median {statistics.median(rebalances):.1f}, max {max(rebalances):.1f} "
              f"({', '.join(f'{s:.1f}' for s in rebalances)})")


def _no_mend(consumer: Any) -> bool:
    return False


if __name__ == "__main__":
    main()
