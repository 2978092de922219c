"""Shared CLI plumbing: parameter types, checks of files and times, the live simulator's options, and
the root group's help. Options bound to settings are in `settings_options`, errors in `errors`."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import click

from fraudstream.constants import CLOCKS, DEFAULT_LIVE_LABEL_DELAY
from fraudstream.errors import FraudstreamError
from fraudstream.timeutil import parse_duration, parse_time

F = TypeVar("F", bound=Callable[..., Any])


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


class WholeHelpGroup(click.Group):
    """A group whose help gives each command's first sentence whole, wrapped (click cuts it to the
    line's width with "...")."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, command.get_short_help_str(limit=200)) for name in self.list_commands(ctx)
                if (command := self.get_command(ctx, name)) is not None and not command.hidden]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)
