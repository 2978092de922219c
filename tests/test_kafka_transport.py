"""`fraudstream.kafka_transport`: a socket read racing a close is quiet; every other read as before."""

from __future__ import annotations

import logging
import socket
import struct
import time
from collections.abc import Iterator

import kafka
import pytest
from kafka.errors import KafkaConnectionError

from fraudstream.kafka_transport import MENDED_VERSIONS, quiet_closed_reads

pytestmark = pytest.mark.skipif(kafka.__version__ not in MENDED_VERSIONS,
                                reason=f"mirrors kafka-python {sorted(MENDED_VERSIONS)}, not {kafka.__version__}")


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, peer = socket.socketpair()
    ours.setblocking(False)
    yield ours, peer
    ours.close()
    peer.close()


def transport(sock: socket.socket) -> object:
    from kafka.net.transport import KafkaTCPTransport

    assert quiet_closed_reads()
    return KafkaTCPTransport(None, sock, host="test")


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "kafka.net.transport" and r.levelno >= logging.ERROR]


def test_data_is_read_as_before(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, peer = pair
    peer.sendall(b"x" * 5000)
    data, error = transport(ours)._sock_recv()
    assert data == b"x" * 5000 and error is None
    assert transport(ours)._sock_recv() == (b"", None)  # nothing more: would block


def test_a_peer_that_disconnects_is_still_an_error(pair: tuple[socket.socket, socket.socket],
                                                   caplog: pytest.LogCaptureFixture) -> None:
    ours, peer = pair
    peer.close()
    data, error = transport(ours)._sock_recv()
    assert data == b"" and isinstance(error, KafkaConnectionError)
    assert any("socket disconnected" in m for m in errors_logged(caplog))


@pytest.mark.parametrize("closed", ["socket gone", "socket closed", "socket shut down"])
def test_a_read_after_the_close_ends_quietly(pair: tuple[socket.socket, socket.socket], closed: str,
                                             caplog: pytest.LogCaptureFixture) -> None:
    ours, _ = pair
    t = transport(ours)
    t._closed = True  # what close() does on the caller's thread before the IO thread reads
    if closed == "socket gone":
        t._sock = None
    elif closed == "socket closed":
        ours.close()
    else:
        ours.shutdown(socket.SHUT_RDWR)
    data, error = t._sock_recv()
    assert data == b"" and isinstance(error, KafkaConnectionError)
    assert errors_logged(caplog) == []


def test_a_failure_on_an_open_transport_is_still_logged(pair: tuple[socket.socket, socket.socket],
                                                       caplog: pytest.LogCaptureFixture) -> None:
    ours, _ = pair
    t = transport(ours)
    ours.close()  # not through the transport: a failure kafka-python should report
    data, error = t._sock_recv()
    assert isinstance(error, KafkaConnectionError)
    assert any("Error receiving network data" in m for m in errors_logged(caplog))


def test_a_connection_reset_by_the_broker_is_one_line_without_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        ours = socket.create_connection(server.getsockname())
        peer, _ = server.accept()
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.close()  # linger 0: a reset, as from a broker that stopped
        time.sleep(0.1)
        ours.setblocking(False)
        try:
            data, error = transport(ours)._sock_recv()
        finally:
            ours.close()
    assert data == b"" and isinstance(error, KafkaConnectionError)
    lost = [r for r in caplog.records if r.name == "kafka.net.transport" and r.levelno >= logging.ERROR]
    assert [r.getMessage().split(": ", 1)[1] for r in lost] == ["connection lost: ConnectionResetError(104, 'Connection reset by peer')"]
    assert lost[0].exc_info is None


def test_another_kafka_python_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka, "__version__", "9.9.9")
    assert quiet_closed_reads() is False
