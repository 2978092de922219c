"""Events keyed by something else than their customer id: handled, counted and warned about.

The topics' contract (README, "Topics and messages") keys transactions and labels by customer id, so
that the partitioner sends all of a customer's events to one partition, hence to one consumer, in
order. Keyed otherwise (by transaction id, or without a key: spread round robin), a customer's
events reach several partitions: with several consumers its transactions are then scored by more
than one of them, each seeing only what the others had already written, and a label may come
before its transaction is scored. Such events are scored and learned as usual (refusing them
would stop a feed over its keys); this says so, once at the first and then at most every
`every_s` seconds with a count.

>>> from types import SimpleNamespace as R
>>> warnings = MisKeyed(every_s=300.0)
>>> tx, label = R(transaction_id="t1", customer_id="c1", amount=5.0), R(transaction_id="t1", customer_id="c1")
>>> print(warnings.note([(R(topic="transactions", partition=2, offset=9, key=None), tx)], now=0.0))  # doctest: +ELLIPSIS
transaction t1 of customer c1 at transactions[2]@9 has no key, not its customer id: with several consumers, ...
>>> warnings.note([(R(topic="transactions", partition=0, offset=3, key=b"t2"), tx)], now=60.0)  # within 5 min
>>> print(warnings.note([(R(topic="labels", partition=1, offset=4, key=b"t3"), label)], now=301.0))  # doctest: +ELLIPSIS
2 more events keyed other than by their customer id in 301 s, e.g. label t1 of customer c1 at labels[1]@4 has key b't3': with several consumers, such a label can be read before another consumer has scored its transaction, ...
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fraudstream.logs import OccasionalWarning

log = logging.getLogger(__name__)

KEYED_BY_CUSTOMER = " (README: transactions and labels are keyed by customer_id)"
CONSEQUENCE = {
    "transaction": "with several consumers, that customer's transactions are scored by more than one of them, each "
                   "seeing only what the others had already written" + KEYED_BY_CUSTOMER,
    "label": "with several consumers, such a label can be read before another consumer has scored its transaction, "
             "and go to the labels' dead-letter topic as unknown_transaction" + KEYED_BY_CUSTOMER,
}


def _kind(event: Any) -> str:
    return "transaction" if hasattr(event, "amount") else "label"


def _describe(record: Any, event: Any) -> str:
    key = "has no key" if record.key is None else f"has key {record.key!r}"
    return (f"{_kind(event)} {event.transaction_id} of customer {event.customer_id} at "
            f"{record.topic}[{record.partition}]@{record.offset} {key}")


class MisKeyed:
    """Counts events keyed other than by their customer id and logs a warning now and then."""

    def __init__(self, every_s: float = 300.0) -> None:
        self.warning = OccasionalWarning(log, every_s)

    def note(self, events: Sequence[tuple[Any, Any]], now: float | None = None) -> str | None:
        """Count `events` (record, event); the warning logged, if one is due (returned for tests)."""
        if not events:
            return None
        return self.warning.note(
            len(events), lambda: f"{_describe(*events[0])}, not its customer id: {CONSEQUENCE[_kind(events[0][1])]}",
            lambda n, seconds: (f"{n:,} more events keyed other than by their customer id in {seconds:.0f} s, "
                                f"e.g. {_describe(*events[-1])}: {CONSEQUENCE[_kind(events[-1][1])]}"), now)
