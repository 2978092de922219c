"""Which fraud cards a backtest's Card Precision@100 missed, and the most any model could reach, run by hand:

    fraudstream backtest ../shared/data/fdh_dev.csv.gz --eval-start 2018-07-04 --eval-end 2018-07-31 --scores scores.csv
    .venv/bin/python benchmarks/card_precision_ceiling.py scores.csv --eval-start 2018-07-04 --eval-end 2018-07-31

For the handbook's data only: it reads TX_FRAUD_SCENARIO, for this analysis and never as a feature.
Per evaluation day (the backtest's weeks and known-compromised rule), the fraud cards and whether
they ranked in the day's top 100 (ranks from 1), by fraud scenario (1: amount over 220; 2: a
compromised terminal, every transaction there for 28 days; 3: a compromised card, a third of its
transactions for 14 days at five times the amount). A fraud is undetectable when it is at a
terminal compromised less than the label delay earlier (no label of that terminal can have
arrived; the simulator picks the terminals at random and leaves their amounts alone, so nothing
tells those cards apart) and its amount is not over 220; a card is undetectable on a day when all
its frauds that day are. The estimated ceiling is the CP@100 (mean over the weeks of the daily
figures, as the backtest's) with every other fraud card of a day in its top 100, at most 100, and
the undetectable ones caught as often as now; an estimate, since which cards a day catches changes
which are left out later in the week.
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


def fraud_cards(frame: pd.DataFrame, eval_start: int, eval_end: int, delay_days: int) -> pd.DataFrame:
    """One row per (day, fraud card) of the evaluation: its week, scenario, rank (from 1), whether it
    was in the day's top K and whether a label could have revealed it."""
    days, cards, labels = frame.day.to_numpy(), frame.CUSTOMER_ID.to_numpy(), frame.TX_FRAUD.to_numpy()
    rows = []
    for week_start in range(eval_start, eval_end + 1, 7):
        kept = frame[known_compromised_kept(days, cards, labels, week_start, min(week_start + 6, eval_end),
                                            delay_days)]
        caught: set[str] = set()
        for day, of_day in kept.groupby("day", sort=True):
            per_card = (of_day[~of_day.CUSTOMER_ID.isin(caught)]
                        .groupby("CUSTOMER_ID").agg(score=("score", "max"), fraud=("TX_FRAUD", "max"),
                                                    scenario=("TX_FRAUD_SCENARIO", "max"),
                                                    detectable=("detectable_fraud", "max"))
                        .sort_values("score", ascending=False, kind="mergesort"))  # ties: card id order;
            per_card["rank"] = np.arange(1, len(per_card) + 1)  # the backtest counts cards tied at the K-th place
            # by their expected share (metrics.card_precision_top_k): the two differ only where a tie straddles it
            frauds = per_card[per_card.fraud == 1].assign(week=week_start, day=day, hit=lambda f: f["rank"] <= K)
            caught |= set(frauds.index[frauds.hit])
            rows.append(frauds)
    return pd.concat(rows).reset_index()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("scores", help="a backtest's --scores file")
    parser.add_argument("--data", default=str(DATA), help="the handbook CSV the backtest ran on")
    parser.add_argument("--eval-start", type=date.fromisoformat, default=date(2018, 7, 4))
    parser.add_argument("--eval-end", type=date.fromisoformat, default=date(2018, 7, 31))
    parser.add_argument("--label-delay-days", type=int, default=7)
    args = parser.parse_args()

    frame = pd.read_csv(args.data, parse_dates=["TX_DATETIME"], dtype={"CUSTOMER_ID": str, "TRANSACTION_ID": str})
    scores = pd.read_csv(args.scores, dtype={"transaction_id": str})
    frame = frame.merge(scores, left_on="TRANSACTION_ID", right_on="transaction_id", how="left")
    first = frame.TX_DATETIME.min().normalize()
    frame["day"] = (frame.TX_DATETIME.dt.normalize() - first).dt.days
    start, end = (pd.Timestamp(args.eval_start) - first).days, (pd.Timestamp(args.eval_end) - first).days
    in_window = frame.day.between(start, end)
    if frame.score[in_window].isna().any():
        raise SystemExit(f"{int(frame.score[in_window].isna().sum())} transactions of the window have no score "
                         "in the scores file: not the backtest of this file and window?")
    terminal_frauds = frame[frame.TX_FRAUD_SCENARIO == 2]
    since = terminal_frauds.TX_DATETIME - terminal_frauds.TERMINAL_ID.map(
        terminal_frauds.groupby("TERMINAL_ID").TX_DATETIME.min())
    fresh = (since.dt.total_seconds() / 86400 < args.label_delay_days).reindex(frame.index, fill_value=False)
    frame["detectable_fraud"] = (frame.TX_FRAUD == 1) & ~(fresh & (frame.TX_AMOUNT <= 220))
    found = fraud_cards(frame, start, end, args.label_delay_days)

    found["group"] = np.where(~found.detectable, "2, terminal compromised < label delay earlier",
                              np.where(found.scenario == 2, "2, the others (or an amount over 220)",
                                       found.scenario.astype(int).astype(str)))
    print(f"{found.day.nunique()} days, {len(found)} fraud cards (a card counts once per day it has a fraud)")
    print(f"{'scenario':48} {'cards':>6} {'in top 100':>10} {'median rank':>12}")
    for group, of_group in found.groupby("group"):
        print(f"{group:48} {len(of_group):6d} {int(of_group.hit.sum()):10d} {of_group['rank'].median():12.0f}")
    found["lucky"] = found.hit & ~found.detectable
    per_day = found.groupby(["week", "day"]).agg(hits=("hit", "sum"), lucky=("lucky", "sum"),
                                                 detectable=("detectable", "sum"))
    per_day["ceiling"] = np.minimum(K, per_day.detectable + per_day.lucky)
    # the backtest's figure: per week the mean of its days, then the mean of the weeks (days without
    # a fraud card count as 0, as there)
    n_days = {w: len(range(w, min(w + 6, end) + 1)) for w in range(start, end + 1, 7)}
    weekly = per_day.groupby("week")[["hits", "ceiling"]].sum().reindex(list(n_days), fill_value=0)
    weekly = weekly.div(pd.Series(n_days) * K, axis=0)
    print(f"CP@{K}: {weekly.hits.mean():.4f}; estimated ceiling, every detectable fraud card in the top {K}: "
          f"{weekly.ceiling.mean():.4f}")


if __name__ == "__main__":
    main()
