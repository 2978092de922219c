"""`fraudstream record`: simulate days of transactions with labels and write them to a file."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

import click

from fraudstream.cli.common import FiniteFloat, check_time, checked_out
from fraudstream.cli.errors import handle_errors
from fraudstream.cli.settings_options import settings_from, settings_option
from fraudstream.config import Settings
from fraudstream.timeutil import parse_time


@click.command()
@click.option("--days", type=click.IntRange(min=1), required=True, help="Days of event time to simulate.")
@click.option("--customers", type=click.IntRange(min=1), default=5000, show_default=True, help="Simulated customers.")
@click.option("--terminals", type=click.IntRange(min=1), default=10000, show_default=True, help="Simulated terminals.")
@settings_option("--seed", "seed", type=int)
@click.option("--start", callback=check_time, default="2024-01-01", show_default=True, help="The first day (a date; days run from midnight UTC).")
@click.option("--fraud-scale", type=FiniteFloat(0.0, inclusive=True, maximum=100.0), default=1.0, show_default=True,
              help="Multiply every fraud scenario's rate (0 switches all off; at 100 most cards are compromised).")
@click.option("--disable", "disabled", multiple=True,
              type=click.Choice(["amount_threshold", "compromised_terminal", "compromised_card", "card_testing",
                                 "account_takeover", "night_spree"]),
              help="Switch a fraud scenario off (repeatable).")
@click.option("--report-share", type=FiniteFloat(0.0, inclusive=True, maximum=1.0), default=1.0, show_default=True,
              help="Share of frauds that are ever reported (labelled fraud; the others are labelled genuine, "
                   "their fraud_scenario kept).")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
              help="Output file: .jsonl or .csv, optionally .gz.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar (days, rate, ETA) on stderr (none with --log-format json).")
@click.pass_context
@handle_errors
def record(ctx: click.Context, days: int, customers: int, terminals: int, start: str, fraud_scale: float,
           disabled: tuple[str, ...], report_share: float, out: str, progress: bool, **overrides: Any) -> None:
    """Write simulated transactions with their labels, in event-time order, to the --out file.

    The same seed and options give the same file, byte for byte.
    """
    from fraudstream.producer.scenarios import SCENARIO_NAMES, FraudRates
    from fraudstream.producer.simulator import SimulatorConfig, starts_a_day

    from fraudstream.models.events import MAX_EVENT_TIME, MIN_EVENT_TIME

    checked_out(out)  # before the progress bar
    settings = settings_from(ctx, uses=("seed",), **overrides)  # a file: no broker, no Redis
    first = parse_time(start)
    if not starts_a_day(first):
        raise click.BadParameter(f"{start} is not midnight UTC: the simulated days, their daily rhythm and the "
                                 "night-time frauds run in UTC hours; give a date (e.g. 2024-03-10)", param_hint="--start")
    if not MIN_EVENT_TIME <= first <= MAX_EVENT_TIME - timedelta(days=days):
        too_long = days > (MAX_EVENT_TIME - MIN_EVENT_TIME).days  # from any start
        raise click.BadParameter(f"{start} + {days} days leaves the event times every reader accepts "
                                 f"({MIN_EVENT_TIME.year}..{MAX_EVENT_TIME.year})",
                                 param_hint="--days" if too_long else "--start")
    rates = FraudRates().scaled(fraud_scale).without(*disabled)
    config = replace(SimulatorConfig(), customers=customers, terminals=terminals, seed=settings.seed,
                     start=first, rates=rates, report_share=report_share)
    summary = _record_with_progress(out, days, config, settings, shown=progress)
    click.echo(json.dumps({
        "file": out, "transactions": summary.rows, "frauds": summary.frauds, "frauds_reported": summary.reported,
        "fraud_rate": round(summary.fraud_rate, 5),
        # the file's fraud_scenario column holds the number; the summary names it
        "by_scenario": {f"{code} {SCENARIO_NAMES[int(code)]}": n for code, n in sorted(summary.by_scenario.items())},
        "seconds": round(summary.seconds, 3), "rate": round(summary.rows / max(summary.seconds, 1e-9)),
    }))


def _record_with_progress(out: str, days: int, config: Any, settings: Settings, shown: bool) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from fraudstream.cli.progress import progress_bar
    from fraudstream.producer.recorder import record as write_record

    columns = (TextColumn("[bold]record[/] day"), MofNCompleteColumn(), BarColumn(),
               TextColumn("{task.fields[rows]:>11} tx  {task.fields[rate]:>9} tx/s"), TimeElapsedColumn(),
               TextColumn("ETA"), TimeRemainingColumn())
    with progress_bar(settings, *columns, shown=shown) as bar:
        task = bar.add_task("record", total=days, rows="0", rate="")

        def on_day(day: int, summary: Any) -> None:
            elapsed = bar.tasks[0].elapsed or 0.0
            bar.update(task, completed=day, rows=f"{summary.rows:,}",
                       rate=f"{summary.rows / elapsed:,.0f}" if elapsed > 0 else "")

        return write_record(out, days, config, on_day=on_day)
