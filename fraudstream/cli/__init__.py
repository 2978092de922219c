"""The `fraudstream` command. Each subcommand lives in its own module and is imported on use."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from fraudstream.cli.common import WholeHelpGroup
from fraudstream.cli.errors import json_usage_error
from fraudstream.cli.settings_options import load_settings, settings_option
from fraudstream.constants import ENV_PREFIX
from fraudstream.errors import FraudstreamError

# name -> "module:attribute"; modules import their heavy dependencies inside the command.
COMMANDS: dict[str, str] = {
    "up": "fraudstream.cli.up:up",
    "demo": "fraudstream.cli.demo:demo",
    "produce": "fraudstream.cli.produce:produce",
    "consume": "fraudstream.cli.consume:consume",
    "alerts": "fraudstream.cli.alerts:alerts",
    "dead-letters": "fraudstream.cli.dead_letters:dead_letters",
    "topics": "fraudstream.cli.topics:topics",
    "record": "fraudstream.cli.record:record",
    "replay": "fraudstream.cli.replay:replay",
    "features": "fraudstream.cli.features:features",
    "backtest": "fraudstream.cli.backtest:backtest",
    "models": "fraudstream.cli.models:models",
    "config": "fraudstream.cli.config:config",
    "migrate-records": "fraudstream.cli.migrate:migrate_records",
    "prune-state": "fraudstream.cli.prune:prune_state",
}


class LazyGroup(WholeHelpGroup):
    """A group whose subcommands are imported only when they run (keeps --help fast)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in COMMANDS if self._spec_exists(name))

    @staticmethod
    def _spec_exists(name: str) -> bool:
        module = COMMANDS[name].split(":")[0]
        return importlib.util.find_spec(module) is not None

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS or not self._spec_exists(name):
            return None
        module_name, attr = COMMANDS[name].split(":")
        command = getattr(importlib.import_module(module_name), attr)
        if not isinstance(command, click.Command):  # pragma: no cover - programming error
            raise TypeError(f"{COMMANDS[name]} is not a click command")
        return command

    def invoke(self, ctx: click.Context) -> Any:
        """A global option given after the subcommand (`fraudstream consume --kafka-bootstrap X`) is
        refused by the subcommand: say where it goes. With ``--log-format json`` a usage error is a
        JSON log line too (`json_usage_error`), not click's usage text."""
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            if isinstance(exc, click.NoSuchOption):
                self._global_option_hint(ctx, exc)
            if not _is_help(exc) and _json_asked(ctx.params.get("log_format")):
                raise json_usage_error(exc) from exc
            raise

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        """The group's own usage errors (an unknown option before the command) as JSON too, when asked."""
        given_args = list(args)  # (click's parser consumes `args`)
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:
            if _is_help(exc):
                raise
            given = None  # the last --log-format, as click takes it
            for k, arg in enumerate(given_args):
                if arg.startswith("--log-format="):
                    given = arg.split("=", 1)[1]
                elif arg == "--log-format" and k + 1 < len(given_args):
                    given = given_args[k + 1]
            if _json_asked(given):
                raise json_usage_error(exc) from exc
            raise

    def _global_option_hint(self, ctx: click.Context, exc: click.NoSuchOption) -> None:
        from fraudstream.config import Settings

        own = next((p for p in self.params if isinstance(p, click.Option) and exc.option_name in p.opts), None)
        if own is not None and own.name in Settings.model_fields:  # a setting, not --version
            path = exc.ctx.command_path.split(" ", 1)[-1] if exc.ctx else ctx.invoked_subcommand
            exc.message = (f"No such option {exc.option_name!r} for `{path}`: it is an option of `fraudstream` "
                           f"itself, given before the command (`fraudstream {exc.option_name} VALUE {path} ...`), "
                           f"or set {ENV_PREFIX}{own.name.upper()}.")


def _is_help(exc: click.UsageError) -> bool:
    """A group called without a command: click shows its help (a usage error in click 8.2+), not an error."""
    return type(exc).__name__ == "NoArgsIsHelpError"


def _json_asked(log_format: str | None) -> bool:
    """Whether this invocation asked for JSON logs (`--log-format`, else its env var), read on its
    own: a usage error may come before the settings are loaded, or a bad one of them kept them from
    loading. Logging is set up for JSON then, so that the error is a JSON line."""
    import os

    from fraudstream.logs import setup_logging

    asked = (log_format or os.environ.get(f"{ENV_PREFIX}LOG_FORMAT") or "").strip().lower() == "json"
    if asked:
        setup_logging("INFO", "json")  # (the error is logged at ERROR, shown at any level)
    return asked


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@settings_option("--kafka-bootstrap", "kafka_bootstrap", help="Kafka bootstrap servers (unset: `demo` starts one).")
@settings_option("--redis-url", "redis_url", help="Redis URL (unset: `demo` starts a server).")
@settings_option("--log-level", "log_level", help="DEBUG, INFO, WARNING or ERROR.")
@settings_option("--log-format", "log_format", type=click.Choice(["text", "json"], case_sensitive=False),
                 help="Log format.")
@click.version_option(package_name="fraudstream")
@click.pass_context
def main(ctx: click.Context, **overrides: Any) -> None:
    """Streaming card-fraud detection: Kafka in, Redis event-time features, online River models, alerts out."""
    try:
        ctx.obj = load_settings(overrides)
    except click.BadParameter as exc:  # raised by the command when it reads them: its --help still shows
        ctx.obj = exc
    if not ctx.resilient_parsing:
        _warn_of_unknown_variables()


def _warn_of_unknown_variables() -> None:
    """A misspelt FRAUDSTREAM_* variable is ignored by the settings: say so (`env_names`)."""
    import os

    from fraudstream.cli.errors import notice
    from fraudstream.config import Settings
    from fraudstream.env_names import unknown_variables

    for message in unknown_variables(os.environ, Settings.model_fields):
        notice(f"Warning: {message}")


def run(prog_name: str | None = None) -> None:
    """Entry point that turns fraudstream errors into a clear message and exit code 2 (`prog_name`:
    the name usage lines show, default the script's)."""
    try:
        main(standalone_mode=True, prog_name=prog_name)
    except FraudstreamError as exc:  # pragma: no cover - click handles most
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
