"""Options bound to settings fields (flag > env var > default), and the settings of an invocation."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Collection
from datetime import timedelta
from typing import Any, TypeVar

import click
from click.core import ParameterSource
from pydantic import ValidationError

from fraudstream.config import Settings, mask_url
from fraudstream.constants import ENV_PREFIX
from fraudstream.logs import setup_logging

F = TypeVar("F", bound=Callable[..., Any])


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
    replacing or adding values; for hints such as where to resume. A URL's password is shown as ``***``
    (the hint goes to the log too): the user puts theirs back in.

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
    >>> @click.group()
    ... @click.option("--redis-url", "redis_url")
    ... def tool(redis_url): pass
    >>> @tool.command()
    ... def run(): pass
    >>> top = tool.make_context("tool", ["--redis-url", "redis://:hunter2@cache:6379/0", "run"])
    >>> command_line(run.make_context("run", [], parent=top))
    "fraudstream --redis-url 'redis://:***@cache:6379/0' run"
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
    if param.name is not None and param.name.endswith("_url"):
        texts = [mask_url(text) or text for text in texts]
    if isinstance(param, click.Argument):
        return texts
    if isinstance(param, click.Option) and param.is_flag:
        if value:
            return [param.opts[0]]
        return [param.secondary_opts[0]] if param.secondary_opts else []
    return [word for text in texts for word in (param.opts[0], text)]


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


def settings_from(ctx: click.Context, uses: Collection[str] | None = None, **overrides: Any) -> Settings:
    """The settings of this invocation with the command's own setting options applied. `uses`: the
    only settings the command reads besides the logging ones, for a command that reads few (`record`):
    a bad value of another (a FRAUDSTREAM_REDIS_URL meant for the consumers, say) is then left at its
    default, with a warning, instead of stopping the command."""
    root = ctx.find_root().obj
    if isinstance(root, click.BadParameter):  # a bad FRAUDSTREAM_* variable or global option (see `main`)
        root = ctx.find_root().obj = _unused_left_at_default(ctx, root, uses)
    if not isinstance(root, Settings):
        root = load_settings({})
    return load_settings(overrides, base=root) if any(v is not None for v in overrides.values()) else root


def _unused_left_at_default(ctx: click.Context, error: click.BadParameter, uses: Collection[str] | None) -> Settings:
    """The settings with the bad values `error` reports left at their defaults, when the command does
    not use them (`uses`); `error` itself otherwise, or when a check of several settings failed."""
    cause = error.__cause__
    if uses is None or not isinstance(cause, ValidationError) or not all(e["loc"] for e in cause.errors()):
        raise error
    bad = {str(e["loc"][0]) for e in cause.errors()}
    if bad & ({"log_level", "log_format"} | set(uses)):
        raise error
    given = {name: value for name, value in ctx.find_root().params.items() if value is not None and name not in bad}
    try:
        settings = Settings(**given, **{name: Settings.model_fields[name].get_default(call_default_factory=True)
                                        for name in bad})  # (given explicitly, env vars do not count)
    except ValidationError:
        raise error from None
    setup_logging(settings.log_level, settings.log_format)
    from fraudstream.cli.errors import notice  # (errors imports this module)

    notice(f"Warning: {error.message} (`{ctx.info_name}` does not use it: left at its default)")
    return settings


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
