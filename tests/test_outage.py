"""Both servers gone under a running consumer (what `fraudstream up` stopped beside it does): the
consumer waits with a growing backoff, and a stop then ends it without waiting for a group that
no broker answers for. Servers of its own, since they are stopped."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator

from kafka import KafkaProducer

from fraudstream.config import Settings
from fraudstream.kafka_io import ensure_topics
from fraudstream.services import ServerProcess, tansu_process, valkey_process, wait_for_kafka
from tests.consumer_procs import finish, kill, progress_or_explain, reaped, scripted_stream, start_consumer

RETRY = re.compile(r"model maintenance failed, retrying in ([0-9.]+) s")


@contextlib.contextmanager
def consuming_on_own_servers(settings: Settings, n: int) -> Iterator[tuple[ServerProcess, ServerProcess,
                                                                           subprocess.Popen[str]]]:
    """A broker and a Valkey of the test's own (it stops them), `n` transactions on them, and a
    consumer process that has scored them all; everything is stopped by PID when the block exits."""
    broker, cache = tansu_process(), valkey_process()
    try:
        broker.start()
        cache.start()
        own = settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{broker.port}",
                                          "redis_url": f"redis://127.0.0.1:{cache.port}/0"})
        wait_for_kafka(own.kafka_bootstrap or "")
        ensure_topics(own)
        producer = KafkaProducer(bootstrap_servers=own.kafka_bootstrap)
        for tx in scripted_stream(n):
            producer.send(own.topic_transactions, key=tx.customer_id.encode(), value=tx.to_json_bytes())
        producer.flush()
        producer.close()
        proc = start_consumer(own)
        with reaped(proc):
            progress_or_explain(own, proc, n, 60)
            yield broker, cache, proc
    finally:
        cache.stop()
        broker.stop()


def test_servers_gone_the_backoff_grows_and_a_stop_does_not_wait_for_the_group(settings: Settings) -> None:
    with consuming_on_own_servers(settings, 1000) as (broker, cache, proc):
        cache.stop()
        broker.stop()
        time.sleep(5.0)  # retries after 0.5, 1 and 2 s, then a wait of 4
        kill(proc, signal.SIGTERM)
        stopped = time.monotonic()
        _, err = finish(proc, 60)
        took = time.monotonic() - stopped
    assert proc.returncode == 0, err[-3000:]
    delays = [float(d) for d in RETRY.findall(err)]
    assert delays[:3] == [0.5, 1.0, 2.0], (delays, err[-3000:])  # each wait twice the one before
    assert "its coordinator is unreachable" in err, err[-3000:]
    assert "without a completed rebalance" not in err  # the 8 s wait for a group nobody answers for
    assert took < 8.0, (took, err[-3000:])


def test_a_stop_does_not_wait_long_for_a_broker_that_hangs(settings: Settings) -> None:
    """A broker that keeps its connections but answers nothing (stopped, overloaded): the consumer
    waits for the group's rebalance its bounded 8 s, then for the LeaveGroup at most 3 s. It waited
    for kafka-python's 30 s request timeout there (an operator's walk-through: ~29 s, a typical
    grace period before a SIGKILL)."""
    with consuming_on_own_servers(settings, 300) as (broker, _, proc):
        assert broker.pid is not None
        os.kill(broker.pid, signal.SIGSTOP)
        try:
            kill(proc, signal.SIGTERM)
            stopped = time.monotonic()
            _, err = finish(proc, 60)
            took = time.monotonic() - stopped
        finally:
            os.kill(broker.pid, signal.SIGCONT)
    assert proc.returncode == 0, err[-3000:]
    assert took < 16.0, (took, err[-3000:])
