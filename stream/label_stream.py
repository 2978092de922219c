"""What the label stream carries, shared by the label log that writes it and the consumers and the
learner that use it: stream ids, label entries, the outcome of appending one, and the entries one
append call added (`fraudstream.stream.label_log` keeps the stream itself).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum


def stream_id(value: str | bytes) -> tuple[int, int]:
    """A stream entry id as a comparable pair.

    >>> stream_id("1700000000000-2") > stream_id("1700000000000-10")
    False
    """
    text = value.decode() if isinstance(value, bytes) else value
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


class LabelOutcome(IntEnum):
    """What `fraudstream.stream.label_log.LabelLog.append` did with a label."""

    APPENDED = 0
    DUPLICATE = 1  # applied before, with the same label
    CONFLICT = 2  # applied before, with the other label
    UNKNOWN = 3  # no scored record and never applied

    def dead_letter(self, transaction_id: str, is_fraud: bool) -> tuple[str, str]:
        """Why a label with this outcome (neither appended nor a duplicate) goes to the labels'
        dead-letter topic: the reason, and the message (``unknown_transaction`` for any outcome but
        a conflict, as a label that was not appended and found no scored record).

        >>> LabelOutcome.CONFLICT.dead_letter("t9", is_fraud=False)
        ('label_conflict', 'transaction t9 was already labelled fraud; the first label stands')
        >>> LabelOutcome.UNKNOWN.dead_letter("t9", is_fraud=True)[0]
        'unknown_transaction'
        """
        if self is LabelOutcome.CONFLICT:
            return "label_conflict", (f"transaction {transaction_id} was already labelled "
                                      f"{'genuine' if is_fraud else 'fraud'}; the first label stands")
        return "unknown_transaction", (f"no scored record for transaction {transaction_id} (not scored yet, or "
                                       "expired, or the label's event_time is not in the hour of the transaction's, "
                                       "or its customer_id is not the transaction's)")


def unreadable_dead_letter(transaction_id: str, error: str) -> tuple[str, str]:
    """Why a label whose scored record is there but cannot be read (`schema.read_record`) goes to
    the labels' dead-letter topic: the reason and the message.

    >>> unreadable_dead_letter("t9", "FormatError")[0]
    'unreadable_record'
    """
    return "unreadable_record", (f"the scored record of transaction {transaction_id} cannot be read ({error}); "
                                 "it is left in Redis until it expires")


@dataclass(frozen=True)
class LabelEntry:
    """A label for the label stream: the features its transaction was scored with (None: no scored
    record was found), each model's score then, and the transaction's unambiguous id as `key`
    (``<len(customer id)>:<customer id><transaction id>``, `record_field`) so that the label is
    appended once however often it is delivered (None: no such check). The key is kept,
    as a field of the marker hash of `hour` (the transaction's event time in whole hours since the
    epoch), at least `ttl_ms` (the scored record's remaining life, after which a redelivered label
    is unknown anyway)."""

    features: Mapping[str, float] | None
    is_fraud: bool
    scores: Mapping[str, float]
    key: str | None = None
    ttl_ms: int | None = None
    hour: int = 0


LabelRow = tuple[str, dict[str, float] | None, bool]  # a label-stream entry: id, features (None: unreadable), is_fraud


@dataclass(frozen=True)
class AppendedRun:
    """Label-stream entries that one call appended, as `LabelLog.read` would give them
    back: they follow the entry `after` directly."""

    after: str
    rows: list[LabelRow]
