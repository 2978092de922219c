"""Shared CLI plumbing: options bound to settings fields (flag > env var > default)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import click
from pydantic import ValidationError

from fraudstream.config import Settings
from fraudstream.constants import ENV_PREFIX
from fraudstream.errors import FraudstreamError
from fraudstream.logs import setup_logging

F = TypeVar("F", bound=Callable[..., Any])
_SETTING_PARAMS = "_fraudstream_setting_params"


def settings_option(flag: str, field: str, **kwargs: Any) -> Callable[[F], F]:
    """A click option that overrides the settings field `field`; help shows its env var.

    The env var is read by the settings object itself (not by click) so that there is one source.
    """
    envvar = ENV_PREFIX + field.upper()
    help_text = kwargs.pop("help", Settings.model_fields[field].description or "")
    default = Settings.model_fields[field].default
    shown = "" if default is None else f" [default: {default}]"

    def decorator(func: F) -> F:
        option = click.option(flag, field, default=None, help=f"{help_text} [env: {envvar}]{shown}", **kwargs)
        return option(func)

    return decorator


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
        raise click.BadParameter(_format_validation(exc)) from exc


def _format_validation(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())


def settings_from(ctx: click.Context, **overrides: Any) -> Settings:
    """The settings of this invocation with the command's own setting options applied."""
    root = ctx.find_root().obj
    if not isinstance(root, Settings):
        root = load_settings({})
    return load_settings(overrides, base=root) if any(v is not None for v in overrides.values()) else root


def handle_errors(func: F) -> F:
    """Report FraudstreamError as a clear one-line error (exit 2) instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except FraudstreamError as exc:
            logging.getLogger("fraudstream").debug("command failed", exc_info=True)
            raise click.ClickException(str(exc)) from exc

    return wrapper  # type: ignore[return-value]
