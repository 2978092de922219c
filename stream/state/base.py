"""The state-store interface: event-time window aggregates per customer and terminal, scored records.

Two implementations with the same semantics: `MemoryStore` (pure Python, for backtests and unit
tests) and `RedisStore` (Lua scripts, one call per batch and hash slot). Feature math on top of
the aggregates lives in `fraudstream.stream.features`, shared by both.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Callable
from typing import Generic, NamedTuple, Protocol, TypeVar

from fraudstream.stream.schema import HOUR_MS, ScoredRows, StoredRecord, UnreadableRecord

DAY_MS = 86_400_000
MINUTE_MS = 60_000


class CustomerOp(NamedTuple):
    """One transaction as the customer side sees it."""

    customer_id: str
    t_ms: int
    cents: int
    terminal_hash: int
    transaction_id: str
    latitude: float | None
    longitude: float | None


class TerminalOp(NamedTuple):
    terminal_id: str
    t_ms: int
    transaction_id: str


class FraudMark(NamedTuple):
    """A label: the terminal's transaction at `t_ms` was a fraud, known from `known_ms` (the label's
    report time) on. It counts in the terminal's features of transactions at or after `known_ms`."""

    terminal_id: str
    transaction_id: str
    t_ms: int
    known_ms: int


class RecordRef(NamedTuple):
    """Which scored record: the transaction's customer, id and event time (epoch ms; a label carries it)."""

    customer_id: str
    transaction_id: str
    t_ms: int


class CustomerResult(NamedTuple):
    """`aggregates` in the order of `CUSTOMER_AGGREGATES`, over the customer's events that arrived
    before this one (and itself) within the windows; `stored` is the record saved at scoring time
    when the transaction is a duplicate that was already scored; `conflict` when the id is already
    used by a transaction with another time, amount or terminal (nothing was changed)."""

    duplicate: bool
    stored: StoredRecord | None
    aggregates: tuple[float, ...]
    conflict: bool = False


def whole_seconds(t_ms: int) -> int:
    """An event time as the feature state keeps it: to the whole second (4-byte epoch seconds in
    Redis, as ISO 8583 card messages carry times). Window bounds, the time since the previous
    transaction and fraud marks all use it, in both stores.

    >>> whole_seconds(1_522_540_831_999)
    1522540831000
    """
    return t_ms - t_ms % 1000


def to_micro(degrees: float) -> int:
    """Coordinates are kept in integer microdegrees (~0.1 m), so that sums are exact in every store.

    >>> to_micro(48.8566), to_micro(-0.1278)
    (48856600, -127800)
    """
    return round(degrees * 1e6)


CUSTOMER_AGGREGATES = (  # coordinates in microdegrees; prev_*: the newest earlier event within 30 days
    "nb_1d", "cents_1d", "nb_7d", "cents_7d", "nb_30d", "cents_30d", "cents_sq_30d", "nb_1h", "cents_1h",
    "nb_10min", "prev_dt_ms", "nb_terminals_24h", "terminal_seen_30d", "home_lat_sum", "home_lon_sum",
    "home_n", "prev_lat", "prev_lon", "prev_has_coords",
)
TERMINAL_AGGREGATES = (  # last_3: the newest three events of the 30-day window (by time, then arrival)
    "nb_1d", "frauds_1d", "nb_7d", "frauds_7d", "nb_30d", "frauds_30d", "nb_1h",
    "nb_last_3", "frauds_last_3", "last_is_fraud", "newest_fraud_age_ms",  # age: -1 without a known fraud
)


R = TypeVar("R", covariant=True)

Ready = Callable[[], bool]
# Work done while a store's server works on a call, given `ready()`: whether the answer has begun to
# come. Work that can wait (the consumer's next batch, decoded ahead) stops then and goes on in the
# next wait; work that cannot is done whatever `ready` says. A store without a server gives
# `always_ready`.
Meanwhile = Callable[[Ready], None]


def always_ready() -> bool:
    return True


class Pending(Protocol[R]):
    """An update sent to the store whose answer is read by `results` (at most once called for
    effect); `ready` tells whether the answer has begun to come (`state.base.Meanwhile`); `discard`
    abandons it unread. `conflicts` (customer updates): per op, whether its id is already used by
    another transaction, known before `results` does the rest of the work."""

    def ready(self) -> bool: ...

    def results(self) -> list[R]: ...

    def discard(self) -> None: ...


class PendingCustomers(Pending[CustomerResult], Protocol):
    def conflicts(self) -> list[bool]: ...


@dataclass(frozen=True)
class Done(Generic[R]):
    """A `Pending` update that was done at once (a store without a server)."""

    value: list[R]

    def ready(self) -> bool:
        return True

    def results(self) -> list[R]:
        return self.value

    def conflicts(self) -> list[bool]:
        return [getattr(r, "conflict", False) for r in self.value]

    def discard(self) -> None:
        return None


@dataclass(frozen=True)
class Windows:
    """Window lengths and retentions in milliseconds."""

    customer_30d: int = 30 * DAY_MS
    customer_7d: int = 7 * DAY_MS
    customer_1d: int = DAY_MS
    customer_1h: int = HOUR_MS
    customer_10min: int = 10 * MINUTE_MS
    terminal_delay: int = 7 * DAY_MS
    terminal_1d: int = DAY_MS
    terminal_7d: int = 7 * DAY_MS
    terminal_30d: int = 30 * DAY_MS
    terminal_1h: int = HOUR_MS
    customer_retention: int = 30 * DAY_MS + HOUR_MS
    terminal_retention: int = 37 * DAY_MS + HOUR_MS
    record_retention: int = 9 * DAY_MS

    @classmethod
    def for_delays(cls, allowed_lateness_ms: int, label_delay_ms: int) -> Windows:
        """Retentions long enough for late events and for labels arriving after `label_delay`.

        >>> Windows.for_delays(HOUR_MS, 7 * DAY_MS).record_retention // DAY_MS
        9
        """
        return cls(
            customer_retention=30 * DAY_MS + allowed_lateness_ms,
            terminal_retention=max(37 * DAY_MS, label_delay_ms + DAY_MS) + allowed_lateness_ms,
            record_retention=label_delay_ms + 2 * DAY_MS,
        )


class StateStore(Protocol):
    """Atomic per-entity state updates; every method takes a whole batch."""

    windows: Windows

    def update_customers(self, ops: list[CustomerOp]) -> list[CustomerResult]:
        """Insert each transaction (unless its id is already there) and return its aggregates as of
        its own event time, in the order given."""
        ...

    def update_terminals(self, ops: list[TerminalOp]) -> list[tuple[float, ...]]:
        ...

    def begin_customers(self, ops: list[CustomerOp]) -> PendingCustomers:
        """`update_customers`, answered by the returned object (a server works on it meanwhile)."""
        ...

    def begin_terminals(self, ops: list[TerminalOp]) -> Pending[tuple[float, ...]]:
        """`update_terminals`, answered by the returned object."""
        ...

    def put_records(self, items: list[tuple[str, str, StoredRecord]]) -> None:
        """(customer_id, transaction_id, record) -> stored until taken or expired."""
        ...

    def put_rows(self, rows: ScoredRows, meanwhile: Meanwhile | None = None) -> None:
        """`put_records` of a batch given by column (the features as a matrix); `meanwhile` runs
        while the server works on it."""
        ...

    def take_records(self, items: list[RecordRef]) -> list[StoredRecord | UnreadableRecord | None]:
        """The record, deleted (each is returned once); None when absent, `UnreadableRecord` when
        its bytes cannot be decoded. A record is found by its customer and transaction id and the
        hour of its event time."""
        ...

    def peek_records(self, items: list[RecordRef], meanwhile: Meanwhile | None = None,
                     ) -> list[tuple[StoredRecord | UnreadableRecord, int | None] | None]:
        """(the record, milliseconds it has left to live or None when the store does not expire by
        wall clock), kept; None when absent. In Redis that is its hour's hash's time to live, which
        later writes to the same hour renew: a lower bound. `meanwhile` runs while the server works."""
        ...

    def drop_records(self, items: list[RecordRef], meanwhile: Meanwhile | None = None) -> None:
        """Delete these records (absent ones are ignored); `meanwhile` runs while the server works."""
        ...

    def mark_frauds(self, items: list[FraudMark]) -> None:
        """Mark terminals' events as frauds known from a time on (idempotent: the first mark counts)."""
        ...
