"""A topic about to be created whose name is close to one the broker has: a misspelt
FRAUDSTREAM_TOPIC_* (or --topic) would otherwise have `consume` or `produce` create an empty topic
and read or write there, with nothing but an INFO line to show for it."""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable, Mapping

from fraudstream.constants import ENV_PREFIX


def near_misses(created: Iterable[str], existing: Collection[str], wanted: Collection[str],
                fields: Mapping[str, str] | None = None) -> list[str]:
    """One warning per topic of `created` whose name is close to an `existing` topic that is not
    `wanted` itself; `fields` maps a topic name to its settings field, to name the variable.

    >>> near_misses(["transactionz"], {"transactions", "labels"}, ["transactionz", "labels"],
    ...             {"transactionz": "topic_transactions"})  # doctest: +NORMALIZE_WHITESPACE
    ["created topic 'transactionz' (FRAUDSTREAM_TOPIC_TRANSACTIONS), which did not exist, while the broker
    has 'transactions': if that is the topic meant, fix the name (this one is empty, and what is written
    to it nobody else reads)"]
    >>> near_misses(["alerts"], {"transactions", "labels"}, ["transactions", "labels", "alerts"])
    []
    """
    others = sorted(set(existing) - set(wanted))
    messages = []
    for topic in created:
        close = difflib.get_close_matches(topic, others, n=1, cutoff=0.8)
        if not close:
            continue
        field = (fields or {}).get(topic)
        named = f" ({ENV_PREFIX}{field.upper()})" if field else ""
        messages.append(f"created topic {topic!r}{named}, which did not exist, while the broker has {close[0]!r}: "
                        "if that is the topic meant, fix the name (this one is empty, and what is written to it "
                        "nobody else reads)")
    return messages
