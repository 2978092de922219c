"""`fraudstream alerts`: subscribe to the alert topic and print one line (or JSON line) per alert."""

from __future__ import annotations

import logging
import math
import time

from typing import TYPE_CHECKING

import click

from fraudstream.cli.common import FiniteFloat
from fraudstream.cli.errors import CommandError, handle_errors, notice
from fraudstream.cli.settings_options import require_bootstrap, settings_from

if TYPE_CHECKING:
    from fraudstream.models.events import Alert


def reason_value(value: float) -> str:
    """A feature's value in an alert line: whole numbers whole, others to the cent from 1 on (amounts,
    speeds), 4 significant digits below.

    >>> [reason_value(v) for v in (422.15, 20000.0, 1000.0, 0.0125, 3.0, -2.5, float("nan"))]
    ['422.15', '20000', '1000', '0.0125', '3', '-2.5', 'nan']
    """
    if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    if math.isfinite(value) and abs(value) >= 1:
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return f"{value:.4g}"


def format_alert(alert: Alert) -> str:
    """One readable line: time, score, customer, terminal, amount, model and top reasons."""
    reasons = ", ".join(f"{r.feature}={reason_value(r.value)} ({r.contribution:+.2f})" for r in alert.reasons)
    return (f"{alert.event_time:%Y-%m-%d %H:%M:%S} ALERT score={alert.score:.3f} tx={alert.transaction_id} "
            f"customer={alert.customer_id} terminal={alert.terminal_id} amount={alert.amount:.2f} "
            f"model={alert.model_name}@{alert.model_version} | {reasons}")


WAIT_HINT_S = 5.0  # seconds without an alert at the start after which `alerts` says it is waiting


def waiting_hint(topic: str, from_beginning: bool, timeout: float | None, filters: str = "", read: int = 0) -> str:
    """What `alerts` prints (stderr) when none was shown in its first `WAIT_HINT_S` seconds; `filters`:
    the options that choose alerts (e.g. "--customer c1"), `read`: the alerts they left out.

    >>> waiting_hint("alerts", True, None)
    "no alert on 'alerts' yet (none at all since its beginning); waiting for new ones: Ctrl-C to stop, or --timeout S to exit after S seconds without one"
    >>> waiting_hint("alerts", True, 8, "--customer c9", 95)
    "no alert on 'alerts' matches --customer c9 yet (95 read since its beginning, none matched); waiting for new ones: exits after 8 s without one that matches"
    """
    one = "one that matches" if filters else "one"
    end = f"exits after {timeout:g} s without {one}" if timeout is not None else \
        f"Ctrl-C to stop, or --timeout S to exit after S seconds without {one}"
    if filters and read:
        since = "since its beginning" if from_beginning else "since this command started"
        return f"no alert on {topic!r} matches {filters} yet ({read} read {since}, none matched); waiting for new ones: {end}"
    since = "none at all since its beginning" if from_beginning else "none since this command started"
    return f"no alert on {topic!r} yet ({since}); waiting for new ones: {end}"


@click.command()
@click.option("--from-beginning", is_flag=True, help="Start at the first alert instead of new ones.")
@click.option("--json", "as_json", is_flag=True, help="Print each alert as one JSON line.")
@click.option("--max", "max_alerts", type=click.IntRange(min=1), default=None, help="Exit after this many alerts.")
@click.option("--timeout", type=FiniteFloat(0.0), default=None,
              help="Exit after this many seconds without an alert (one that --min-score and --customer let "
                   "through), once the alerts already on the topic are read.")
@click.option("--min-score", type=FiniteFloat(0.0, inclusive=True, maximum=1.0), default=None, help="Only alerts with at least this score.")
@click.option("--customer", default=None, help="Only alerts of this customer id.")
@click.pass_context
@handle_errors
def alerts(ctx: click.Context, from_beginning: bool, as_json: bool, max_alerts: int | None,
           timeout: float | None, min_score: float | None, customer: str | None) -> None:
    """Print alerts as they arrive on the alert topic (no consumer group; nothing is committed)."""
    from pydantic import ValidationError

    from fraudstream.kafka_io import make_consumer, partitions_of, unfetched
    from fraudstream.kafka_rewind import PastEndRewinder
    from fraudstream.services import terminate_as_exception
    from fraudstream.models.events import Alert

    settings = settings_from(ctx)
    require_bootstrap(settings)
    consumer = make_consumer(settings, group_id=None)
    past_end = PastEndRewinder()
    started_ms = time.time() * 1000.0
    with terminate_as_exception():  # SIGTERM too (docker stop: PID 1 has no default action)
        try:
            parts = partitions_of(consumer, settings.topic_alerts)
            if not parts:
                raise CommandError(f"topic {settings.topic_alerts!r} does not exist")
            consumer.assign(parts)
            if from_beginning:
                consumer.seek_to_beginning(*parts)
            else:
                # On Tansu seek_to_end() lands before the last batch (see fraudstream.kafka_io), so
                # alerts published before we started are also skipped by their timestamp below.
                consumer.seek_to_end(*parts)
            filters = " ".join(f"{option} {value:g}" if isinstance(value, float) else f"{option} {value}"
                               for option, value in (("--min-score", min_score), ("--customer", customer)) if value is not None)
            shown = read = 0
            last = time.monotonic()  # the last alert shown, or the start, or a poll still behind
            hinted = False
            while max_alerts is None or shown < max_alerts:
                polled = consumer.poll(timeout_ms=200)
                past_end.check(consumer)  # the broker lost its logs (Tansu restarted)
                # still reading what was there: not waiting yet
                if polled and any((unfetched(consumer, tp) or 0) > 0 for tp in parts):
                    last = time.monotonic()
                for records in polled.values():
                    for record in records:
                        if not from_beginning and record.timestamp < started_ms:
                            continue
                        read += 1
                        try:
                            alert = Alert.model_validate_json(record.value)
                        except ValidationError as exc:
                            notice(f"skipping malformed alert at {record.topic}[{record.partition}] offset "
                                   f"{record.offset}: {exc.errors()[0]['msg']}", logging.WARNING)
                            continue
                        if min_score is not None and alert.score < min_score:
                            continue
                        if customer is not None and alert.customer_id != customer:
                            continue
                        click.echo(record.value.decode() if as_json else format_alert(alert))
                        shown += 1
                        last = time.monotonic()
                        if max_alerts is not None and shown >= max_alerts:
                            break
                    if max_alerts is not None and shown >= max_alerts:
                        break
                waited = time.monotonic() - last
                if timeout is not None and waited >= timeout:
                    break
                if not hinted and shown == 0 and waited >= WAIT_HINT_S:  # not a hang: say so, once
                    hinted = True
                    notice(waiting_hint(settings.topic_alerts, from_beginning, timeout, filters, read), logging.INFO)
        except KeyboardInterrupt:
            pass
        finally:
            consumer.close()
