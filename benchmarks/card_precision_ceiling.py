"""Which fraud cards a backtest's Card Precision@100 missed, and the most any model could reach, run by hand:

    fraudstream backtest ../shared/data/fdh_dev.csv.gz --eval-start 2018-07-04 --eval-end 2018-07-31 --scores scores.csv
    .venv/bin/python benchmarks/card_precision_ceiling.py scores.csv --eval-start 2018-07-04 --eval-end 2018-07-31

For the handbook's data only: it reads TX_FRAUD_SCENARIO, for this analysis and never as a feature.
Per evaluation day (the backtest's weeks and known-compromised rule), the fraud cards and whether
they ranked in the day's top 100, by fraud scenario (1: amount over 220; 2: a compromised terminal,
every transaction there for 28 days; 3: a compromised card, a third of its transactions for 14 days
at five times the amount). Scenario-2 frauds are split by how long the terminal had been
compromised: before the label delay has passed, no label of that terminal can have arrived, and the
simulator picks the terminals at random and leaves their amounts alone, so nothing tells those cards
apart. The ceiling is the CP@100 with every other fraud card of a day in its top 100 and the
undetectable ones caught as often as now (cards caught on a day are left out for the rest of the
week, as in the metric, so the ceiling is approximate by a card or two).
"""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from fraudstream.models.metrics import known_compromised_kept

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "fdh_dev.csv.gz"
K = 100


def fraud_cards(frame: pd.DataFrame, eval_start: int, eval_end: int, delay_days: int) -> tuple[pd.DataFrame, int]:
    """One row per (day, fraud card) of the evaluation: its scenario, rank and whether it was in the
    day's top K; and the number of days."""
    days, cards, labels = frame.day.to_numpy(), frame.CUSTOMER_ID.to_numpy(), frame.TX_FRAUD.to_numpy()
    rows, n_days = [], 0
    for week_start in range(eval_start, eval_end + 1, 7):
        kept = frame[known_compromised_kept(days, cards, labels, week_start, min(week_start + 6, eval_end),
                                            delay_days)]
        caught: set[int] = set()
        for day, of_day in kept.groupby("day", sort=True):
            n_days += 1
            per_card = (of_day[~of_day.CUSTOMER_ID.isin(caught)]
                        .groupby("CUSTOMER_ID").agg(score=("score", "max"), fraud=("TX_FRAUD", "max"),
                                                    scenario=("TX_FRAUD_SCENARIO", "max"),
                                                    compromised_days=("compromised_days", "max"))
                        .sort_values("score", ascending=False, kind="mergesort"))
            per_card["rank"] = np.arange(len(per_card))
            frauds = per_card[per_card.fraud == 1].assign(day=day, hit=lambda f: f["rank"] < K)
            caught |= set(frauds.index[frauds.hit])
            rows.append(frauds)
    return pd.concat(rows), n_days


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("scores", help="a backtest's --scores file")
    parser.add_argument("--data", default=str(DATA), help="the handbook CSV the backtest ran on")
    parser.add_argument("--eval-start", type=date.fromisoformat, default=date(2018, 7, 4))
    parser.add_argument("--eval-end", type=date.fromisoformat, default=date(2018, 7, 31))
    parser.add_argument("--label-delay-days", type=int, default=7)
    args = parser.parse_args()

    frame = pd.read_csv(args.data, parse_dates=["TX_DATETIME"])
    frame = frame.merge(pd.read_csv(args.scores, dtype={"transaction_id": frame.TRANSACTION_ID.dtype}),
                        left_on="TRANSACTION_ID", right_on="transaction_id", how="left")
    first = frame.TX_DATETIME.min().normalize()
    frame["day"] = (frame.TX_DATETIME.dt.normalize() - first).dt.days
    terminal_frauds = frame[frame.TX_FRAUD_SCENARIO == 2]
    since = terminal_frauds.TX_DATETIME - terminal_frauds.TERMINAL_ID.map(
        terminal_frauds.groupby("TERMINAL_ID").TX_DATETIME.min())
    frame["compromised_days"] = (since.dt.total_seconds() / 86400).reindex(frame.index)
    day_of = lambda d: (pd.Timestamp(d) - first).days  # noqa: E731
    found, n_days = fraud_cards(frame, day_of(args.eval_start), day_of(args.eval_end), args.label_delay_days)

    fresh = (found.scenario == 2) & (found.compromised_days < args.label_delay_days)
    found["group"] = np.where(fresh, "2, terminal compromised < label delay earlier",
                              np.where(found.scenario == 2, "2, terminal compromised >= label delay earlier",
                                       found.scenario.astype(int).astype(str)))
    print(f"{n_days} days, {len(found)} fraud cards (a card counts once per day it has a fraud)")
    print(f"{'scenario':48} {'cards':>6} {'in top 100':>10} {'median rank':>12}")
    for group, of_group in found.groupby("group"):
        print(f"{group:48} {len(of_group):6d} {int(of_group.hit.sum()):10d} {of_group['rank'].median():12.0f}")
    hits = int(found.hit.sum())
    ceiling = hits + int((~found.hit & ~fresh).sum())
    print(f"CP@{K}: {hits / n_days / K:.4f}; with every fraud card but the undetectable ones in the top {K}: "
          f"{ceiling / n_days / K:.4f}; every fraud card: {len(found) / n_days / K:.4f}")


if __name__ == "__main__":
    main()
