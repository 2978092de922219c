"""A broker that refuses the SASL login gets a prompt one-line error naming the settings, not 30 s of
retries ending in "the Kafka broker did not answer"; the password is in no message.

Against a real Tansu started with --authentication. It has no users (it takes none before a login:
AlterUserScramCredentials needs one, and its storage is memory), so every login is refused: SCRAM
answers ``e=unknown-user`` in the exchange (a wrong password of a known user is ``e=invalid-proof``,
the same path), and it closes the connection for PLAIN, which it does not take. Apache Kafka's
answers (error codes), which no server here gives, are checked against a listener that speaks just
SaslHandshake and SaslAuthenticate.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from pydantic import SecretStr

import fraudstream.kafka_io as kafka_io
from fraudstream.cli import main
from fraudstream.config import Settings
from fraudstream.errors import KafkaAuthError
from fraudstream.kafka_auth import check_sasl
from fraudstream.services import ServerProcess, tansu_process

PASSWORD = "hunter2-not-to-be-shown"
QUICK_S = 5.0  # kafka-python alone took 30 s (its bootstrap timeout) to say the broker "did not answer"


@pytest.fixture(scope="module")
def sasl_broker() -> Iterator[ServerProcess]:
    broker = tansu_process()
    broker.argv.append("--authentication")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def sasl_settings(settings: Settings, broker: ServerProcess, mechanism: str) -> Settings:
    return settings.model_copy(update={
        "kafka_bootstrap": f"127.0.0.1:{broker.port}", "kafka_security_protocol": "SASL_PLAINTEXT",
        "kafka_sasl_mechanism": mechanism, "kafka_sasl_username": "alice",
        "kafka_sasl_password": SecretStr(PASSWORD),
    })


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_a_refused_scram_login_is_a_quick_clear_error(settings: Settings, sasl_broker: ServerProcess,
                                                      mechanism: str) -> None:
    wrong = sasl_settings(settings, sasl_broker, mechanism)
    for make in (kafka_io.make_consumer, kafka_io.make_producer, kafka_io.ensure_topics):
        started = time.monotonic()
        with pytest.raises(KafkaAuthError, match=f"refused the SASL login of user 'alice' with {mechanism}: "
                                                 "e=unknown-user") as caught:
            make(wrong)
        assert time.monotonic() - started < QUICK_S
        message = str(caught.value)
        assert "FRAUDSTREAM_KAFKA_SASL_USERNAME" in message and "FRAUDSTREAM_KAFKA_SASL_PASSWORD" in message
        assert f"127.0.0.1:{sasl_broker.port}" in message and PASSWORD not in message


def test_a_mechanism_the_broker_drops_the_connection_for_is_a_clear_error(settings: Settings,
                                                                         sasl_broker: ServerProcess) -> None:
    started = time.monotonic()
    with pytest.raises(KafkaAuthError, match="closed the connection when asked for SASL mechanism PLAIN.*"
                                             "FRAUDSTREAM_KAFKA_SASL_MECHANISM") as caught:
        kafka_io.make_producer(sasl_settings(settings, sasl_broker, "PLAIN"))
    assert time.monotonic() - started < QUICK_S and PASSWORD not in str(caught.value)


def test_sasl_against_a_listener_without_it_names_the_security_protocol(settings: Settings) -> None:
    config = kafka_io.client_config(settings) | {
        "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-256", "sasl_plain_username": "alice",
        "sasl_plain_password": PASSWORD}
    # Tansu without --authentication answers UNSUPPORTED_SASL_MECHANISM; Apache Kafka ILLEGAL_SASL_STATE
    with pytest.raises(KafkaAuthError, match="FRAUDSTREAM_KAFKA_SECURITY_PROTOCOL") as caught:
        check_sasl(config)
    assert PASSWORD not in str(caught.value)


def test_no_check_without_sasl_nor_when_nothing_answers() -> None:
    check_sasl({"bootstrap_servers": ["127.0.0.1:1"], "security_protocol": "PLAINTEXT"})
    # nothing to ask: undecided, left to kafka-python (and to `await_bootstrap` before it)
    check_sasl({"bootstrap_servers": ["127.0.0.1:1"], "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": "PLAIN", "sasl_plain_username": "a", "sasl_plain_password": "b"}, timeout_s=1.0)


@pytest.mark.parametrize("command", [["topics"], ["dead-letters"], ["alerts"]])
def test_the_commands_say_it_in_one_line(settings: Settings, sasl_broker: ServerProcess, command: list[str]) -> None:
    env = {"FRAUDSTREAM_KAFKA_BOOTSTRAP": f"127.0.0.1:{sasl_broker.port}", "FRAUDSTREAM_REDIS_URL": settings.redis_url,
           "FRAUDSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "FRAUDSTREAM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
           "FRAUDSTREAM_KAFKA_SASL_USERNAME": "alice", "FRAUDSTREAM_KAFKA_SASL_PASSWORD": PASSWORD}
    started = time.monotonic()
    result = CliRunner().invoke(main, ["--log-level", "DEBUG", *command], env=env)
    assert time.monotonic() - started < QUICK_S
    assert result.exit_code == 1, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: the Kafka broker at 127.0.0.1:") and "refused the SASL login" in last
    assert "FRAUDSTREAM_KAFKA_SASL_PASSWORD" in last and "did not answer" not in result.output
    assert PASSWORD not in result.output


class KafkaLikeListener:
    """A real TCP listener that answers SaslHandshake v1 and SaslAuthenticate v1 as Apache Kafka does
    (Tansu answers a SCRAM refusal in the exchange and takes no PLAIN: these paths are Kafka's only)."""

    def __init__(self, handshake_error: int, mechanisms: list[str], auth_error: int, auth_message: str | None,
                 sasl_versions: tuple[int, int] = (0, 1), close_at_handshake: bool = False) -> None:
        self.handshake = struct.pack(">hi", handshake_error, len(mechanisms)) + b"".join(
            struct.pack(">h", len(m)) + m.encode() for m in mechanisms)
        # ApiVersions v0: SaslHandshake's versions, and SaslAuthenticate (Kafka 1.0+) where the handshake takes v1
        keys = [(17, *sasl_versions)] + ([(36, 0, 1)] if sasl_versions[1] >= 1 else [])
        self.api_versions = struct.pack(">hi", 0, len(keys)) + b"".join(struct.pack(">hhh", *k) for k in keys)
        self.asked: list[tuple[int, int]] = []  # (api key, version) of each request
        self.sasl_versions_low, self.sasl_versions_high = sasl_versions
        self.close_at_handshake = close_at_handshake  # as Tansu does for a mechanism it lacks
        text = b"\xff\xff" if auth_message is None else struct.pack(">h", len(auth_message)) + auth_message.encode()
        self.authenticate = struct.pack(">h", auth_error) + text + struct.pack(">iq", 0, 0)
        self.tokens: list[bytes] = []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.address = "127.0.0.1:%d" % self.server.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while True:  # check_sasl's connections (it asks again once after a connection closed early)
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.answer(conn)

    def answer(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as stream:
            while header := stream.read(4):
                body = stream.read(struct.unpack(">i", header)[0])
                api_key, version, correlation_id = struct.unpack_from(">hhi", body)
                self.asked.append((api_key, version))
                if api_key == 17 and (self.close_at_handshake
                                      or not self.sasl_versions_low <= version <= self.sasl_versions_high):
                    return  # as Kafka before 1.0 does for SaslHandshake v1: the connection closed
                client_id = struct.unpack_from(">h", body, 8)[0]
                if api_key == 36:
                    self.tokens.append(body[10 + client_id + 4:])
                answer = struct.pack(">i", correlation_id) + {17: self.handshake, 18: self.api_versions}.get(
                    api_key, self.authenticate)
                conn.sendall(struct.pack(">i", len(answer)) + answer)


def plain_config(address: str) -> dict[str, object]:
    return {"bootstrap_servers": [address], "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN",
            "sasl_plain_username": "alice", "sasl_plain_password": PASSWORD}


@pytest.mark.parametrize(("handshake_error", "mechanisms", "auth_error", "expected"), [
    (0, ["PLAIN"], 58, "refused the SASL login of user 'alice' with PLAIN: SASL_AUTHENTICATION_FAILED: "
                       "Authentication failed: Invalid username or password"),
    (33, ["SCRAM-SHA-512"], 0, r"does not take SASL mechanism PLAIN \(UNSUPPORTED_SASL_MECHANISM; it takes SCRAM-SHA-512"),
    (34, [], 0, r"takes no SASL login on that listener \(ILLEGAL_SASL_STATE\): check FRAUDSTREAM_KAFKA_SECURITY_PROTOCOL"),
])
def test_apache_kafkas_refusals(handshake_error: int, mechanisms: list[str], auth_error: int, expected: str) -> None:
    listener = KafkaLikeListener(handshake_error, mechanisms, auth_error,
                                 "Authentication failed: Invalid username or password")
    with pytest.raises(KafkaAuthError, match=expected) as caught:
        check_sasl(plain_config(listener.address), timeout_s=5.0)
    assert PASSWORD not in str(caught.value)


def test_an_accepted_login_passes() -> None:
    listener = KafkaLikeListener(0, ["PLAIN"], 0, None)
    check_sasl(plain_config(listener.address), timeout_s=5.0)
    assert listener.tokens == [f"\0alice\0{PASSWORD}".encode()]
    assert listener.asked == [(18, 0), (17, 1), (36, 1)]


def test_a_broker_with_saslhandshake_v0_only_is_left_to_kafka_python() -> None:
    """Kafka before 1.0 closes the connection for SaslHandshake v1 (kafka-python logs in with v0):
    not a refusal. Asked v1 regardless, the check said "closed the connection" and stopped the command."""
    listener = KafkaLikeListener(0, ["PLAIN"], 58, "Authentication failed", sasl_versions=(0, 0))
    check_sasl(plain_config(listener.address), timeout_s=5.0)
    assert listener.asked == [(18, 0)] and listener.tokens == []


def test_a_password_the_check_cannot_encode_is_in_no_log_line(caplog: pytest.LogCaptureFixture) -> None:
    """Bytes of a password that are not UTF-8 (an environment in Latin-1) come as lone surrogates;
    the encoding error's repr held the whole password."""
    secret = "s3cr\udce9t-" + PASSWORD
    for mechanism in ("PLAIN", "SCRAM-SHA-256"):
        listener = KafkaLikeListener(0, [mechanism], 0, None)
        with caplog.at_level(logging.DEBUG, logger="fraudstream.kafka_auth"):
            check_sasl(plain_config(listener.address) | {"sasl_mechanism": mechanism, "sasl_plain_password": secret},
                       timeout_s=5.0)
        assert "undecided: UnicodeEncodeError" in caplog.text
        assert PASSWORD not in caplog.text and "s3cr" not in caplog.text
        listener.server.close()


def test_a_server_that_closes_the_connection_does_not_refuse_for_the_others() -> None:
    """kafka-python tries every bootstrap server: one that closes the connection in the exchange (a
    broker stopping, a proxy) while the next accepts is no refusal; every one closing it is."""
    closing, accepting = KafkaLikeListener(0, ["PLAIN"], 0, None, close_at_handshake=True), \
        KafkaLikeListener(0, ["PLAIN"], 0, None)
    config = plain_config(closing.address) | {"bootstrap_servers": [closing.address, accepting.address]}
    check_sasl(config, timeout_s=5.0)
    assert accepting.tokens == [f"\0alice\0{PASSWORD}".encode()]
    other = KafkaLikeListener(0, ["PLAIN"], 0, None, close_at_handshake=True)
    with pytest.raises(KafkaAuthError, match="closed the connection when asked for SASL mechanism PLAIN"):
        check_sasl(plain_config(closing.address) | {"bootstrap_servers": [closing.address, other.address]},
                   timeout_s=5.0)
