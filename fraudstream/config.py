"""Settings: one object, loaded once at the CLI from FRAUDSTREAM_* environment variables and flags.

>>> s = Settings(kafka_bootstrap="127.0.0.1:9092", redis_url="redis://:hunter2@127.0.0.1:6379/0")
>>> "hunter2" in repr(s)
False
>>> s.topic_transactions, s.group_id
('transactions', 'fraudstream-scorer')
>>> s.label_delay.days
7
>>> Settings(local_timezone=" Europe/London ").local_timezone
'Europe/London'
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_serializer, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from fraudstream import constants
from fraudstream.errors import ConfigError
from fraudstream.timeutil import parse_duration
from fraudstream.urls import mask_url, unreadable_user_part


SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")  # as kafka-python spells them
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")  # those a user name and password are for

_TOPIC_NAME = re.compile(r"[a-zA-Z0-9._-]{1,249}")
_HOST = re.compile(r"[a-zA-Z0-9._-]+|\[[0-9a-fA-F:.]+\]")  # a name, an IPv4 address, or an IPv6 one in brackets


def _given(value: Any) -> bool:
    """A value that is there: not None and, for a string or a secret, not blank (a compose file's
    ``${VAR}`` of an unset variable).

    >>> _given(None), _given("  "), _given(SecretStr("")), _given("PLAIN")
    (False, False, False, True)
    """
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return value is not None and (not isinstance(value, str) or bool(value.strip()))


class Settings(BaseSettings):
    """Every setting of fraudstream. Environment variable: ``FRAUDSTREAM_<NAME>``."""

    # an empty variable is as if unset (`fraudstream config` prints unset values empty)
    model_config = SettingsConfigDict(env_prefix=constants.ENV_PREFIX, extra="ignore", validate_default=True,
                                      env_ignore_empty=True, hide_input_in_errors=True)  # (a URL with its password)

    # --- connections --------------------------------------------------------------------------
    kafka_bootstrap: str | None = Field(
        None, description=("Kafka bootstrap servers (host:port,...). Unset: `demo` starts the embedded Tansu broker; "
                           "the other commands ask for it (`fraudstream up` prints it).")
    )
    kafka_security_protocol: str = Field("PLAINTEXT", description=f"{', '.join(SECURITY_PROTOCOLS[:-1])} or {SECURITY_PROTOCOLS[-1]}.")
    kafka_sasl_mechanism: str | None = Field(None, description=f"{', '.join(SASL_MECHANISMS[:-1])} or {SASL_MECHANISMS[-1]}.")
    kafka_sasl_username: str | None = Field(None, description="SASL user name.")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password.")
    kafka_ssl_cafile: str | None = Field(None, description="CA file to verify the brokers' certificates.")
    redis_url: str | None = Field(
        None, repr=False, description=("Redis URL (redis://, rediss://, unix://). Unset: `demo` starts the embedded Valkey server; "
                                   "the other commands that need Redis ask for it.")
    )
    redis_password: SecretStr | None = Field(None, description="Redis password, if not in the URL.")
    redis_cluster: bool = Field(False, description="Connect to a Redis Cluster instead of a single server.")
    redis_key_prefix: str = Field(constants.REDIS_PREFIX, description="Prefix of every Redis key fraudstream writes.")

    # --- topics -------------------------------------------------------------------------------
    topic_transactions: str = Field(constants.TOPIC_TRANSACTIONS, description="Input transactions.")
    topic_labels: str = Field(constants.TOPIC_LABELS, description="Input fraud labels (delayed).")
    topic_alerts: str = Field(constants.TOPIC_ALERTS, description="Output alerts.")
    topic_dlq: str = Field(constants.TOPIC_TRANSACTIONS_DLQ, description="Dead letters from the transactions topic.")
    topic_labels_dlq: str = Field(constants.TOPIC_LABELS_DLQ, description="Dead letters from the labels topic.")
    topic_partitions: int = Field(3, ge=1, description="Partitions of topics fraudstream creates.")
    producer_linger_ms: int = Field(
        5, ge=0, description="How long producers (`produce`, `replay`; `demo` into a broker of yours) wait to fill "
        "a batch of records; `fraudstream up` exports 100 for its broker, whose fetches cost more with every batch it holds.")

    # --- consumer -----------------------------------------------------------------------------
    group_id: str = Field(constants.DEFAULT_GROUP, description="Consumer group of the scoring consumers.")
    session_timeout_ms: int = Field(6000, description="Group session timeout; small values make joins fast.")
    heartbeat_interval_ms: int = Field(1000, description="Group heartbeat interval.")
    # 2,000: the embedded servers' throughput knee (`fraudstream consume`, 5 pairs: 1,000 gave 16-19k tx/s,
    # 2,000 19-21k; 4,000 the same as 2,000; docs/performance.md)
    max_poll_records: int = Field(2000, ge=1, description="Records per poll batch.")
    fetch_max_wait_ms: int = Field(
        20, ge=0, description="Longest a fetch waits on the broker for new records; Tansu holds a fetch this long even "
        "when records arrive, so it bounds latency (Kafka answers as soon as there is data).")
    max_record_bytes: int = Field(64 * 1024, ge=256, description="Larger records are dead-lettered.")
    allowed_lateness: timedelta = Field(
        timedelta(hours=1), description="Transactions older than the partition's newest event time minus this go to the DLQ."
    )
    max_future_skew: timedelta | None = Field(
        timedelta(days=1), description="Transactions dated, and labels reported, more than this after now go to the "
        "DLQ (none: no limit, for a simulated clock that runs ahead of the wall clock)."
    )

    # --- model --------------------------------------------------------------------------------
    model: str = Field("gbt_window", description="Champion model name (see `fraudstream models zoo`).")
    alert_threshold: float = Field(0.5, ge=0.0, le=1.0, allow_inf_nan=False, description="Alert when the champion's score is at least this.")
    alert_warmup_labels: int = Field(
        100, ge=0, description="No alerts until the champion has learned from this many labels, one of them a fraud."
    )
    label_delay: timedelta = Field(timedelta(days=7), description="Delay after which a transaction's label is known.")
    local_timezone: str = Field(
        "UTC", description="IANA time zone (e.g. America/New_York) of the local time TX_DURING_NIGHT and "
        "TX_DURING_WEEKEND are of, DST included; UTC is the handbook's. One zone per deployment: changing it "
        "changes these two features (backtest a model again). Checkpoints record it (older ones: UTC); a model "
        "that learned with another zone is loaded with a warning, and `models import` refuses it.")
    seed: int = Field(42, ge=0, lt=2 ** 32, description="Seed of models and simulators.")
    challengers: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="Challenger models scored in shadow (comma-separated registry or zoo names)."
    )
    model_signing_key: SecretStr = Field(
        SecretStr(constants.DEV_SIGNING_KEY),
        description="HMAC key that signs model checkpoints; the built-in default is for demos only.",
    )
    checkpoint_every_labels: int = Field(
        1000, ge=1,
        description="Publish a model checkpoint after this many labels (a model that changes only when it refits: "
                    "if it refitted)."
    )
    checkpoint_every_seconds: float = Field(
        30.0, gt=0, description="...or this many seconds after the first label not yet in a checkpoint."
    )
    label_stream_kept_for_unpublishable: timedelta = Field(
        timedelta(hours=1), description="Labels kept in the label stream (by their time) behind a model the learner "
                                        "cannot checkpoint, before it is trimmed past that model's versions."
    )

    # --- operations ---------------------------------------------------------------------------
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR.")
    log_format: str = Field("text", description="text or json.")

    @field_validator("kafka_bootstrap")
    @classmethod
    def _bootstrap(cls, value: str | None) -> str | None:
        if not value or not value.strip():  # set but empty: unset (the embedded broker)
            return None
        for server in value.split(","):
            if "://" in server:  # as in a listener's address: kafka-python looked it up as a host name, 30 s
                raise ValueError(f"{server.strip()!r} is not host:port: no scheme (the protocol is "
                                 "FRAUDSTREAM_KAFKA_SECURITY_PROTOCOL)")
            host, colon, port = server.strip().rpartition(":")
            host = host if colon else port  # (no port: kafka-python's 9092)
            if not server.strip() or (colon and (not port.isdigit() or not 0 < int(port) < 65536)) \
                    or not _HOST.fullmatch(host):  # e.g. servers joined by ';' or ' ', read as one host
                raise ValueError(f"{server.strip()!r} is not host:port (bootstrap servers: host:port,host:port)")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if not value or not value.strip():  # set but empty: unset (the embedded server)
            return None
        value = value.strip()  # a blank pasted after it was read as part of the database ("not a number")
        if value.split("://", 1)[0] not in ("redis", "rediss", "unix"):
            raise ValueError("a Redis URL starts with redis://, rediss:// or unix:// (e.g. redis://localhost:6379/0)")
        from redis.connection import parse_url  # here: the CLI's --help does not import redis

        # The messages quote no part of the URL: a password with a / # ? or @ that is not
        # percent-encoded is read as the port, the path or the query, and would be printed
        hint = (" (a password's / # ? @ and % are written %2F %23 %3F %40 %25 in a URL)"
                if "@" in value else "")
        if unreadable_user_part(value):  # a password's # ? or / read as a port and a fragment, query or
            # path: redis-py would connect to another port, without it
            raise ValueError(f"not a usable Redis URL: its user part cannot be read{hint}")
        try:  # what redis-py refuses later (with a traceback): a port, a query value, brackets
            parse_url(value)
            database = urlsplit(value).path.strip("/") if value.startswith("redis") else ""
        except ValueError as exc:  # redis-py's words quote the part it misread: only without a password
            detail = f"its host, port, database or query cannot be read{hint}" if "@" in value else str(exc)
            raise ValueError(f"not a usable Redis URL: {detail}") from None
        if database and not database.isdigit():  # redis-py ignores it: another database than meant
            raise ValueError(f"the database of a Redis URL is a number (redis://host:6379/0){hint}")
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        if value.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError(f"{value!r}: one of DEBUG, INFO, WARNING, ERROR")
        return value.upper()

    @field_validator("local_timezone")
    @classmethod
    def _time_zone(cls, value: str) -> str:
        value = value.strip()
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # unknown, not a relative path, a directory
            raise ValueError(f"{value!r} is not an IANA time zone name (e.g. UTC, America/New_York, "
                             "Europe/London)") from None
        return value

    @field_validator("kafka_security_protocol")
    @classmethod
    def _security_protocol(cls, value: str) -> str:
        if value.upper() not in SECURITY_PROTOCOLS:
            raise ValueError(f"{value!r}: one of {', '.join(SECURITY_PROTOCOLS)}")
        return value.upper()

    @field_validator("topic_transactions", "topic_labels", "topic_alerts", "topic_dlq", "topic_labels_dlq")
    @classmethod
    def _topic(cls, value: str) -> str:
        if not _TOPIC_NAME.fullmatch(value) or value in (".", ".."):  # Apache Kafka's rule (Tansu takes any)
            raise ValueError(f"{value!r} is not a Kafka topic name: 1-249 of the letters a-z A-Z, digits, '.', '_', '-'")
        return value

    @field_validator("kafka_sasl_mechanism")
    @classmethod
    def _sasl_mechanism(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if value.strip().upper() not in SASL_MECHANISMS:  # kafka-python's refusal is a 30 s wait for the broker
            raise ValueError(f"{value!r}: one of {', '.join(SASL_MECHANISMS)}")
        return value.strip().upper()

    @field_validator("kafka_ssl_cafile")
    @classmethod
    def _cafile(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not os.path.isfile(value) or not os.access(value, os.R_OK):  # else 30 s, then "did not answer"
            raise ValueError(f"{value!r} is not a readable file (the CA certificates, PEM)")
        return value

    @field_validator("log_format")
    @classmethod
    def _log_format(cls, value: str) -> str:
        if value.strip().lower() not in ("text", "json"):  # any case, as the log level
            raise ValueError(f"{value!r}: text or json")
        return value.strip().lower()

    @field_validator("challengers", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(name.strip() for name in value.split(",") if name.strip())
        return value

    @field_validator("allowed_lateness", "label_delay", "label_stream_kept_for_unpublishable", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return parse_duration(value)
        except ConfigError as exc:  # a ValueError is what pydantic reports with the field's name
            raise ValueError(str(exc)) from None

    @field_validator("max_future_skew", mode="before")
    @classmethod
    def _optional_duration(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() == "none":
            return None
        try:
            return cls._duration(value)
        except ValueError as exc:  # the one duration that also takes none: say so
            raise ValueError(f"{exc}, or none for no limit") from None

    @model_validator(mode="after")
    def _sasl_with_a_sasl_protocol(self) -> Settings:
        given = [name for name in ("kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password")
                 if _given(getattr(self, name))]
        if given and not self.kafka_security_protocol.startswith("SASL_"):  # else ignored without a word
            raise ValueError(f"{', '.join('FRAUDSTREAM_' + n.upper() for n in given)} given, but "
                             f"FRAUDSTREAM_KAFKA_SECURITY_PROTOCOL is {self.kafka_security_protocol}: "
                             "SASL_PLAINTEXT or SASL_SSL uses them")
        missing = [name for name in ("kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password")
                   if not _given(getattr(self, name))]
        if missing and self.kafka_security_protocol.startswith("SASL_"):  # else 30 s of retries, "did not answer"
            raise ValueError(f"FRAUDSTREAM_KAFKA_SECURITY_PROTOCOL is {self.kafka_security_protocol}: set "
                             f"{', '.join('FRAUDSTREAM_' + n.upper() for n in missing)} too (the mechanism: "
                             f"{', '.join(SASL_MECHANISMS)})")
        return self

    @model_validator(mode="after")
    def _heartbeat_within_session(self) -> Settings:
        if self.heartbeat_interval_ms >= self.session_timeout_ms:  # kafka-python refuses it later, with a traceback
            raise ValueError(f"FRAUDSTREAM_HEARTBEAT_INTERVAL_MS ({self.heartbeat_interval_ms}) must be below "
                             f"FRAUDSTREAM_SESSION_TIMEOUT_MS ({self.session_timeout_ms})")
        return self

    @field_serializer("redis_url")
    def _redis_url_dumped(self, value: str | None) -> str | None:
        """`model_dump` and `model_dump_json` give it masked, as the repr does."""
        return mask_url(value)

    def redis_url_masked(self) -> str | None:
        """The Redis URL with its password hidden, for logs."""
        return mask_url(self.redis_url)

    def __repr_args__(self):  # type: ignore[no-untyped-def]
        for name, value in super().__repr_args__():
            yield name, value
        yield "redis_url", self.redis_url_masked()
