"""The six fraud scenarios, applied to one simulated day at a time.

Scenario numbers are tagged on each record (``fraud_scenario``) for analysis only, never as a
feature: 0 genuine, 1 amount above a threshold, 2 compromised terminal, 3 compromised card,
4 card testing, 5 account takeover / impossible travel, 6 night-time spree.
Rates are incidents per day per 1,000 customers (per 1,000 terminals for scenario 2; per
transaction for scenario 1); a rate of 0 switches a scenario off.

>>> FraudRates().scaled(2.0).card_testing
0.4
>>> SCENARIO_NAMES[5]
'account_takeover'
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from fraudstream.producer.population import Population

SCENARIO_NAMES = {0: "genuine", 1: "amount_threshold", 2: "compromised_terminal", 3: "compromised_card",
                  4: "card_testing", 5: "account_takeover", 6: "night_spree"}
DAY = 86_400


@dataclass(frozen=True)
class FraudRates:
    """How often each scenario starts; defaults give an overall fraud rate near 0.7% once the
    compromised terminals and cards of the first two weeks have built up."""

    amount_threshold: float = 0.0015  # share of transactions
    threshold: float = 220.0
    compromised_terminal: float = 0.2  # per 1,000 terminals per day
    terminal_days: int = 14
    compromised_card: float = 0.6  # per 1,000 customers per day
    card_days: int = 14
    card_share: float = 1 / 3
    card_testing: float = 0.2
    account_takeover: float = 0.4
    night_spree: float = 0.2

    def scaled(self, factor: float) -> FraudRates:
        """All scenario rates times `factor` (durations and threshold unchanged)."""
        rates = ("amount_threshold", "compromised_terminal", "compromised_card", "card_testing",
                 "account_takeover", "night_spree")
        return replace(self, **{name: getattr(self, name) * factor for name in rates})

    def without(self, *names: str) -> FraudRates:
        """These scenarios switched off."""
        known = {f.name for f in fields(self)}
        return replace(self, **{name: 0.0 for name in names if name in known})


@dataclass
class Day:
    """Columns of one day's transactions (not yet sorted)."""

    time: np.ndarray  # int64 epoch seconds
    customer: np.ndarray
    terminal: np.ndarray
    amount: np.ndarray
    scenario: np.ndarray  # int8

    def extend(self, time: np.ndarray, customer: np.ndarray, terminal: np.ndarray, amount: np.ndarray,
               scenario: int) -> None:
        self.time = np.concatenate([self.time, time.astype(np.int64)])
        self.customer = np.concatenate([self.customer, customer])
        self.terminal = np.concatenate([self.terminal, terminal])
        self.amount = np.concatenate([self.amount, amount])
        self.scenario = np.concatenate([self.scenario, np.full(time.size, scenario, dtype=np.int8)])


class FraudInjector:
    """Keeps the compromised terminals and cards across days and applies every scenario to a day.

    Each scenario draws from a random generator of its own (children of `seed`), so that switching
    one off or scaling the rates leaves the draws of the others as they were: the frauds that do not
    meet stay the same (ablations compare like with like).
    """

    def __init__(self, population: Population, rates: FraudRates, seed: np.random.SeedSequence) -> None:
        self.pop = population
        self.rates = rates
        self.terminal_window = np.zeros((population.terminals, 2), dtype=np.int64)  # [since, until)
        self.card_window = np.zeros((population.customers, 2), dtype=np.int64)
        steps = (self._amount_threshold, self._compromised_terminals, self._compromised_cards, self._card_testing,
                 self._account_takeover, self._night_spree)  # in this order
        self.steps = [(step, np.random.default_rng(child)) for step, child in zip(steps, seed.spawn(len(steps)))]

    def apply(self, day: Day, day_start: int) -> None:
        """Turn genuine transactions into frauds and add fraudulent ones, in a fixed order (seeded)."""
        for step, rng in self.steps:
            step(day, day_start, rng)
        np.clip(day.time, day_start, day_start + DAY - 1, out=day.time)

    def _incidents(self, rate: float, per: int, rng: np.random.Generator) -> int:
        return int(rng.poisson(rate * per / 1000.0)) if rate > 0 else 0

    def _amount_threshold(self, day: Day, day_start: int, rng: np.random.Generator) -> None:
        r = self.rates
        if r.amount_threshold <= 0:
            return
        hit = (rng.random(day.amount.size) < r.amount_threshold) & (day.scenario == 0)
        day.amount[hit] = np.round(rng.uniform(r.threshold * 1.05, r.threshold * 4, hit.sum()), 2)
        day.scenario[hit] = 1

    def _compromised_terminals(self, day: Day, day_start: int, rng: np.random.Generator) -> None:
        r = self.rates
        new = rng.choice(self.pop.terminals, self._incidents(r.compromised_terminal, self.pop.terminals, rng))
        self.terminal_window[new] = (day_start, day_start + r.terminal_days * DAY)
        window = self.terminal_window[day.terminal]
        hit = (day.time >= window[:, 0]) & (day.time < window[:, 1]) & (day.scenario == 0)
        day.scenario[hit] = 2

    def _compromised_cards(self, day: Day, day_start: int, rng: np.random.Generator) -> None:
        r = self.rates
        new = rng.choice(self.pop.customers, self._incidents(r.compromised_card, self.pop.customers, rng))
        self.card_window[new] = (day_start, day_start + r.card_days * DAY)
        window = self.card_window[day.customer]
        hit = (day.time >= window[:, 0]) & (day.time < window[:, 1]) & (day.scenario == 0)
        hit &= rng.random(hit.size) < r.card_share
        day.amount[hit] = np.round(day.amount[hit] * 5, 2)
        day.scenario[hit] = 3

    def _card_testing(self, day: Day, day_start: int, rng: np.random.Generator) -> None:
        """A burst of tiny amounts within minutes at one terminal, then large ones at risky merchants."""
        for _ in range(self._incidents(self.rates.card_testing, self.pop.customers, rng)):
            victim = rng.integers(self.pop.customers)
            t0 = day_start + rng.integers(0, DAY - 3 * 3600)
            tiny = int(rng.integers(3, 9))
            times = t0 + np.sort(rng.integers(0, 300, tiny))
            terminal = np.full(tiny, rng.choice(self.pop.high_risk_terminals))
            day.extend(times, np.full(tiny, victim), terminal, np.round(rng.uniform(0.5, 2.0, tiny), 2), 4)
            big = int(rng.integers(1, 4))
            times = t0 + 300 + np.sort(rng.integers(60, 1800, big))
            day.extend(times, np.full(big, victim), rng.choice(self.pop.high_risk_terminals, big),
                       np.round(rng.uniform(150.0, 900.0, big), 2), 4)

    def _account_takeover(self, day: Day, day_start: int, rng: np.random.Generator) -> None:
        """Soon after a genuine transaction near home, spending far away (impossible travel)."""
        count = self._incidents(self.rates.account_takeover, self.pop.customers, rng)
        genuine = np.flatnonzero(day.scenario == 0)
        if count == 0 or genuine.size == 0:
            return
        for anchor in rng.choice(genuine, count):
            victim = day.customer[anchor]
            n = int(rng.integers(1, 5))
            candidates = rng.integers(self.pop.terminals, size=64)
            far = candidates[self.pop.distance_from_home(np.full(64, victim), candidates) > 40]
            terminals = rng.choice(far if far.size else candidates, n)
            times = day.time[anchor] + np.sort(rng.integers(5 * 60, 90 * 60, n))
            amounts = np.round(self.pop.mean_amount[victim] * rng.uniform(2.0, 6.0, n), 2)
            day.extend(times, np.full(n, victim), terminals, amounts, 5)

    def _night_spree(self, day: Day, day_start: int, rng: np.random.Generator) -> None:
        """Several purchases between 1 and 5 a.m. in high-risk categories."""
        for _ in range(self._incidents(self.rates.night_spree, self.pop.customers, rng)):
            victim = rng.integers(self.pop.customers)
            n = int(rng.integers(3, 9))
            times = day_start + rng.integers(3600, 4 * 3600) + np.sort(rng.integers(0, 3600, n))
            amounts = np.round(self.pop.mean_amount[victim] * rng.uniform(1.5, 5.0, n), 2)
            day.extend(times, np.full(n, victim), rng.choice(self.pop.high_risk_terminals, n), amounts, 6)
