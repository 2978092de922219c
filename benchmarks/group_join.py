"""How long a scoring consumer takes to join its group, run by hand:

    .venv/bin/python benchmarks/group_join.py [--starts 12] [--join-poll-ms 500 20]

Embedded servers; each start is a fresh scoring consumer in a group of its own (one member, so one
JoinGroup round should do), run until it has been idle for 0.3 s. Printed per value of the
consumer's `JOIN_POLL_MS` (how long a poll waits while a join is in progress; 20 ms is what every
idle poll waited before 2026-12-05): the seconds from `run()` to the assignment of each start, and
how many JoinGroup rounds it took (kafka-python's "Successfully joined group" log lines). The values
alternate start by start, so a busy moment affects them alike.

kafka-python 3.0.12 throws away a join that completes while no poll is waiting for it, and joins
again: each extra round costs another rebalance (~3 s with Tansu).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from collections import defaultdict

from pydantic import SecretStr

from fraudstream.config import Settings
from fraudstream.kafka_io import ensure_topics
from fraudstream.services import embedded_services
from fraudstream.stream import consumer
from fraudstream.stream.app import scoring_consumer


class JoinCounter(logging.Handler):
    """Counts kafka-python's log lines of completed JoinGroup rounds."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.rounds = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("Successfully joined group"):
            self.rounds += 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--starts", type=int, default=12, help="starts per value of --join-poll-ms")
    parser.add_argument("--join-poll-ms", type=int, nargs="+", default=[500, 20])
    args = parser.parse_args()
    counter = JoinCounter()
    coordinator_log = logging.getLogger("kafka.coordinator")
    coordinator_log.setLevel(logging.INFO)
    coordinator_log.addHandler(counter)
    seconds: dict[int, list[float]] = defaultdict(list)
    rounds: dict[int, list[int]] = defaultdict(list)
    # a key of its own: no warning about the built-in demo key at every start
    with embedded_services(Settings(model_signing_key=SecretStr("group-join-benchmark"))) as settings:
        ensure_topics(settings)
        for i in range(args.starts):
            for poll_ms in args.join_poll_ms:
                consumer.JOIN_POLL_MS = poll_ms
                fresh = settings.model_copy(update={"group_id": f"join-{i}-{poll_ms}",
                                                    "redis_key_prefix": f"join-{i}-{poll_ms}"})
                counter.rounds = 0
                with scoring_consumer(fresh) as app:
                    started = time.monotonic()
                    app.run(idle_timeout=0.3)
                    seconds[poll_ms].append(app.assigned_at - started)
                    rounds[poll_ms].append(counter.rounds)
    for poll_ms in args.join_poll_ms:
        extra = sum(1 for r in rounds[poll_ms] if r > 1)
        print(f"JOIN_POLL_MS {poll_ms:4d}: {extra} of {args.starts} starts took more than one JoinGroup round; "
              f"seconds to assignment median {statistics.median(seconds[poll_ms]):.1f}, "
              f"max {max(seconds[poll_ms]):.1f}; rounds {rounds[poll_ms]}")


if __name__ == "__main__":
    main()
