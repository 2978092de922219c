"""`fraudstream up`: run the embedded broker and Redis server in the foreground."""

from __future__ import annotations

import logging
import shlex
import time

import click

from fraudstream.cli.errors import handle_errors, notice
from fraudstream.cli.settings_options import setting_source, settings_from, settings_option
from fraudstream.constants import EMBEDDED_PRODUCER_LINGER_MS, ENV_PREFIX

WATCH_S = 1.0  # how often `up` looks whether its servers still run


def export_lines(kafka_bootstrap: str, redis_url: str) -> list[str]:
    """The lines that point another shell at these servers, ready to paste; producers into the
    embedded broker batch for longer (`constants.EMBEDDED_PRODUCER_LINGER_MS`).

    >>> for line in export_lines("127.0.0.1:9092", "redis://127.0.0.1:6379/0"): print(line)
    export FRAUDSTREAM_KAFKA_BOOTSTRAP=127.0.0.1:9092
    export FRAUDSTREAM_REDIS_URL=redis://127.0.0.1:6379/0
    export FRAUDSTREAM_PRODUCER_LINGER_MS=100
    """
    return [f"export {ENV_PREFIX}{field.upper()}={shlex.quote(str(value))}"
            for field, value in (("kafka_bootstrap", kafka_bootstrap), ("redis_url", redis_url),
                                 ("producer_linger_ms", EMBEDDED_PRODUCER_LINGER_MS))]


@click.command()
@settings_option("--partitions", "topic_partitions", type=click.IntRange(min=1))
@click.pass_context
@handle_errors
def up(ctx: click.Context, topic_partitions: int | None) -> None:
    """Start the embedded Kafka-protocol broker (Tansu) and Redis server (Valkey) and create the topics.

    Prints the `export FRAUDSTREAM_...` lines to paste in other terminals; Ctrl-C stops both servers.
    New servers every time, also in a shell where those lines were pasted before.
    """
    from fraudstream.kafka_io import ensure_topics
    from fraudstream.services import ServerProcess, embedded_services

    settings = settings_from(ctx, topic_partitions=topic_partitions)
    for field, shown in (("kafka_bootstrap", settings.kafka_bootstrap), ("redis_url", settings.redis_url_masked())):
        if getattr(settings, field):
            notice(f"note: {field} is set ({shown}, from {setting_source(ctx, field)}); not used: `up` starts "
                   "new servers (paste the new lines below where you use them)", logging.INFO)
    settings = settings.model_copy(update={"kafka_bootstrap": None, "redis_url": None})
    servers: list[ServerProcess] = []
    try:
        with embedded_services(settings, servers) as live:
            ensure_topics(live)
            for line in export_lines(live.kafka_bootstrap or "", live.redis_url or ""):
                click.echo(line)
            notice(f"# paste the lines above in other terminals (the third: producers batch for "
                   f"{EMBEDDED_PRODUCER_LINGER_MS} ms, as this broker's fetches cost more with every batch it "
                   "holds); Ctrl-C stops the servers", logging.INFO)
            while not (dead := [server for server in servers if server.exited() is not None]):
                time.sleep(WATCH_S)
            for server in dead:  # the clients would wait on it for ever: stop all, and say why
                notice(f"error: {server.name} (pid {server.pid}) exited with code {server.exited()}; stopping "
                       f"the other servers (the data of these servers is kept in memory only: start `up` again "
                       f"and paste its new lines)", logging.ERROR)
    except KeyboardInterrupt:
        notice("stopped", logging.INFO)
        return
    raise SystemExit(1)
