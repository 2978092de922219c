"""`fraudstream config`: every setting with its env var, default and current value (secrets hidden)."""

from __future__ import annotations

import click
from pydantic import SecretStr

from fraudstream.config import Settings
from fraudstream.constants import ENV_PREFIX


def reference_table() -> str:
    """The configuration reference as a Markdown table, generated from the settings object.

    >>> "| `FRAUDSTREAM_KAFKA_BOOTSTRAP` |" in reference_table()
    True
    """
    lines = ["| setting | env var | default | description |", "|---|---|---|---|"]
    for name, info in Settings.model_fields.items():
        default = info.default
        shown = "" if default is None else str(default)
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
    settings: Settings = ctx.find_root().obj
    for name in Settings.model_fields:
        value = settings.redis_url_masked() if name == "redis_url" else getattr(settings, name)
        if isinstance(value, SecretStr):
            value = "**********"
        click.echo(f"{ENV_PREFIX}{name.upper()}={'' if value is None else value}")
