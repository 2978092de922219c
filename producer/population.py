"""The simulated world: customers with habits and terminals with a place and a merchant category.

Locations are points on a 100 x 100 grid (one unit is about 10 km), mapped to latitude/longitude
in a European-sized box for the wire. Everything is drawn from one seeded numpy generator.

>>> import numpy as np
>>> pop = make_population(50, 200, np.random.default_rng(1))
>>> pop.customers, pop.terminals, len(pop.near_offsets) == 51
(50, 200, True)
>>> bool((np.diff(pop.near_offsets) >= 1).all())  # every customer has a terminal near home
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Merchant categories, their share of terminals and their amount factor (times the customer's mean).
CATEGORIES = ("grocery", "restaurant", "fuel", "pharmacy", "retail", "travel", "electronics", "jewelry",
              "online_gaming", "gift_cards")
CATEGORY_SHARE = np.array([0.22, 0.2, 0.1, 0.08, 0.2, 0.04, 0.06, 0.03, 0.04, 0.03])
CATEGORY_FACTOR = np.array([0.7, 0.8, 1.0, 0.5, 1.2, 2.2, 2.5, 3.0, 0.6, 1.0])
#: Categories where night-time sprees and card-testing cash-outs happen.
HIGH_RISK = ("electronics", "jewelry", "online_gaming", "gift_cards")
GRID = 100.0
_LAT0, _LAT_STEP = 40.0, 0.09  # 100 units ~ 9 degrees of latitude
_LON0, _LON_STEP = -5.0, 0.13


@dataclass(frozen=True)
class Population:
    """Customer and terminal attributes as arrays indexed by customer / terminal number."""

    customers: int
    terminals: int
    home_x: np.ndarray
    home_y: np.ndarray
    mean_amount: np.ndarray  # customer's base mean amount
    spread: np.ndarray  # standard deviation as a share of the mean
    category_taste: np.ndarray  # customers x categories multiplier of the category factor
    daily_rate: np.ndarray  # expected transactions per day
    hour_mean: np.ndarray  # preferred hour of the day
    hour_spread: np.ndarray  # hours
    term_x: np.ndarray
    term_y: np.ndarray
    term_category: np.ndarray  # index into CATEGORIES
    near_offsets: np.ndarray  # CSR: terminals near customer c are near_terminals[off[c]:off[c+1]]
    near_terminals: np.ndarray
    high_risk_terminals: np.ndarray

    def latitude(self, terminal: np.ndarray) -> np.ndarray:
        return np.round(_LAT0 + self.term_y[terminal] * _LAT_STEP, 4)

    def longitude(self, terminal: np.ndarray) -> np.ndarray:
        return np.round(_LON0 + self.term_x[terminal] * _LON_STEP, 4)

    def distance_from_home(self, customer: np.ndarray, terminal: np.ndarray) -> np.ndarray:
        return np.hypot(self.home_x[customer] - self.term_x[terminal], self.home_y[customer] - self.term_y[terminal])


def make_population(customers: int, terminals: int, rng: np.random.Generator, radius: float = 5.0) -> Population:
    """Draw customers and terminals; each customer's usual terminals are those within `radius`."""
    home_x, home_y = rng.uniform(0, GRID, customers), rng.uniform(0, GRID, customers)
    mean_amount = rng.uniform(8.0, 70.0, customers)
    spread = rng.uniform(0.25, 0.6, customers)
    taste = rng.uniform(0.7, 1.3, (customers, len(CATEGORIES)))
    daily_rate = rng.uniform(0.3, 4.0, customers)
    hour_mean = np.clip(rng.normal(14.0, 2.5, customers), 8.0, 20.0)
    hour_spread = rng.uniform(1.5, 4.5, customers)
    term_x, term_y = rng.uniform(0, GRID, terminals), rng.uniform(0, GRID, terminals)
    term_category = rng.choice(len(CATEGORIES), size=terminals, p=CATEGORY_SHARE / CATEGORY_SHARE.sum())
    offsets, near = _near_terminals(home_x, home_y, term_x, term_y, radius)
    risky = np.flatnonzero(np.isin(term_category, [CATEGORIES.index(c) for c in HIGH_RISK]))
    if risky.size == 0:
        risky = np.arange(terminals)
    return Population(customers, terminals, home_x, home_y, mean_amount, spread, taste, daily_rate, hour_mean,
                      hour_spread, term_x, term_y, term_category, offsets, near, risky)


def _near_terminals(hx: np.ndarray, hy: np.ndarray, tx: np.ndarray, ty: np.ndarray,
                    radius: float) -> tuple[np.ndarray, np.ndarray]:
    """CSR lists (sorted) of terminals within `radius` of each home (the nearest one when none is).

    Terminals are bucketed in square cells of side `radius`, so a home's candidates are those of the
    3 x 3 cells around its own; the test is ``dx * dx + dy * dy <= radius * radius``, as in
    scipy's cKDTree (which gave the same lists, and cost a 0.3-0.6 s import per recording).
    """
    cell = radius if radius > 0 else GRID
    home_cell = _cells(hx, hy, cell)
    term_cell = _cells(tx, ty, cell)
    order = np.argsort(term_cell[:, 0] * _SPAN + term_cell[:, 1], kind="stable")
    sorted_keys = (term_cell[:, 0] * _SPAN + term_cell[:, 1])[order]
    around = np.array([(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)])
    keys = ((home_cell[:, None, 0] + around[None, :, 0]) * _SPAN + home_cell[:, None, 1] + around[None, :, 1]).ravel()
    first = np.searchsorted(sorted_keys, keys, side="left")
    counts = np.searchsorted(sorted_keys, keys, side="right") - first
    customer = np.repeat(np.repeat(np.arange(hx.size), len(around)), counts)
    starts = np.repeat(first - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    terminal = order[starts + np.arange(customer.size)]
    dx, dy = hx[customer] - tx[terminal], hy[customer] - ty[terminal]
    near = dx * dx + dy * dy <= radius * radius
    customer, terminal = customer[near], terminal[near]
    lonely = np.flatnonzero(np.bincount(customer, minlength=hx.size) == 0)
    if lonely.size:  # the nearest terminal instead
        nearest = [int(np.argmin((tx - hx[c]) ** 2 + (ty - hy[c]) ** 2)) for c in lonely.tolist()]
        customer = np.concatenate([customer, lonely])
        terminal = np.concatenate([terminal, np.array(nearest, dtype=terminal.dtype)])
    ranked = np.lexsort((terminal, customer))
    customer, terminal = customer[ranked], terminal[ranked]
    offsets = np.concatenate([[0], np.cumsum(np.bincount(customer, minlength=hx.size))])
    return offsets.astype(np.int64), terminal.astype(np.int64)


_SPAN = 1 << 20  # cell keys: x * _SPAN + y (cells are shifted to start at 1, so neighbours are >= 0)


def _cells(x: np.ndarray, y: np.ndarray, cell: float) -> np.ndarray:
    """(n, 2) integer cell coordinates, from 1 (0 is the neighbour column/row of the first cell)."""
    return np.column_stack([np.floor(x / cell), np.floor(y / cell)]).astype(np.int64) + 1
