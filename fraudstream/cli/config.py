"""`fraudstream config`: every setting with its env var, default and current value (secrets hidden)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import click
from pydantic import SecretStr

from fraudstream.config import Settings
from fraudstream.constants import ENV_PREFIX
from fraudstream.timeutil import format_duration


def env_value(name: str, value: Any) -> str:
    """A setting's value as its FRAUDSTREAM_* variable reads it back.

    >>> env_value("label_delay", timedelta(days=7)), env_value("challengers", ("logreg", "htree"))
    ('7d', 'logreg,htree')
    >>> env_value("max_future_skew", None), env_value("kafka_bootstrap", None), env_value("redis_cluster", False)
    ('none', '', 'false')
    """
    if value is None:
        return "none" if name == "max_future_skew" else ""
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def reference_table() -> str:
    """The configuration reference as a Markdown table, generated from the settings object.

    >>> "| `FRAUDSTREAM_KAFKA_BOOTSTRAP` |" in reference_table()
    True
    """
    lines = ["| setting | env var | default | description |", "|---|---|---|---|"]
    for name, info in Settings.model_fields.items():
        default = info.default
        shown = "" if default is None else "**********" if isinstance(default, SecretStr) else env_value(name, default)
        lines.append(f"| `{name}` | `{ENV_PREFIX}{name.upper()}` | {shown and f'`{shown}`'} | {info.description or ''} |")
    return "\n".join(lines)


@click.command()
@click.option("--markdown", is_flag=True, help="Print the reference table (as in the README).")
@click.pass_context
def config(ctx: click.Context, markdown: bool) -> None:
    """Show the settings in force (flags > FRAUDSTREAM_* env vars > defaults); secrets are hidden."""
    if markdown:
        click.echo(reference_table())
        return
    from fraudstream.cli.settings_options import settings_from  # (settings_options imports this module)

    settings = settings_from(ctx)
    for name in Settings.model_fields:
        value = settings.redis_url_masked() if name == "redis_url" else getattr(settings, name)
        note = ""
        if isinstance(value, SecretStr):
            default = Settings.model_fields[name].default
            if isinstance(default, SecretStr) and value.get_secret_value() == default.get_secret_value():
                note = "  # the built-in default, for demos only"
            value = "**********"
        click.echo(f"{ENV_PREFIX}{name.upper()}={env_value(name, value)}{note}")
