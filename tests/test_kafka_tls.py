"""A client set for TLS against a listener that does not speak it gets a clear error, not silence."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest
from kafka.errors import KafkaConnectionError

import fraudstream.kafka_io as kafka_io
import fraudstream.kafka_reach as kafka_reach
from fraudstream.config import Settings


def test_tls_against_the_plaintext_broker_is_a_clear_error(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka_reach, "TLS_HANDSHAKE_S", 1.0)
    started = time.monotonic()
    with pytest.raises(KafkaConnectionError, match="no TLS handshake with .*is the listener plaintext"):
        kafka_io.make_consumer(settings.model_copy(update={"kafka_security_protocol": "SSL"}))
    assert time.monotonic() - started < 10  # kafka-python alone waited without a word for as long as we let it


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
def test_a_listener_that_completes_the_handshake_passes(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-days", "1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve_one() -> None:
        conn, _ = listener.accept()
        try:
            with context.wrap_socket(conn, server_side=True):
                pass
        except OSError:
            pass

    server = threading.Thread(target=serve_one, daemon=True)
    server.start()
    try:
        kafka_reach.check_tls([f"127.0.0.1:{port}"], timeout_s=5.0)  # returns: a handshake completed
    finally:
        server.join(timeout=5)
        listener.close()
    with pytest.raises(KafkaConnectionError, match="no TLS handshake with 127.0.0.1:"):
        kafka_reach.check_tls([f"127.0.0.1:{port}"], timeout_s=1.0)  # nothing listens there any more
