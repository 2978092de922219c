"""`fraudstream dead-letters`: what the consumers dead-lettered, why, and from where, one line (or
JSON line) per record; the records on the topic, then exit (`--follow`: wait for new ones).
`--redrive` sends those of one reason back to their source topics (`fraudstream.stream.redrive`)."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections import Counter
from typing import Any

import click

from fraudstream import constants
from fraudstream.cli.errors import CommandError, handle_errors, notice
from fraudstream.cli.settings_options import require_bootstrap, settings_from
from fraudstream.config import Settings

SHOWN_VALUE_CHARS = 160  # of the original bytes in a line (`--json` has them whole)
END_WAIT_S = 30.0  # without --follow (and --redrive): give up after this long without a record short of the end
STOPPED_SHORT_EXIT = 1  # the exit status then (after the summary): the listing or the redrive is not complete


def dead_letter(record: Any) -> dict[str, Any]:
    """A dead letter as a JSON-ready dict: where it is, why, where it came from, its key and value (as
    text when it is UTF-8, else base64 under ``value_base64``) and the original headers.

    >>> from types import SimpleNamespace
    >>> record = SimpleNamespace(topic="transactions.dlq", partition=0, offset=3, timestamp=1_700_000_000_000,
    ...     key=b"c1", value=b"\\xff\\xfe", headers=[("fraudstream.reason", b"invalid_json"), ("trace", b"t-1"),
    ...     ("fraudstream.error", b"not JSON"), ("fraudstream.source.topic", b"transactions"),
    ...     ("fraudstream.source.partition", b"2"), ("fraudstream.source.offset", b"41")])
    >>> d = dead_letter(record)
    >>> d["reason"], d["source"], d["value_base64"], d["headers"]
    ('invalid_json', {'topic': 'transactions', 'partition': 2, 'offset': 41}, '//4=', {'trace': 't-1'})
    """
    from fraudstream.stream.dlq import OWN_HEADERS, header_int, own_headers  # (kafka-python: when it runs)

    own = own_headers(record.headers)
    out: dict[str, Any] = {
        "topic": record.topic, "partition": record.partition, "offset": record.offset, "timestamp": record.timestamp,
        "reason": own[constants.DLQ_HEADER_REASON] or None, "error": own[constants.DLQ_HEADER_ERROR] or None,
        "source": {"topic": own[constants.DLQ_HEADER_TOPIC] or None,
                   "partition": header_int(own[constants.DLQ_HEADER_PARTITION]),
                   "offset": header_int(own[constants.DLQ_HEADER_OFFSET])},
        "key": _text(record.key),
    }
    value = record.value or b""
    try:
        out["value"] = value.decode("utf-8")
    except UnicodeDecodeError:
        out["value_base64"] = base64.b64encode(value).decode()
    out["headers"] = {key: (value or b"").decode("utf-8", "replace") for key, value in (record.headers or [])
                      if key not in OWN_HEADERS}
    return out


def format_dead_letter(d: dict[str, Any]) -> str:
    """One readable line, with the error as `--json` has it (the consumers' errors name their reason first).

    >>> d = {"topic": "labels.dlq", "partition": 1, "offset": 7, "timestamp": 0, "reason": "too_late",
    ...     "error": "too_late: event_time ... is too old", "source": {"topic": "labels", "partition": 1,
    ...     "offset": 90}, "key": "c1", "value": '{"transaction_id": "t1"}', "headers": {}}
    >>> format_dead_letter(d)
    'labels.dlq[1]@7 too_late from labels[1]@90 key=c1: too_late: event_time ... is too old | {"transaction_id": "t1"}'
    >>> from types import SimpleNamespace
    >>> bad = dead_letter(SimpleNamespace(topic="tx.dlq", partition=0, offset=3, timestamp=0, key=b"c1",
    ...     value=b"{", headers=[("fraudstream.reason", b"invalid_json"),
    ...     ("fraudstream.error", b"invalid_json: Expecting property name enclosed in double quotes")]))
    >>> bad["error"]
    'invalid_json: Expecting property name enclosed in double quotes'
    >>> format_dead_letter(bad)
    'tx.dlq[0]@3 invalid_json from ?[None]@None key=c1: invalid_json: Expecting property name enclosed in double quotes | {'
    >>> format_dead_letter({**d, "headers": {"fraudstream.redriven_from": "labels.dlq[0]@3"}})[:78]
    'labels.dlq[1]@7 too_late from labels[1]@90 (redriven from labels.dlq[0]@3) key'
    """
    source = d["source"]
    error = d["error"] or ""
    shown = d["value"] if "value" in d else "base64:" + d["value_base64"]
    if len(shown) > SHOWN_VALUE_CHARS:
        shown = shown[:SHOWN_VALUE_CHARS] + f"... ({len(shown):,} chars)"
    redriven = d["headers"].get(constants.REDRIVEN_FROM_HEADER)
    again = f" (redriven from {redriven})" if redriven else ""
    return _printable(f"{d['topic']}[{d['partition']}]@{d['offset']} {d['reason'] or '?'} from "
                      f"{source['topic'] or '?'}[{source['partition']}]@{source['offset']}{again} key={d['key']}: "
                      f"{error} | {shown}")


def _printable(text: str) -> str:
    """Control characters escaped (a bad record's newlines, carriage returns or terminal escapes
    must not act on the terminal).

    >>> _printable("a\\nb\\r\\x1b[31mc\\té")
    'a\\\\nb\\\\r\\\\x1b[31mc\\\\té'
    """
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8", "replace")


@click.command("dead-letters")
@click.option("--labels", "of_labels", is_flag=True, help="The labels' dead letters (default: the transactions').")
@click.option("--reason", default=None, help="Only dead letters of this reason (e.g. invalid_json, too_late).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per dead letter, with the value whole.")
@click.option("--follow", is_flag=True, help="After the records on the topic, wait for new ones (Ctrl-C to stop).")
@click.option("--max", "max_records", type=click.IntRange(min=1), default=None, help="Exit after this many.")
@click.option("--redrive", is_flag=True,
              help="Send the dead letters of --reason back to the topic they came from (once the cause is fixed), "
                   "each once: the next --redrive goes on after this one's.")
@click.pass_context
@handle_errors
def dead_letters(ctx: click.Context, of_labels: bool, reason: str | None, as_json: bool, follow: bool,
                 max_records: int | None, redrive: bool) -> None:
    """Print the dead letters (bad records the consumers set aside) from the first, then a count per
    reason on stderr (reading without a consumer group, committing nothing). With --redrive, send
    those of --reason back to their source topic and print a JSON summary last."""
    from fraudstream.kafka_io import make_consumer, partitions_of, unfetched
    from fraudstream.kafka_rewind import PastEndRewinder
    from fraudstream.services import terminate_as_exception

    if redrive and not reason:  # usage errors before any setting is read
        raise click.UsageError("--redrive needs --reason: the dead letters of other reasons would only come back "
                               "(see them with `fraudstream dead-letters`, e.g. '... 3 invalid_json, 2 "
                               "unknown_transaction')", ctx)
    if redrive and follow:
        raise click.UsageError("--redrive reads to the end of the topic and exits; it does not take --follow", ctx)
    settings = settings_from(ctx)
    require_bootstrap(settings)
    topic = settings.topic_labels_dlq if of_labels else settings.topic_dlq
    if redrive:
        _redrive(ctx, settings, topic, reason, as_json, max_records)
        return
    consumer = make_consumer(settings, group_id=None)
    past_end = PastEndRewinder()
    counts: Counter[str] = Counter()
    shown = 0
    stopped_short = False
    with terminate_as_exception():  # SIGTERM too (docker stop: PID 1 has no default action)
        try:
            parts = partitions_of(consumer, topic)
            if not parts:
                raise CommandError(f"topic {topic!r} does not exist (no consumer has run against this broker?)")
            consumer.assign(parts)
            consumer.seek_to_beginning(*parts)
            last_read = time.monotonic()
            while max_records is None or shown < max_records:
                polled = consumer.poll(timeout_ms=200)
                past_end.check(consumer)  # the broker lost its logs (Tansu restarted)
                if polled:
                    last_read = time.monotonic()
                for records in polled.values():
                    for record in records:
                        d = dead_letter(record)
                        counts[d["reason"] or "?"] += 1
                        if reason is not None and d["reason"] != reason:
                            continue
                        click.echo(json.dumps(d) if as_json else format_dead_letter(d))
                        shown += 1
                        if max_records is not None and shown >= max_records:
                            break
                    if max_records is not None and shown >= max_records:
                        break
                # the end of the log is the fetch high watermark (see fraudstream.kafka_io for Tansu)
                if follow or polled:
                    continue
                short = [f"{tp.topic}[{tp.partition}]" for tp in parts if unfetched(consumer, tp) != 0]
                if not short:
                    break
                if time.monotonic() - last_read > END_WAIT_S:
                    notice(f"Warning: stopped short of the end of {', '.join(short)}: nothing came for "
                           f"{END_WAIT_S:.0f} s", logging.WARNING)
                    stopped_short = True
                    break
        except KeyboardInterrupt:
            pass
        finally:
            consumer.close()
    summary = ", ".join(f"{n:,} {why}" for why, n in counts.most_common()) or "none"
    notice(f"{topic}: {sum(counts.values()):,} dead letters read ({summary}); {shown:,} shown", logging.INFO)
    if reason is not None and not counts[reason] and counts:  # a typo, or the other topic's reason
        notice(f"Warning: no dead letter of {topic} has the reason {reason!r}; those it has: "
               f"{', '.join(sorted(counts))}", logging.WARNING)
    if stopped_short:
        ctx.exit(STOPPED_SHORT_EXIT)


def _redrive(ctx: click.Context, settings: Settings, topic: str, reason: str | None, as_json: bool,
             max_records: int | None) -> None:
    import threading

    from fraudstream.stream.redrive import redrive, redrive_group
    from fraudstream.stream.signals import stop_on_signals

    if not reason:  # (checked by the command first)
        raise click.UsageError("--redrive needs --reason", ctx)

    def sent(record: Any, source: str) -> None:
        d = dead_letter(record)
        click.echo(json.dumps({**d, "redriven_to": source}) if as_json else f"-> {source}: {format_dead_letter(d)}")

    stop = threading.Event()
    with stop_on_signals(stop) as received:
        stats = redrive(settings, topic, reason, max_records=max_records, stop=stop, on_sent=sent,
                        end_wait_s=END_WAIT_S)
    summary = {"topic": topic, "reason": reason, **stats.summary(),
               "group": redrive_group(settings.group_id, topic, reason)}
    if stats.stopped_short:
        notice(f"Warning: stopped short of the end of {', '.join(stats.stopped_short)}: nothing came from "
               f"the broker for {END_WAIT_S:.0f} s; run again to go on", logging.WARNING)
    if stats.no_source:
        notice(f"Warning: {stats.no_source:,} dead letter(s) of {reason!r} name no source topic that exists: "
               f"not sent (they stay in {topic}; this redrive's group has moved past them)", logging.WARNING)
    if not stats.redriven and not stats.no_source and (stats.read or not stats.stopped_short):
        others = ", ".join(sorted(stats.other_reasons)) or "none"
        labels = "" if topic == settings.topic_labels_dlq else " (the labels' dead letters: --labels)"
        notice(f"Warning: no dead letter of {topic} read now has the reason {reason!r}; those it has: "
               f"{others}{labels}", logging.WARNING)
    elif stats.stopped:
        notice("stopped before the end of the topic: the same command goes on from there", logging.INFO)
    click.echo(json.dumps(summary))
    if received.signum is not None:
        ctx.exit(received.exit_code)
    if stats.stopped_short:  # not done, for a script or a scheduler: the same command goes on from there
        ctx.exit(STOPPED_SHORT_EXIT)
