"""Recording simulated days to a file: ``.jsonl`` or ``.csv``, optionally ``.gz``, in event-time order.

Rows are formatted straight from the simulator's columns (no per-row model objects), so recording
runs at hundreds of thousands of rows per second. ``.gz`` output uses zlib level 1: twice as fast
as level 3 for a file ~5 % larger. The file is written under a temporary name and renamed when
complete, so an interrupted recording leaves no truncated file behind. The output is read back by
`fraudstream.producer.files.read_recorded`; the same seed gives the same bytes (also for ``.gz``:
its header holds no time of writing).

>>> import tempfile, os
>>> out = os.path.join(tempfile.mkdtemp(), "one.csv")
>>> summary = record(out, days=1, config=SimulatorConfig(customers=100, terminals=200, seed=1))
>>> open(out).readline().strip() == ",".join(OUR_COLUMNS)
True
>>> summary.rows > 0, summary.rows == sum(summary.by_scenario.values()), summary.reported == summary.frauds
(True, True, True)
>>> import shutil; shutil.rmtree(os.path.dirname(out))
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fraudstream.errors import ConfigError
from fraudstream.outputs import open_text, written
from fraudstream.producer.recorded import OUR_COLUMNS
from fraudstream.producer.population import CATEGORIES, Population
from fraudstream.producer.simulator import DayBatch, Simulator, SimulatorConfig

log = logging.getLogger(__name__)


@dataclass
class RecordSummary:
    """What a recording wrote."""

    rows: int = 0
    frauds: int = 0  # transactions of a fraud scenario
    reported: int = 0  # frauds labelled as fraud (`--report-share`: some never are)
    by_scenario: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def fraud_rate(self) -> float:
        return self.frauds / self.rows if self.rows else 0.0


def output_format(path: str | Path, kinds: tuple[str, ...] = ("jsonl", "csv")) -> tuple[str, bool]:
    """``(kind, gzipped)`` from the file name, `kind` one of `kinds`; `ConfigError` for another name.

    >>> output_format("x.jsonl.gz"), output_format("x.csv")
    (('jsonl', True), ('csv', False))
    >>> output_format("f.parquet", kinds=("csv",))
    Traceback (most recent call last):
    ...
    fraudstream.errors.ConfigError: f.parquet: unknown output format; use .csv or .csv.gz
    """
    name = Path(path).name.lower()
    gz = name.endswith(".gz")
    base = name[:-3] if gz else name
    for kind in kinds:
        if base.endswith("." + kind):
            return kind, gz
    names = [f".{kind}{suffix}" for suffix in ("", ".gz") for kind in kinds]
    raise ConfigError(f"{path}: unknown output format; use {', '.join(names[:-1])} or {names[-1]}")


def record(path: str | Path, days: int, config: SimulatorConfig,
           on_day: Callable[[int, RecordSummary], None] | None = None) -> RecordSummary:
    """Simulate `days` days with `config` and write them to `path`; `on_day(day, summary)` after each."""
    if days < 1:
        raise ConfigError(f"days must be at least 1, got {days}")
    kind, gz = output_format(path)
    path = Path(path)
    summary = RecordSummary()
    began = time.perf_counter()
    simulator = Simulator(config)
    formatter = _RowFormatter(simulator.population, kind)
    with written(path) as partial, open_text(partial, path, gz) as out:
        if kind == "csv":
            out.write(",".join(OUR_COLUMNS) + "\n")
        for index, batch in enumerate(simulator.days(days)):
            out.write(formatter.format(batch))
            summary.rows += len(batch)
            summary.frauds += int((batch.scenario != 0).sum())
            summary.reported += int(batch.reported.sum())
            summary.by_scenario.update({str(scenario): count for scenario, count in
                                        enumerate(np.bincount(batch.scenario).tolist()) if count})
            if on_day is not None:
                on_day(index + 1, summary)
    summary.seconds = time.perf_counter() - began
    log.info("recorded %d transactions (%.2f%% fraud, %d of %d frauds reported) to %s in %.1f s", summary.rows,
             100 * summary.fraud_rate, summary.reported, summary.frauds, path, summary.seconds)
    return summary


class _RowFormatter:
    """Formats a day's columns as text, with per-customer and per-terminal strings computed once."""

    def __init__(self, population: Population, kind: str) -> None:
        self.kind = kind
        terminals = np.arange(population.terminals)
        lat, lon = population.latitude(terminals).tolist(), population.longitude(terminals).tolist()
        category = [CATEGORIES[c] for c in population.term_category.tolist()]
        self.customer = [str(c) for c in range(population.customers)]
        self.terminal = [str(t) for t in terminals.tolist()]
        if kind == "csv":
            self.place = [f"{c},{a},{o}" for c, a, o in zip(category, lat, lon)]
        else:
            self.place = [f'"merchant_category":"{c}","latitude":{a},"longitude":{o}'
                          for c, a, o in zip(category, lat, lon)]

    def format(self, batch: DayBatch) -> str:
        times = np.datetime_as_string(batch.time.astype("datetime64[s]")).tolist()
        cust, term, place = self.customer, self.terminal, self.place
        ids = range(batch.first_id, batch.first_id + len(batch))
        columns = zip(ids, batch.customer.tolist(), batch.terminal.tolist(), batch.amount.tolist(), times,
                      batch.reported.tolist(), batch.scenario.tolist())
        if self.kind == "csv":
            return "".join([f"{i},{cust[c]},{term[t]},{a:.2f},EUR,{m}Z,{place[t]},{int(f)},{s}\n"
                            for i, c, t, a, m, f, s in columns])
        flag = ("false", "true")
        return "".join([f'{{"transaction_id":"{i}","customer_id":"{cust[c]}","terminal_id":"{term[t]}",'
                        f'"amount":{a:.2f},"currency":"EUR","event_time":"{m}Z",{place[t]},'
                        f'"is_fraud":{flag[f]},"fraud_scenario":"{s}"}}\n' for i, c, t, a, m, f, s in columns])
