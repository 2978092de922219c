"""The commands' errors and notes for their user: one line each, as text or as JSON log lines."""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from typing import Any, TypeVar

import click

from fraudstream.cli.settings_options import setting_source
from fraudstream.errors import FraudstreamError

F = TypeVar("F", bound=Callable[..., Any])
INTERRUPTED_EXIT = 130  # 128 + SIGINT, as `stream.signals.Received` gives a stopped job
INTERRUPTED = ("interrupted (Ctrl-C) before the end; a file it was writing is not left behind, partial or empty "
               "(each is renamed into place only once complete)")


def handle_errors(func: F) -> F:
    """Report FraudstreamError, a broker or Redis that cannot be reached, and a file that cannot be
    read or written, as a clear one-line error (exit 1) instead of a traceback; and Ctrl-C (a second
    one, where the first stops after the work in hand) with exit status 130, as the shell reports a
    process that SIGINT ended, instead of click's "Aborted!" and 1, which a script cannot tell from
    an error."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except KeyboardInterrupt:
            notice(INTERRUPTED, logging.WARNING)
            raise SystemExit(INTERRUPTED_EXIT) from None
        except FraudstreamError as exc:
            logging.getLogger("fraudstream").debug("command failed", exc_info=True)
            raise CommandError(str(exc)) from exc
        except Exception as exc:
            ctx = click.get_current_context(silent=True)
            message = service_error(exc, setting_source(ctx, "redis_url"), setting_source(ctx, "kafka_bootstrap"))
            if message is None and isinstance(exc, OSError) and exc.filename is not None:  # a file: not a bug
                message = f"{exc.filename}: {exc.strerror or exc}"
            if message is None:
                raise
            logging.getLogger("fraudstream").debug("command failed", exc_info=True)
            raise CommandError(message) from exc

    return wrapper  # type: ignore[return-value]


class CommandError(click.ClickException):
    """A command's one-line error (exit 1): ``Error: ...`` on stderr, or a JSON log line with
    ``--log-format json`` (whose readers take stderr one JSON object per line)."""

    def show(self, file: Any = None) -> None:
        from fraudstream.logs import json_logging

        if json_logging():
            logging.getLogger("fraudstream.cli").error(self.format_message())
        else:
            super().show(file)


def json_usage_error(exc: click.UsageError) -> CommandError:
    """`exc` as a one-line `CommandError` with a usage error's exit status (2), naming the command
    and its --help where click would print its usage text.

    >>> @click.command()
    ... @click.option("--days", type=int)
    ... def record(days): pass
    >>> try:
    ...     record.make_context("record", ["--days", "x"])
    ... except click.UsageError as exc:
    ...     error = json_usage_error(exc)
    >>> error.exit_code, error.format_message()
    (2, "Invalid value for '--days': 'x' is not a valid integer. (see `record --help`)")
    """
    error = CommandError(exc.format_message() + (f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""))
    error.exit_code = exc.exit_code
    return error


def notice(message: str, level: int = logging.WARNING) -> None:
    """A note of a command for its user on stderr as written, or a JSON log line (without a
    leading ``Warning: ``) with ``--log-format json``; shown whatever the log level, as in text."""
    from fraudstream.logs import json_logging

    if json_logging():
        logger = logging.getLogger("fraudstream.cli")
        record = logger.makeRecord(logger.name, level, "(notice)", 0,
                                   re.sub(r"^(warning|note|hint|error): ", "", message, flags=re.I), None, None)
        for handler in logging.getLogger().handlers:  # past the level, which would drop an INFO note
            handler.handle(record)
    else:
        click.echo(message, err=True)


def service_error(exc: BaseException, redis_source: str = "FRAUDSTREAM_REDIS_URL",
                  kafka_source: str = "FRAUDSTREAM_KAFKA_BOOTSTRAP") -> str | None:
    """A one-line message for a broker or Redis that cannot be reached or refuses a command, naming
    the option or env var that pointed at it; None for any other error (a bug: its traceback is shown).

    >>> import redis
    >>> service_error(redis.ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused."))
    'cannot reach Redis (FRAUDSTREAM_REDIS_URL): Error 111 connecting to 127.0.0.1:1. Connection refused.'
    >>> service_error(redis.ConnectionError("Error 111"), redis_source="--redis")
    'cannot reach Redis (--redis): Error 111'
    >>> service_error(ValueError("a bug")) is None
    True
    >>> import kafka.errors
    >>> service_error(kafka.errors.SaslAuthenticationFailedError("Authentication failed: invalid credentials"))
    'the Kafka broker refused the SASL login (FRAUDSTREAM_KAFKA_BOOTSTRAP): [Error 58] SaslAuthenticationFailedError: Authentication failed: invalid credentials (check FRAUDSTREAM_KAFKA_SASL_USERNAME, FRAUDSTREAM_KAFKA_SASL_PASSWORD, FRAUDSTREAM_KAFKA_SASL_MECHANISM and FRAUDSTREAM_KAFKA_SECURITY_PROTOCOL)'
    >>> service_error(redis.AuthenticationError("HELLO must be called with the client already authenticated"))
    'Redis wants a password (FRAUDSTREAM_REDIS_URL): HELLO must be called with the client already authenticated (give it in the URL, redis://:PASSWORD@HOST:PORT, or in FRAUDSTREAM_REDIS_PASSWORD)'
    """
    import kafka.errors
    import redis

    if isinstance(exc, redis.AuthenticationError):  # (a ConnectionError too)
        wanted = "wants a password" if "authenticated" in str(exc) or "NOAUTH" in str(exc) else "refused the password"
        return (f"Redis {wanted} ({redis_source}): {exc} (give it in the URL, redis://:PASSWORD@HOST:PORT, or in "
                "FRAUDSTREAM_REDIS_PASSWORD)")
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
        return f"cannot reach Redis ({redis_source}): {exc}"
    if isinstance(exc, redis.exceptions.InvalidResponse):  # an HTTP server, say
        return f"the server at {redis_source} does not answer as Redis does: {exc}"
    if isinstance(exc, redis.exceptions.RedisClusterException):  # (not a RedisError)
        return (f"Redis Cluster ({redis_source}, FRAUDSTREAM_REDIS_CLUSTER): {exc} (unset FRAUDSTREAM_REDIS_CLUSTER "
                "for a single server)")
    if isinstance(exc, redis.RedisError):
        return f"Redis refused a command: {exc}"
    if isinstance(exc, (kafka.errors.SaslAuthenticationFailedError, kafka.errors.UnsupportedSaslMechanismError,
                        kafka.errors.IllegalSaslStateError)):  # kafka-python's own, should it raise one
        return (f"the Kafka broker refused the SASL login ({kafka_source}): {exc} (check FRAUDSTREAM_KAFKA_SASL_USERNAME, "
                "FRAUDSTREAM_KAFKA_SASL_PASSWORD, FRAUDSTREAM_KAFKA_SASL_MECHANISM and FRAUDSTREAM_KAFKA_SECURITY_PROTOCOL)")
    if isinstance(exc, (kafka.errors.KafkaConnectionError, kafka.errors.KafkaTimeoutError,
                        kafka.errors.BrokerNotAvailableError)):
        return f"the Kafka broker did not answer ({kafka_source}): {exc}"
    return None
