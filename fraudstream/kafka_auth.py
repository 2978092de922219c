"""Whether a Kafka broker accepts the SASL user name and password, checked before kafka-python tries.

kafka-python 3.0.12 retries a refused authentication until its bootstrap timeout (30 s) and then
raises `KafkaTimeoutError` ("Unable to bootstrap"), which reads as a broker that did not answer:
its connection swallows the error before the connection manager can see it was an authentication
failure. A SCRAM refusal sent in the exchange itself (RFC 5802 ``e=...``, as Tansu sends it, where
Apache Kafka answers with the SASL_AUTHENTICATION_FAILED error code) even fails there with a
``KeyError: 'v'``. `check_sasl` makes the same exchange once on its own connection (ApiVersions,
SaslHandshake v1, then SaslAuthenticate v1, as kafka-python does with a broker of Kafka 1.0 or
later; an older one, with SaslHandshake v0 only, is left undecided) and raises `KafkaAuthError`, naming the
settings to check, when the broker says no. Anything else (a broker that accepts, one that cannot
be reached, an answer it cannot read) is left to kafka-python: the check decides only refusals.

The password is sent as kafka-python sends it (PLAIN: as is; SCRAM: a proof), over TLS verified as
kafka-python verifies it for SASL_SSL; it is never part of a message or a log line.
"""

from __future__ import annotations

import logging
import socket
import ssl
import struct
import time
from typing import Any

from fraudstream.errors import KafkaAuthError
from fraudstream.kafka_reach import host_port

log = logging.getLogger(__name__)

SASL_CHECK_S = 10.0  # how long `check_sasl` waits for each answer of a broker
CLOSED_RETRY_S = 0.5  # before asking again a broker that closed the connection in the exchange
SASL_HANDSHAKE, SASL_AUTHENTICATE = 17, 36  # API keys, both asked for in version 1
API_VERSIONS = 18  # asked for in version 0 (every broker takes it), before the handshake, as kafka-python does
_CLIENT_ID = b"fraudstream-sasl-check"
MAX_ANSWER = 1 << 20  # bytes; a SASL answer is a few hundred
_ERRORS = {33: "UNSUPPORTED_SASL_MECHANISM", 34: "ILLEGAL_SASL_STATE", 58: "SASL_AUTHENTICATION_FAILED"}
SETTINGS_TO_CHECK = ("FRAUDSTREAM_KAFKA_SASL_USERNAME, FRAUDSTREAM_KAFKA_SASL_PASSWORD and "
                     "FRAUDSTREAM_KAFKA_SASL_MECHANISM")


def request(api_key: int, correlation_id: int, body: bytes, version: int = 1) -> bytes:
    """A framed request of `version` (header v1: key, version, correlation id, client id).

    >>> frame = request(17, 1, b"x")
    >>> struct.unpack(">ihhih", frame[:14]), frame[14:]
    ((33, 17, 1, 1, 22), b'fraudstream-sasl-checkx')
    """
    header = struct.pack(">hhih", api_key, version, correlation_id, len(_CLIENT_ID)) + _CLIENT_ID
    return struct.pack(">i", len(header) + len(body)) + header + body


class _Reader:
    """Reads the fields of a response body, big-endian as Kafka writes them."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, fmt: str) -> Any:
        value = struct.unpack_from(fmt, self.data, self.at)[0]
        self.at += struct.calcsize(fmt)
        return value

    def blob(self, size_fmt: str) -> bytes | None:
        size = self.take(size_fmt)
        if size < 0:
            return None
        self.at += size
        return self.data[self.at - size:self.at]

    def text(self) -> str | None:
        value = self.blob(">h")
        return None if value is None else value.decode("utf-8", "replace")


def _exchange(sock: socket.socket, api_key: int, correlation_id: int, body: bytes, version: int = 1) -> _Reader | None:
    """Send a request, return a reader of its answer's body; None when the broker closed the connection."""
    sock.sendall(request(api_key, correlation_id, body, version))
    size = _receive(sock, 4)
    if size is None:
        return None
    length = struct.unpack(">i", size)[0]
    if not 4 <= length <= MAX_ANSWER:  # not a Kafka answer (an HTTP server's, say)
        raise ValueError(f"an answer of {length} bytes")
    answer = _receive(sock, length)
    if answer is None:
        return None
    reader = _Reader(answer)
    if reader.take(">i") != correlation_id:
        raise ValueError("an answer to another request")
    return reader


def _receive(sock: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


class _Undecided(Exception):
    """Not a refusal: kafka-python tries the login itself (and reports what it finds)."""


def _speaks_sasl_v1(sock: socket.socket) -> bool:
    """Whether the broker takes SaslHandshake v1 and SaslAuthenticate (ApiVersions v0): a broker
    before Kafka 1.0 takes SaslHandshake v0 only and closes the connection for v1, which is no
    refusal (kafka-python logs in with v0 there); `_Undecided` for no answer or an error."""
    answer = _exchange(sock, API_VERSIONS, 0, b"", version=0)
    if answer is None or answer.take(">h") != 0:
        raise _Undecided("no ApiVersions answer")
    versions: dict[int, tuple[int, int]] = {}
    for _ in range(answer.take(">i")):
        key, low, high = answer.take(">h"), answer.take(">h"), answer.take(">h")
        versions[key] = (low, high)
    return all(low <= 1 <= high for low, high in (versions.get(k, (1, 0)) for k in (SASL_HANDSHAKE, SASL_AUTHENTICATE)))


class _ClosedEarly(KafkaAuthError):
    """The broker closed the connection in the SASL exchange: a refusal when it does it again."""


def _refused(server: str, config: dict[str, Any], why: str) -> KafkaAuthError:
    return KafkaAuthError(f"the Kafka broker at {server} refused the SASL login of user "
                          f"{config.get('sasl_plain_username')!r} with {config['sasl_mechanism']}: {why} "
                          f"(check {SETTINGS_TO_CHECK})")


def unsupported_mechanism(server: str, mechanism: str, error: object, enabled: list[str]) -> str:
    """The message for a broker that refused the SASL mechanism at the handshake.

    >>> unsupported_mechanism("k:9092", "PLAIN", "UNSUPPORTED_SASL_MECHANISM", ["SCRAM-SHA-512"])
    'the Kafka broker at k:9092 does not take SASL mechanism PLAIN (UNSUPPORTED_SASL_MECHANISM; it takes SCRAM-SHA-512): check FRAUDSTREAM_KAFKA_SASL_MECHANISM'

    Tansu without --authentication refuses every mechanism and lists the one asked for:

    >>> unsupported_mechanism("k:9092", "PLAIN", "UNSUPPORTED_SASL_MECHANISM", ["PLAIN"])
    'the Kafka broker at k:9092 does not take SASL mechanism PLAIN (UNSUPPORTED_SASL_MECHANISM): check FRAUDSTREAM_KAFKA_SASL_MECHANISM, and FRAUDSTREAM_KAFKA_SECURITY_PROTOCOL if its listener takes no SASL login'
    """
    if enabled and mechanism not in enabled:
        return (f"the Kafka broker at {server} does not take SASL mechanism {mechanism} ({error}; it takes "
                f"{', '.join(enabled)}): check FRAUDSTREAM_KAFKA_SASL_MECHANISM")
    return (f"the Kafka broker at {server} does not take SASL mechanism {mechanism} ({error}): check "
            "FRAUDSTREAM_KAFKA_SASL_MECHANISM, and FRAUDSTREAM_KAFKA_SECURITY_PROTOCOL if its listener takes no SASL login")


def _scram_error(token: bytes) -> str | None:
    """The error of a SCRAM server message (RFC 5802: ``e=``), None for any other message.

    >>> _scram_error(b"e=invalid-proof"), _scram_error(b"v=c2lnbmF0dXJl")
    ('e=invalid-proof', None)
    """
    return token.decode("utf-8", "replace") if token.startswith(b"e=") else None


def _authenticate(sock: socket.socket, server: str, config: dict[str, Any]) -> None:
    """One SASL exchange on `sock`; `KafkaAuthError` when the broker refuses."""
    mechanism = config["sasl_mechanism"]
    if not _speaks_sasl_v1(sock):
        raise _Undecided("the broker does not take SaslHandshake and SaslAuthenticate v1")
    name = mechanism.encode("utf-8")
    answer = _exchange(sock, SASL_HANDSHAKE, 1, struct.pack(">h", len(name)) + name)
    if answer is None:  # Tansu closes the connection for a mechanism it lacks (PLAIN)
        raise _ClosedEarly(f"the Kafka broker at {server} closed the connection when asked for SASL mechanism "
                           f"{mechanism}: does its listener take SASL, and {mechanism}? (check "
                           "FRAUDSTREAM_KAFKA_SASL_MECHANISM and FRAUDSTREAM_KAFKA_SECURITY_PROTOCOL)")
    error = answer.take(">h")
    enabled = [answer.text() for _ in range(answer.take(">i"))]
    if error == 34:  # Apache Kafka's answer on a listener without SASL
        raise KafkaAuthError(f"the Kafka broker at {server} takes no SASL login on that listener (ILLEGAL_SASL_STATE): "
                             "check FRAUDSTREAM_KAFKA_SECURITY_PROTOCOL and FRAUDSTREAM_KAFKA_BOOTSTRAP")
    if error or mechanism not in enabled:
        raise KafkaAuthError(unsupported_mechanism(server, mechanism, _ERRORS.get(error, error or "not listed"),
                                                   [str(m) for m in enabled]))
    user, password = str(config.get("sasl_plain_username") or ""), str(config.get("sasl_plain_password") or "")
    if mechanism == "PLAIN":
        _login_step(sock, server, config, 2, f"\0{user}\0{password}".encode())
        return
    from kafka.net.sasl.scram import ScramClient  # kafka-python 3's (2.x: kafka.sasl.scram): else undecided

    scram = ScramClient(user, password, mechanism)
    scram.process_server_first_message(_login_step(sock, server, config, 2, scram.first_message()))
    _login_step(sock, server, config, 3, scram.final_message())  # the broker's signature is kafka-python's to check


def _login_step(sock: socket.socket, server: str, config: dict[str, Any], correlation_id: int, token: bytes) -> bytes:
    """Send one SaslAuthenticate `token`; return the broker's answer, `KafkaAuthError` for a refusal."""
    answer = _exchange(sock, SASL_AUTHENTICATE, correlation_id, struct.pack(">i", len(token)) + token)
    if answer is None:
        raise _ClosedEarly(f"the Kafka broker at {server} closed the connection during the SASL login of user "
                           f"{config.get('sasl_plain_username')!r} with {config['sasl_mechanism']} "
                           f"(check {SETTINGS_TO_CHECK})")
    error, message, reply = answer.take(">h"), answer.text(), answer.blob(">i") or b""
    if error:  # Apache Kafka: SASL_AUTHENTICATION_FAILED, "Authentication failed during authentication due to ..."
        raise _refused(server, config, f"{_ERRORS.get(error, error)}: {message}")
    scram_error = _scram_error(reply)
    if scram_error is not None:  # Tansu: e=unknown-user, e=invalid-proof
        raise _refused(server, config, scram_error)
    return reply


def check_sasl(config: dict[str, Any], timeout_s: float | None = None) -> None:
    """Raise `KafkaAuthError` when a bootstrap server of a kafka-python client `config`
    (security_protocol SASL_PLAINTEXT or SASL_SSL) refuses its SASL login (see the module docstring);
    return when the first server that answers accepts it, or when none can be asked. A server that
    closes the connection in the exchange (twice) is a refusal only when no other server accepts
    and none is undecided: kafka-python would try the others."""
    if not str(config.get("security_protocol", "")).startswith("SASL_") or not config.get("sasl_mechanism"):
        return
    timeout_s = SASL_CHECK_S if timeout_s is None else timeout_s
    closed: KafkaAuthError | None = None
    undecided = False
    for server in config["bootstrap_servers"]:
        for attempt in (1, 2):  # a connection closed in the exchange once may be a broker restarting
            try:
                _login(server, config, timeout_s)
                log.debug("SASL login to %s accepted", server)
                return
            except _ClosedEarly as exc:
                if attempt == 2:
                    closed = closed or KafkaAuthError(str(exc))
                    break
                log.debug("SASL check of %s: connection closed in the exchange, asking again", server)
                time.sleep(CLOSED_RETRY_S)
            except KafkaAuthError:
                raise
            except Exception as exc:  # noqa: BLE001 - not a refusal: kafka-python tries and reports it
                # a UnicodeError holds the string it failed on: the password (one given with bytes not UTF-8)
                log.debug("SASL check of %s undecided: %s: %s", server, type(exc).__name__,
                          "" if isinstance(exc, UnicodeError) else exc)
                undecided = True
                break
    if closed is not None and not undecided:
        raise closed


def _login(server: str, config: dict[str, Any], timeout_s: float) -> None:
    host, port = host_port(server)
    with socket.create_connection((host, port), timeout=timeout_s) as raw:
        if config["security_protocol"] == "SASL_SSL":  # verified as kafka-python verifies: the password goes next
            context = ssl.create_default_context(cafile=config.get("ssl_cafile"))
            with context.wrap_socket(raw, server_hostname=host) as sock:
                _authenticate(sock, server, config)
        else:
            _authenticate(raw, server, config)
