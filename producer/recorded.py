"""What a reader of recorded files yields: `Recorded` rows, the `Span` it read, and each row's label
(`labels_for`); and the column names of the two file formats (`producer.files` reads them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from fraudstream.models.events import Label, Transaction
from fraudstream.producer.fields import build_model

HANDBOOK_COLUMNS = ("TRANSACTION_ID", "TX_DATETIME", "CUSTOMER_ID", "TERMINAL_ID", "TX_AMOUNT", "TX_FRAUD")
HANDBOOK_SCENARIO = "TX_FRAUD_SCENARIO"
#: Columns of our CSV format (and keys of our JSON lines), in the order the recorder writes them.
OUR_COLUMNS = ("transaction_id", "customer_id", "terminal_id", "amount", "currency", "event_time",
               "merchant_category", "latitude", "longitude", "is_fraud", "fraud_scenario")
OUR_REQUIRED = ("transaction_id", "customer_id", "terminal_id", "amount", "event_time")
#: The handbook's names that are not ours in any case: a header with one of them is meant as the handbook's.
HANDBOOK_OWN = tuple(name for name in (*HANDBOOK_COLUMNS, HANDBOOK_SCENARIO) if name.lower() not in OUR_COLUMNS)


@dataclass(frozen=True, slots=True)
class Recorded:
    """One recorded transaction with its label, if the file has one."""

    transaction: Transaction
    is_fraud: bool | None  # None when the file has no label for it
    fraud_scenario: str | None  # analysis only, never a feature ("0"/None = genuine)

    @property
    def unreported(self) -> bool:
        """A fraud by its scenario that the label says is genuine (`record --report-share` below 1):
        the model never learns it is one, and a backtest counts it as genuine."""
        return self.is_fraud is False and self.fraud_scenario not in (None, "", "0")


@dataclass(slots=True)
class Span:
    """What a reader saw of its file: the event times of the first and the last row it read (in its
    window or not; None: no row), and whether it read to the end (else `last` is not the file's)."""

    first: datetime | None = None
    last: datetime | None = None
    complete: bool = False

    def describe(self) -> str:
        """The rows read, for a message.

        >>> from datetime import timezone
        >>> t = datetime(2018, 4, 1, tzinfo=timezone.utc)
        >>> Span(t, t + timedelta(days=2), complete=True).describe()
        'rows from 2018-04-01T00:00:00+00:00 to 2018-04-03T00:00:00+00:00'
        >>> Span(t, t + timedelta(days=2)).describe()  # not read to the end
        'rows from 2018-04-01T00:00:00+00:00 on (read up to 2018-04-03T00:00:00+00:00)'
        >>> Span(t, t).describe(), Span().describe()
        ('rows from 2018-04-01T00:00:00+00:00 on', 'no row')
        """
        if self.first is None:
            return "no row"
        if self.complete and self.last is not None:
            return f"rows from {self.first.isoformat()} to {self.last.isoformat()}"
        read = f" (read up to {self.last.isoformat()})" if self.last is not None and self.last != self.first else ""
        return f"rows from {self.first.isoformat()} on{read}"


def labels_for(rec: Recorded, delay: timedelta) -> Label | None:
    """The label of `rec`, reported at its event time plus `delay`; None when the file had no label."""
    if rec.is_fraud is None:
        return None
    tx = rec.transaction
    values = {"transaction_id": tx.transaction_id, "customer_id": tx.customer_id, "terminal_id": tx.terminal_id,
              "is_fraud": rec.is_fraud, "event_time": tx.event_time, "reported_at": tx.event_time + delay}
    return build_model(Label, values, set(values))  # type: ignore[no-any-return]
