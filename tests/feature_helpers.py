"""Independent reference computations and stream drivers for the feature tests."""

from __future__ import annotations

from collections import deque
from datetime import timedelta, timezone
from pathlib import Path

import pandas as pd

from fraudstream.models.events import Label, Transaction
from fraudstream.stream.features import FeatureEngine


def load_handbook(path: Path, days: int, customer_modulo: int) -> pd.DataFrame:
    """Rows of the first `days` days for customers with id % customer_modulo == 0, in file order."""
    df = pd.read_csv(path, parse_dates=["TX_DATETIME"], nrows=int(days * 10_500))
    df = df[df.TX_DATETIME < df.TX_DATETIME.iloc[0].normalize() + pd.Timedelta(days=days)]
    return df[df.CUSTOMER_ID % customer_modulo == 0].reset_index(drop=True)


def handbook_reference(df: pd.DataFrame) -> pd.DataFrame:
    """The handbook's feature transformation (pandas rolling windows), indexed by TRANSACTION_ID."""
    df = df.sort_values("TX_DATETIME", kind="stable")
    out = pd.DataFrame(index=df.TRANSACTION_ID)
    out["TX_AMOUNT"] = df.TX_AMOUNT.to_numpy()
    out["TX_DURING_WEEKEND"] = (df.TX_DATETIME.dt.dayofweek >= 5).astype(float).to_numpy()
    out["TX_DURING_NIGHT"] = (df.TX_DATETIME.dt.hour <= 6).astype(float).to_numpy()
    cust = []
    for _, g in df.groupby("CUSTOMER_ID", sort=False):
        s = g.set_index("TX_DATETIME").TX_AMOUNT
        cols = {"TRANSACTION_ID": g.TRANSACTION_ID.to_numpy()}
        for n in (1, 7, 30):
            nb = s.rolling(f"{n}D").count().to_numpy()
            cols[f"CUSTOMER_ID_NB_TX_{n}DAY_WINDOW"] = nb
            cols[f"CUSTOMER_ID_AVG_AMOUNT_{n}DAY_WINDOW"] = s.rolling(f"{n}D").sum().to_numpy() / nb
        cust.append(pd.DataFrame(cols))
    term = []
    for _, g in df.groupby("TERMINAL_ID", sort=False):
        f = g.set_index("TX_DATETIME").TX_FRAUD
        frauds_delay, count_delay = f.rolling("7D").sum().to_numpy(), f.rolling("7D").count().to_numpy()
        cols = {"TRANSACTION_ID": g.TRANSACTION_ID.to_numpy()}
        for n in (1, 7, 30):
            nb = f.rolling(f"{7 + n}D").count().to_numpy() - count_delay
            frauds = f.rolling(f"{7 + n}D").sum().to_numpy() - frauds_delay
            cols[f"TERMINAL_ID_NB_TX_{n}DAY_WINDOW"] = nb
            cols[f"TERMINAL_ID_RISK_{n}DAY_WINDOW"] = pd.Series(frauds / nb).fillna(0).to_numpy()
        term.append(pd.DataFrame(cols))
    out = out.join(pd.concat(cust).set_index("TRANSACTION_ID")).join(pd.concat(term).set_index("TRANSACTION_ID"))
    return out


def to_transactions(df: pd.DataFrame) -> tuple[list[Transaction], dict[str, bool]]:
    txs = [
        Transaction(transaction_id=str(r.TRANSACTION_ID), customer_id=str(r.CUSTOMER_ID),
                    terminal_id=str(r.TERMINAL_ID), amount=float(r.TX_AMOUNT),
                    event_time=r.TX_DATETIME.to_pydatetime().replace(tzinfo=timezone.utc))
        for r in df.itertuples()
    ]
    frauds = dict(zip(df.TRANSACTION_ID.astype(str), df.TX_FRAUD.astype(bool)))
    return txs, frauds


def run_stream(engine: FeatureEngine, txs: list[Transaction], frauds: dict[str, bool],
               delay: timedelta = timedelta(days=7), batch: int = 1) -> dict[str, dict[str, float]]:
    """Features of every transaction, labels arriving `delay` after each transaction (before any
    transaction at or after that instant), `batch` transactions per transform call."""
    pending: deque[Label] = deque()
    out: dict[str, dict[str, float]] = {}
    i = 0
    while i < len(txs):
        chunk = [txs[i]]
        limit = pending[0].reported_at if pending else None
        while len(chunk) < batch and i + len(chunk) < len(txs):
            nxt = txs[i + len(chunk)]
            if limit is not None and nxt.event_time >= limit:
                break
            chunk.append(nxt)
        due = []
        while pending and pending[0].reported_at <= chunk[0].event_time:
            due.append(pending.popleft())
        if due:
            engine.apply_labels(due)
        features = engine.transform(chunk)
        engine.record_scored(chunk, features, [{"m": 0.0}] * len(chunk))
        for tx, x in zip(chunk, features):
            out[tx.transaction_id] = x
            pending.append(Label(transaction_id=tx.transaction_id, customer_id=tx.customer_id,
                                 terminal_id=tx.terminal_id, is_fraud=frauds[tx.transaction_id],
                                 event_time=tx.event_time, reported_at=tx.event_time + delay))
        i += len(chunk)
    return out
