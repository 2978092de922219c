"""Real servers for the tests: testcontainers when a Docker engine answers, embedded binaries otherwise."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass

from fraudstream.services import ServerProcess, tansu_process, valkey_process, wait_for_kafka

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Endpoints:
    kafka_bootstrap: str
    redis_url: str
    kind: str
    redis_process: ServerProcess | None = None


def docker_available() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        client.ping()
        return True
    except Exception:  # noqa: BLE001 - any failure means no engine
        return False


@contextlib.contextmanager
def start_servers() -> Iterator[Endpoints]:
    if docker_available():  # pragma: no cover - no Docker engine on our CI machines
        from testcontainers.kafka import KafkaContainer
        from testcontainers.redis import RedisContainer

        with KafkaContainer().with_kraft() as kafka, RedisContainer() as redis_container:
            host = redis_container.get_container_host_ip()
            port = redis_container.get_exposed_port(6379)
            yield Endpoints(kafka.get_bootstrap_server(), f"redis://{host}:{port}/0", "testcontainers")
        return
    broker = tansu_process()
    redis_server = valkey_process()
    try:
        broker.start()
        redis_server.start()
        bootstrap = f"127.0.0.1:{broker.port}"
        wait_for_kafka(bootstrap)
        yield Endpoints(bootstrap, f"redis://127.0.0.1:{redis_server.port}/0", "embedded", redis_server)
    finally:
        redis_server.stop()
        broker.stop()
