"""Recording throughput, run by hand:

    .venv/bin/python benchmarks/record_throughput.py [--days 30] [--customers 5000] [--terminals 10000]

Times `record` (simulate + format + write, population set-up included) to .csv, .jsonl and .csv.gz
in a temporary folder and prints transactions per second (target >= 200,000 for the plain files).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from fraudstream.producer.recorder import record
from fraudstream.producer.simulator import SimulatorConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--terminals", type=int, default=10000)
    args = parser.parse_args()
    config = SimulatorConfig(customers=args.customers, terminals=args.terminals)
    with tempfile.TemporaryDirectory() as folder:
        for name in ("record.csv", "record.jsonl", "record.csv.gz", "record.csv"):
            out = Path(folder) / name
            summary = record(out, args.days, config)
            print(f"{name:14s} {summary.rows:>9,} rows in {summary.seconds:5.2f} s = "
                  f"{summary.rows / summary.seconds:>9,.0f} tx/s  ({out.stat().st_size / 1e6:.1f} MB, "
                  f"{100 * summary.fraud_rate:.2f}% fraud)")


if __name__ == "__main__":
    main()
