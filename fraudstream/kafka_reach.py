"""Whether Kafka's bootstrap servers can be reached, checked before kafka-python tries: one clear
line instead of its retries (a broker not up yet, a TLS client against a plaintext listener)."""

from __future__ import annotations

import logging
import socket
import ssl
import time

from kafka.errors import KafkaConnectionError

log = logging.getLogger(__name__)
DEFAULT_KAFKA_PORT = 9092  # of a bootstrap server given without one, as kafka-python takes it

BROKER_WAIT_S = 30.0  # how long clients wait for a bootstrap server to accept a connection


def host_port(server: str) -> tuple[str, int]:
    """(host, port) of a bootstrap server: IPv6 brackets off, no port Kafka's default (as kafka-python
    takes it); `ValueError` for a port that is not a number.

    >>> host_port(" [::1]:9093"), host_port("kafka"), host_port(":29092")
    (('::1', 9093), ('kafka', 9092), ('localhost', 29092))
    """
    host, colon, port = server.strip().rpartition(":")
    if not colon:
        host, port = port, str(DEFAULT_KAFKA_PORT)
    return host.strip("[]") or "localhost", int(port)


def await_bootstrap(servers: list[str], timeout_s: float | None = None) -> None:
    """Return once one of the bootstrap `servers` (host:port) accepts a TCP connection; kafka-python's
    `KafkaConnectionError` after `timeout_s` (default `BROKER_WAIT_S`; the CLI names the option or
    env var that gave the address). kafka-python waits as long on its own, but logs ~20 errors and
    warnings on the way; this logs one line, at the first failure.

    >>> await_bootstrap(["127.0.0.1:1"], timeout_s=0.0)
    Traceback (most recent call last):
    ...
    kafka.errors.KafkaConnectionError: KafkaConnectionError: nothing accepted a connection at 127.0.0.1:1 within 0 s: [Errno 111] Connection refused
    >>> await_bootstrap(["127.0.0.1"], timeout_s=0.0)  # Kafka's default port
    Traceback (most recent call last):
    ...
    kafka.errors.KafkaConnectionError: KafkaConnectionError: nothing accepted a connection at 127.0.0.1 within 0 s: [Errno 111] Connection refused
    """
    timeout_s = BROKER_WAIT_S if timeout_s is None else timeout_s
    deadline, warned = time.monotonic() + timeout_s, False
    while True:
        for server in servers:
            try:
                socket.create_connection(host_port(server), timeout=2.0).close()
                return
            except (OSError, ValueError) as exc:
                error = exc
        if time.monotonic() >= deadline:
            raise KafkaConnectionError(f"nothing accepted a connection at {','.join(servers)} "
                                       f"within {timeout_s:g} s: {error}")
        if not warned:
            warned = True
            log.warning("waiting up to %g s for a Kafka broker at %s: %s", timeout_s, ",".join(servers), error)
        time.sleep(0.5)


TLS_HANDSHAKE_S = 10.0  # how long `check_tls` waits for a server's side of a TLS handshake


def check_tls(servers: list[str], timeout_s: float | None = None) -> None:
    """Return once one of the bootstrap `servers` completes a TLS handshake; kafka-python's
    `KafkaConnectionError` naming what to check otherwise. For clients set for SSL or SASL_SSL: against
    a plaintext listener kafka-python 3.0.12 retries its handshake without a word, for ever (seen:
    `fraudstream consume` silent for a minute). The certificate is not checked here; kafka-python
    checks it next (`ssl_cafile`).
    """
    timeout_s = TLS_HANDSHAKE_S if timeout_s is None else timeout_s
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    errors = []
    for server in servers:
        try:
            host, port = host_port(server)
            with socket.create_connection((host, port), timeout=timeout_s) as raw:
                with context.wrap_socket(raw, server_hostname=host):
                    return
        except (OSError, ValueError) as exc:  # ssl.SSLError and timeouts are OSErrors
            errors.append(f"{server}: {exc or type(exc).__name__}")
    raise KafkaConnectionError(f"no TLS handshake with {', '.join(errors)} (within {timeout_s:g} s each); the "
                               "security protocol asks for TLS: is the listener plaintext "
                               "(FRAUDSTREAM_KAFKA_SECURITY_PROTOCOL=PLAINTEXT or SASL_PLAINTEXT)?")
