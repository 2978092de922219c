"""Seeded transaction simulator: one day at a time, columnar (numpy), in event-time order.

Each customer's transactions per day are Poisson with the customer's daily rate, at hours drawn
around the customer's habit, at terminals near home (sometimes anywhere: travel), with amounts from
the customer's spending profile for the terminal's merchant category. The fraud scenarios of
`fraudstream.producer.scenarios` are then applied. The same seed and parameters give the same
stream. The population, the genuine transactions, each fraud scenario and the reports draw from
random generators of their own (children of the seed), so that the fraud options (rates, scenarios
switched off, the report share) leave the genuine transactions as they are, and the report share
changes the labels only. Days run from midnight UTC (the daily rhythm and the night-time frauds
are in UTC hours).

>>> sim = Simulator(SimulatorConfig(customers=200, terminals=400, seed=7))
>>> day = next(sim.days())
>>> bool((np.diff(day.time) >= 0).all()), day.first_id, len(day) > 100
(True, 0, True)
>>> again = next(Simulator(SimulatorConfig(customers=200, terminals=400, seed=7)).days())
>>> bool((day.amount == again.amount).all())
True
>>> half = next(Simulator(SimulatorConfig(customers=200, terminals=400, seed=7, report_share=0.5)).days())
>>> bool((half.amount == day.amount).all() and (half.scenario == day.scenario).all())  # the labels only differ
True
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

import numpy as np

from fraudstream.errors import ConfigError
from fraudstream.models.events import Transaction
from fraudstream.producer.fields import build_model
from fraudstream.producer.recorded import Recorded
from fraudstream.producer.population import CATEGORIES, CATEGORY_FACTOR, GRID, Population, make_population
from fraudstream.producer.scenarios import DAY, SCENARIO_NAMES, Day, FraudInjector, FraudRates

log = logging.getLogger(__name__)
UTC = timezone.utc
MAX_CANDIDATE_PAIRS = 60_000_000  # 200,000 customers with 10,000 terminals: 45 million, 2.4 GB at the peak
_TX_FIELDS = ("transaction_id", "customer_id", "terminal_id", "amount", "event_time", "merchant_category",
              "latitude", "longitude")


def starts_a_day(moment: datetime) -> bool:
    """Midnight UTC, where the simulated days begin.

    >>> starts_a_day(datetime(2024, 3, 10, tzinfo=UTC)), starts_a_day(datetime.fromisoformat("2024-03-10T02:00:00+02:00"))
    (True, True)
    >>> starts_a_day(datetime(2024, 3, 10, 12, tzinfo=UTC))
    False
    """
    at = moment.astimezone(UTC)
    return (at.hour, at.minute, at.second, at.microsecond) == (0, 0, 0, 0)


@dataclass(frozen=True)
class SimulatorConfig:
    """Parameters of a simulation; with the seed they determine the stream completely."""

    customers: int = 5000
    terminals: int = 10000
    seed: int = 42
    start: datetime = datetime(2024, 1, 1, tzinfo=UTC)
    radius: float = 5.0  # grid units (~10 km) around home where a customer shops
    travel_share: float = 0.02  # genuine transactions at a terminal anywhere
    rates: FraudRates = field(default_factory=FraudRates)
    report_share: float = 1.0  # share of frauds that are ever reported (labelled fraud)

    def __post_init__(self) -> None:
        if self.customers < 1 or self.terminals < 1:
            raise ConfigError("the simulation needs at least one customer and one terminal")
        pairs = self.customers * self.terminals * min(1.0, 9 * self.radius ** 2 / GRID ** 2)
        if pairs > MAX_CANDIDATE_PAIRS:  # each customer's terminals nearby: ~54 bytes a candidate pair at the peak
            raise ConfigError(f"{self.customers:,} customers and {self.terminals:,} terminals: finding each customer's "
                              f"terminals nearby would take ~{pairs * 54 / 2**30:.0f} GiB of memory; choose fewer (the "
                              f"product of the two up to ~{MAX_CANDIDATE_PAIRS / (pairs / (self.customers * self.terminals)):,.0f})")
        if not 0.0 <= self.report_share <= 1.0 or not 0.0 <= self.travel_share <= 1.0:
            raise ConfigError("report_share and travel_share must be between 0 and 1")
        if self.start.tzinfo is None:
            raise ConfigError("the simulation start must be timezone-aware")
        if not starts_a_day(self.start):
            raise ConfigError(f"the simulation starts at midnight UTC (its days, their rhythm and the night-time "
                              f"frauds run in UTC hours), not at {self.start.isoformat()}")

    @classmethod
    def live_demo(cls, seed: int = 42) -> SimulatorConfig:
        """A small world with frequent, mostly amount-driven frauds (~2%), so a short demo shows alerts."""
        rates = replace(FraudRates().scaled(4.0), amount_threshold=0.008)
        return cls(customers=1000, terminals=2000, seed=seed, rates=rates)


@dataclass
class DayBatch:
    """One simulated day, sorted by event time; transaction ids are ``first_id + i``."""

    first_id: int
    time: np.ndarray  # int64 epoch seconds
    customer: np.ndarray
    terminal: np.ndarray
    amount: np.ndarray
    scenario: np.ndarray  # int8, 0 genuine
    reported: np.ndarray  # bool: the label says fraud
    population: Population

    def __len__(self) -> int:
        return int(self.time.size)

    def records(self) -> Iterator[Recorded]:
        """The day as `Recorded` rows (transaction with category and location, label, scenario)."""
        pop = self.population
        ids = range(self.first_id, self.first_id + len(self))
        lat, lon = pop.latitude(self.terminal).tolist(), pop.longitude(self.terminal).tolist()
        category = [CATEGORIES[c] for c in pop.term_category[self.terminal].tolist()]
        times = [datetime.fromtimestamp(t, UTC) for t in self.time.tolist()]
        fields_set = set(_TX_FIELDS)
        for tid, cid, term, amount, moment, cat, la, lo, scen, rep in zip(
                ids, self.customer.tolist(), self.terminal.tolist(), self.amount.tolist(), times, category, lat, lon,
                self.scenario.tolist(), self.reported.tolist()):
            tx = build_model(Transaction, {
                "transaction_id": str(tid), "customer_id": str(cid), "terminal_id": str(term), "amount": round(amount, 2),
                "currency": "EUR", "event_time": moment, "merchant_category": cat, "latitude": la, "longitude": lo,
            }, fields_set.copy())
            yield Recorded(tx, rep, str(scen))


class Simulator:
    """Generates days of transactions from a `SimulatorConfig`."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        population, genuine, fraud, report = np.random.SeedSequence(config.seed).spawn(4)
        self.population = make_population(config.customers, config.terminals, np.random.default_rng(population),
                                          config.radius)
        self.rng = np.random.default_rng(genuine)  # the genuine transactions
        self.fraud = FraudInjector(self.population, config.rates, fraud)
        # Reports are decided per victim and scenario: a cardholder who notices a kind of fraud
        # reports all of it (not one transaction of an incident in two)
        self.reports = np.random.default_rng(report).random((config.customers, len(SCENARIO_NAMES))) < config.report_share

    def days(self, count: int | None = None) -> Iterator[DayBatch]:
        """`count` days (None: without end) from the configured start."""
        start = int(self.config.start.timestamp())
        next_id = 0
        index = 0
        while count is None or index < count:
            batch = self._day(start + index * DAY, next_id)
            next_id += len(batch)
            index += 1
            yield batch

    def records(self, days: int | None = None) -> Iterator[Recorded]:
        """All transactions of `days` days as `Recorded` rows, in event-time order."""
        for batch in self.days(days):
            yield from batch.records()

    def _day(self, day_start: int, first_id: int) -> DayBatch:
        pop, rng = self.population, self.rng
        counts = rng.poisson(pop.daily_rate)
        customer = np.repeat(np.arange(pop.customers), counts)
        n = customer.size
        hours = np.mod(rng.normal(pop.hour_mean[customer], pop.hour_spread[customer]), 24.0)
        time = day_start + (hours * 3600).astype(np.int64)
        start, stop = pop.near_offsets[customer], pop.near_offsets[customer + 1]
        terminal = pop.near_terminals[start + (rng.random(n) * (stop - start)).astype(np.int64)]
        travel = rng.random(n) < self.config.travel_share
        terminal[travel] = rng.integers(pop.terminals, size=int(travel.sum()))
        category = pop.term_category[terminal]
        mean = pop.mean_amount[customer] * CATEGORY_FACTOR[category] * pop.category_taste[customer, category]
        amount = rng.normal(mean, mean * pop.spread[customer])
        low = amount < 0.5
        amount[low] = rng.uniform(0.5, np.maximum(mean[low], 1.0))
        day = Day(time, customer, terminal, np.round(amount, 2), np.zeros(n, dtype=np.int8))
        self.fraud.apply(day, day_start)
        order = np.argsort(day.time, kind="stable")
        scenario = day.scenario[order]
        reported = (scenario > 0) & self.reports[day.customer[order], scenario]
        return DayBatch(first_id, day.time[order], day.customer[order], day.terminal[order], day.amount[order],
                        scenario, reported, pop)
