"""A kafka-python 3.0.12 workaround: a socket read that races the connection's close ends quietly.

kafka-python 3.0.12 reads a connection on its IO thread: it waits until the socket is readable,
then calls `KafkaTCPTransport._sock_recv`. When another thread closes the connection in between
(a consumer or producer being closed at the end of a run), the transport's socket is already None
or closed, the read fails with AttributeError or OSError, and kafka-python logs it at ERROR level
with a traceback ("Error receiving network data closing socket") although nothing went wrong. A
user saw it after a `fraudstream consume` ended normally (once in eight runs, 2026-12-05).

`quiet_closed_reads()` replaces that method of the TCP transport (the class: transports are built
inside kafka-python's connection code) with the same loop, which reads the socket once into a
local and, when the read fails on a transport that is closed by then, returns the connection
error kafka-python's own code returns, without the log line. A connection the broker reset (it
stopped) is logged as an error in one line, without kafka-python's traceback, which reads like a
crash of ours in a broker outage; any other failure is logged as before.
Only for the kafka-python version whose code this mirrors; with another version nothing changes.
"""

from __future__ import annotations

import logging
from typing import Any

import kafka
from kafka import errors

log = logging.getLogger(__name__)

MENDED_VERSIONS = frozenset({"3.0.12"})
_transport_log = logging.getLogger("kafka.net.transport")  # where kafka-python logs a failed read


def quiet_closed_reads() -> bool:
    """Mend `KafkaTCPTransport._sock_recv` once (see the module docstring); False when the
    kafka-python version is not one this mirrors."""
    if kafka.__version__ not in MENDED_VERSIONS:
        return False
    from kafka.net.transport import KafkaTCPTransport  # where 3.0.12 has it

    if getattr(KafkaTCPTransport._sock_recv, "mended_by_fraudstream", False):
        return True
    KafkaTCPTransport._sock_recv = _sock_recv  # type: ignore[method-assign]
    return True


def _sock_recv(self: Any) -> tuple[bytes, Exception | None]:
    """kafka-python 3.0.12's `KafkaTCPTransport._sock_recv`, quiet when the transport was closed."""
    received: list[bytes] = []
    error: Exception | None = None
    sock = self._sock
    while True:
        try:
            if sock is None:
                raise OSError("the connection's socket is gone")
            data = sock.recv(4096)
            if not data:  # the peer disconnected, or this side shut the socket down while closing
                if self._closed:
                    log.debug("%s: socket shut down by the connection's close", self)
                else:
                    _transport_log.error("%s: socket disconnected", self)
                error = errors.KafkaConnectionError("socket disconnected")
                break
            received.append(data)
        except (BlockingIOError, InterruptedError):
            break
        except BaseException as exc:  # noqa: BLE001 - as kafka-python: any failure ends the connection
            if self._closed:
                log.debug("%s: read after the connection was closed: %r", self, exc)
            elif isinstance(exc, ConnectionError):  # the broker went away: an outage, not a bug to trace
                _transport_log.error("%s: connection lost: %r", self, exc)
            else:
                _transport_log.exception("%s: Error receiving network data closing socket", self)
            error = errors.KafkaConnectionError(exc)
            break
    return b"".join(received), error


_sock_recv.mended_by_fraudstream = True  # type: ignore[attr-defined]
