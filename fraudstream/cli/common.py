"""Shared CLI plumbing: options bound to settings fields (flag > env var > default)."""

from __future__ import annotations

import functools
import logging
import math
import re
import shlex
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import click
from click.core import ParameterSource
from pydantic import ValidationError

from fraudstream.config import Settings
from fraudstream.constants import CLOCKS, DEFAULT_LIVE_LABEL_DELAY, ENV_PREFIX
from fraudstream.errors import FraudstreamError
from fraudstream.logs import setup_logging
from fraudstream.timeutil import parse_duration, parse_time

F = TypeVar("F", bound=Callable[..., Any])
_SETTING_PARAMS = "_fraudstream_setting_params"


class FiniteFloat(click.ParamType):
    """A finite number above `minimum` (or at least it, `inclusive`), at most `maximum`: rates, speeds,
    scales, scores.

    >>> FiniteFloat(0.0).convert("2.5", None, None)
    2.5
    >>> FiniteFloat(0.0).convert("nan", None, None)
    Traceback (most recent call last):
    ...
    click.exceptions.BadParameter: 'nan' is not a finite number > 0.
    """

    name = "number"

    def __init__(self, minimum: float, inclusive: bool = False, maximum: float = math.inf) -> None:
        self.minimum, self.inclusive, self.maximum = minimum, inclusive, maximum

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if (not math.isfinite(number) or number < self.minimum or (number == self.minimum and not self.inclusive)
                or number > self.maximum):
            bound = f">= {self.minimum:g}" if self.inclusive else f"> {self.minimum:g}"
            bound += f" and <= {self.maximum:g}" if math.isfinite(self.maximum) else ""
            self.fail(f"{value!r} is not a finite number {bound}.", param, ctx)
        return number


def require_directory(path: Path, param_hint: str) -> None:
    """A `click.BadParameter` now, before any work, for an output file whose directory does not exist
    or cannot be written in (`outputs.check_writable`)."""
    from fraudstream.outputs import check_writable

    if not path.resolve().parent.is_dir():
        raise click.BadParameter(f"{path}: no such directory", param_hint=param_hint)
    try:
        check_writable(path)
    except FraudstreamError as exc:
        raise click.BadParameter(str(exc), param_hint=param_hint) from None


def separate_outputs(file: Path, outputs: dict[str, Path | None]) -> None:
    """A `click.BadParameter` now, before any work, for an output file that is the input FILE or
    another option's output (one would overwrite the other without a word). Devices and pipes
    (/dev/stdout) are not files: any number of outputs may go there."""
    seen = {Path(file).resolve(): "the input FILE"}
    for option, path in outputs.items():
        if path is None or (path.exists() and not path.is_file()):
            continue
        where = path.resolve()
        if where in seen:
            raise click.BadParameter(f"{path} is {seen[where]}: write it to another file", param_hint=option)
        seen[where] = f"{option}'s output too"


def checked_out(out: str, kinds: tuple[str, ...] = ("jsonl", "csv")) -> tuple[str, bool]:
    """`--out`'s format by its name, one of `kinds` (`recorder.output_format`: kind, gzipped), and its
    directory, checked before any work: a `click.BadParameter` naming --out otherwise."""
    from fraudstream.producer.recorder import output_format

    try:
        kind = output_format(out, kinds)
    except FraudstreamError as exc:
        raise click.BadParameter(str(exc), param_hint="--out") from None
    require_directory(Path(out), "--out")
    return kind


def time_window(start: str | None, end: str | None) -> tuple[datetime | None, datetime | None]:
    """The times of `--start` and `--end` (None where not given); a `click.BadParameter` when --end is
    not after --start."""
    begin, finish = (parse_time(start) if start else None), (parse_time(end) if end else None)
    if begin is not None and finish is not None and finish <= begin:
        raise click.BadParameter(f"{end} is not after --start {start}", param_hint="--end")
    return begin, finish


def settings_option(flag: str, field: str, **kwargs: Any) -> Callable[[F], F]:
    """A click option that overrides the settings field `field`; help shows its env var and its
    default as the option takes it (``7d``, not ``7 days, 0:00:00``).

    The env var is read by the settings object itself (not by click) so that there is one source.
    """
    from fraudstream.cli.config import env_value

    envvar = ENV_PREFIX + field.upper()
    help_text = kwargs.pop("help", Settings.model_fields[field].description or "")
    default = Settings.model_fields[field].default
    shown = "" if default is None else f" [default: {env_value(field, default)}]"
    if isinstance(default, timedelta):
        kwargs.setdefault("metavar", "DURATION")

    def decorator(func: F) -> F:
        option = click.option(flag, field, default=None, help=f"{help_text} [env: {envvar}]{shown}", **kwargs)
        return option(func)

    return decorator


def command_line(ctx: click.Context, program: str = "fraudstream", **changes: Any) -> str:
    """The command line that runs this command again: every parameter given on the command line (of
    this command and of the groups above it), with `changes` (by parameter name, this command's)
    replacing or adding values; for hints such as where to resume.

    >>> @click.group()
    ... @click.option("--log-level")
    ... def root(log_level): pass
    >>> @root.command()
    ... @click.argument("file")
    ... @click.option("--speed", type=float)
    ... @click.option("--start")
    ... @click.option("--end")
    ... @click.option("--no-progress", is_flag=True)
    ... def replay(**kwargs): pass
    >>> top = root.make_context("root", ["--log-level", "debug", "replay"])
    >>> sub = replay.make_context("replay", ["my file.csv", "--start", "2018-04-01", "--speed", "3600",
    ...                                      "--no-progress", "--end=2018-04-15"], parent=top)
    >>> command_line(sub, start="2018-04-03T10:00:00+00:00")
    "fraudstream --log-level debug replay 'my file.csv' --speed 3600 --start 2018-04-03T10:00:00+00:00 --end 2018-04-15 --no-progress"
    """
    chain = []
    current: click.Context | None = ctx
    while current is not None:
        chain.append(current)
        current = current.parent
    words = []
    for level in reversed(chain):
        words.append(program if level.parent is None else level.info_name or "")
        given = {name: value for name, value in level.params.items()
                 if level.get_parameter_source(name) not in (None, ParameterSource.DEFAULT)}
        if level is ctx:
            given.update(changes)
        for param in level.command.params:
            if param.name in given:
                words.extend(_words(param, given[param.name]))
    return " ".join(shlex.quote(word) for word in words)


def _words(param: click.Parameter, value: Any) -> list[str]:
    """`value` of `param` as command-line words."""
    values = list(value) if param.multiple or param.nargs != 1 else [value]
    texts = [str(int(v)) if isinstance(v, float) and v.is_integer() else str(v) for v in values]
    if isinstance(param, click.Argument):
        return texts
    if isinstance(param, click.Option) and param.is_flag:
        if value:
            return [param.opts[0]]
        return [param.secondary_opts[0]] if param.secondary_opts else []
    return [word for text in texts for word in (param.opts[0], text)]


def live_clock_options(func: F) -> F:
    """`--label-delay` and `--clock` of the commands that run the live simulator (demo, produce);
    `live_label_delay` turns the two into the delay."""
    func = click.option(
        "--clock", type=click.Choice(CLOCKS), default="simulated", show_default=True,
        help="Event times: the simulation's (a day of the demo world per ~2,200 transactions, ~2.2 s at 1,000 "
             "tx/s, so each customer's windows hold what they would in production; once it passes the present, "
             "consumers need FRAUDSTREAM_MAX_FUTURE_SKEW=none, which the demo sets), or the wall clock's (each "
             "customer then pays rate/customers times a second, and its windows fill without bound).")(func)
    return click.option(
        "--label-delay", default=None, callback=check_duration, metavar="DURATION",
        help="Delay before a transaction's label is published, in event time (e.g. 1d, 7d, 5s); short so that a "
             "live run sees labels (the real world's is weeks; backtests and replays use FRAUDSTREAM_LABEL_DELAY). "
             f"[default: {DEFAULT_LIVE_LABEL_DELAY['simulated']} on the simulated clock, "
             f"{DEFAULT_LIVE_LABEL_DELAY['wall']} on the wall clock]")(func)


def _checked_by(parse: Callable[[str], Any]) -> Callable[[click.Context, click.Parameter, str | None], str | None]:
    """An option callback: the value as given if `parse` reads it, a `click.BadParameter` (which names
    the option) now otherwise. The command parses it again: hints that repeat options repeat it as given."""

    def check(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
        if value is not None:
            try:
                parse(value)
            except FraudstreamError as exc:
                raise click.BadParameter(str(exc)) from None
        return value

    return check


check_duration = _checked_by(parse_duration)
check_time = _checked_by(parse_time)  # ISO-8601 dates and times


def live_label_delay(label_delay: str | None, clock: str) -> timedelta:
    """The `--label-delay` given, or the `--clock`'s default."""
    return parse_duration(label_delay or DEFAULT_LIVE_LABEL_DELAY[clock])


def load_settings(overrides: dict[str, Any], base: Settings | None = None) -> Settings:
    """Build settings from env vars (or `base`) with the non-None `overrides` on top."""
    updates = {k: v for k, v in overrides.items() if v is not None}
    try:
        if base is None:
            settings = Settings(**updates)
            setup_logging(settings.log_level, settings.log_format)
            return settings
        merged = {name: getattr(base, name) for name in Settings.model_fields}
        merged.update(updates)
        return Settings(**merged)
    except ValidationError as exc:
        raise click.BadParameter(_format_validation(exc, click.get_current_context(silent=True))) from exc


def _format_validation(exc: ValidationError, ctx: click.Context | None = None) -> str:
    """Each error named by what gave the value (the option, else the env var), as the user wrote it.

    >>> from fraudstream.config import Settings
    >>> try:
    ...     Settings(alert_threshold=2, label_delay="soon")
    ... except ValidationError as exc:
    ...     print(_format_validation(exc))
    FRAUDSTREAM_ALERT_THRESHOLD: Input should be less than or equal to 1; FRAUDSTREAM_LABEL_DELAY: not a duration: 'soon' (use e.g. 7d, 36h, 15m, 90s)
    """
    def named(loc: tuple[int | str, ...]) -> str:
        field = str(loc[0]) if loc else ""
        where = setting_source(ctx, field) if field in Settings.model_fields else field
        return ".".join([where, *(str(p) for p in loc[1:])])

    return "; ".join(f"{named(err['loc']) + ': ' if err['loc'] else ''}{err['msg'].removeprefix('Value error, ')}"
                     for err in exc.errors())  # (no loc: a check of several settings, which names them)


def require_bootstrap(settings: Settings) -> None:
    """A usage error (exit 2, as for any missing setting) when no broker is set, before any work."""
    if not settings.kafka_bootstrap:
        raise click.UsageError("set FRAUDSTREAM_KAFKA_BOOTSTRAP (see `fraudstream up`)")


def settings_from(ctx: click.Context, **overrides: Any) -> Settings:
    """The settings of this invocation with the command's own setting options applied."""
    root = ctx.find_root().obj
    if isinstance(root, click.BadParameter):  # a bad FRAUDSTREAM_* variable or global option (see `main`)
        raise root
    if not isinstance(root, Settings):
        root = load_settings({})
    return load_settings(overrides, base=root) if any(v is not None for v in overrides.values()) else root


def handle_errors(func: F) -> F:
    """Report FraudstreamError, a broker or Redis that cannot be reached, and a file that cannot be
    read or written, as a clear one-line error (exit 1) instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
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


class WholeHelpGroup(click.Group):
    """A group whose help gives each command's first sentence whole, wrapped (click cuts it to the
    line's width with "...")."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, command.get_short_help_str(limit=200)) for name in self.list_commands(ctx)
                if (command := self.get_command(ctx, name)) is not None and not command.hidden]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


class CommandError(click.ClickException):
    """A command's one-line error (exit 1): ``Error: ...`` on stderr, or a JSON log line with
    ``--log-format json`` (whose readers take stderr one JSON object per line)."""

    def show(self, file: Any = None) -> None:
        from fraudstream.logs import json_logging

        if json_logging():
            logging.getLogger("fraudstream.cli").error(self.format_message())
        else:
            super().show(file)


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


def setting_source(ctx: click.Context | None, field: str) -> str:
    """What gave the setting `field` its value: the option given on the command line (the command's
    own first, e.g. `backtest --redis`, then its groups', e.g. `--redis-url`), else its env var.

    >>> @click.command()
    ... @click.option("--redis", "redis_url")
    ... def backtest(redis_url): pass
    >>> setting_source(backtest.make_context("backtest", ["--redis", "redis://h:1/0"]), "redis_url")
    '--redis'
    >>> setting_source(backtest.make_context("backtest", []), "redis_url")
    'FRAUDSTREAM_REDIS_URL'
    """
    while ctx is not None:
        if ctx.get_parameter_source(field) not in (None, ParameterSource.DEFAULT):
            return next(p.opts[0] for p in ctx.command.params if p.name == field)
        ctx = ctx.parent
    return ENV_PREFIX + field.upper()


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
    if isinstance(exc, (kafka.errors.KafkaConnectionError, kafka.errors.KafkaTimeoutError,
                        kafka.errors.BrokerNotAvailableError)):
        return f"the Kafka broker did not answer ({kafka_source}): {exc}"
    return None
