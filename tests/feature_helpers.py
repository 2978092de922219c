"""Independent reference computations and stream drivers for the feature tests."""

from __future__ import annotations

from collections import deque
from datetime import timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from fraudstream.models.events import Label, Transaction
from fraudstream.stream.features import FeatureEngine


def load_handbook(path: Path, days: int, customer_modulo: int) -> pd.DataFrame:
    """Rows of the first `days` days for customers with id % customer_modulo == 0, in file order."""
    df = pd.read_csv(path, parse_dates=["TX_DATETIME"], nrows=int(days * 10_500))
    df = df[df.TX_DATETIME < df.TX_DATETIME.iloc[0].normalize() + pd.Timedelta(days=days)]
    return df[df.CUSTOMER_ID % customer_modulo == 0].reset_index(drop=True)


def handbook_reference(df: pd.DataFrame) -> pd.DataFrame:
    """The handbook's feature transformation (pandas rolling windows on a time index, closed right,
    current row included), indexed by TRANSACTION_ID. Vectorised with groupby-rolling."""
    df = df.sort_values("TX_DATETIME", kind="stable").reset_index(drop=True)
    out = pd.DataFrame({"TRANSACTION_ID": df.TRANSACTION_ID, "TX_AMOUNT": df.TX_AMOUNT})
    out["TX_DURING_WEEKEND"] = (df.TX_DATETIME.dt.weekday >= 5).astype(float)
    out["TX_DURING_NIGHT"] = (df.TX_DATETIME.dt.hour <= 6).astype(float)

    timed = df.set_index("TX_DATETIME")
    # groupby-rolling returns the rows group by group (groups in order of appearance, rows in order)
    positions = {key: np.argsort(df.groupby(key, sort=False).ngroup().to_numpy(), kind="stable")
                 for key in ("CUSTOMER_ID", "TERMINAL_ID")}

    def rolling(key: str, column: str, window: str, how: str) -> np.ndarray:
        values = getattr(timed.groupby(key, sort=False)[column].rolling(window), how)().to_numpy()
        result = np.empty(len(df))
        result[positions[key]] = values
        return result

    for n in (1, 7, 30):
        nb = rolling("CUSTOMER_ID", "TX_AMOUNT", f"{n}D", "count")
        out[f"CUSTOMER_ID_NB_TX_{n}DAY_WINDOW"] = nb
        out[f"CUSTOMER_ID_AVG_AMOUNT_{n}DAY_WINDOW"] = rolling("CUSTOMER_ID", "TX_AMOUNT", f"{n}D", "sum") / nb
    frauds_delay = rolling("TERMINAL_ID", "TX_FRAUD", "7D", "sum")
    count_delay = rolling("TERMINAL_ID", "TX_FRAUD", "7D", "count")
    for n in (1, 7, 30):
        nb = rolling("TERMINAL_ID", "TX_FRAUD", f"{7 + n}D", "count") - count_delay
        frauds = rolling("TERMINAL_ID", "TX_FRAUD", f"{7 + n}D", "sum") - frauds_delay
        out[f"TERMINAL_ID_NB_TX_{n}DAY_WINDOW"] = nb
        with np.errstate(invalid="ignore", divide="ignore"):
            out[f"TERMINAL_ID_RISK_{n}DAY_WINDOW"] = np.nan_to_num(frauds / nb, nan=0.0)
    return out.set_index("TRANSACTION_ID")


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
