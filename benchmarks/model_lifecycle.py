"""Model lifecycle costs on an embedded Valkey: checkpoint size, publish and restore time per zoo
model, label-stream throughput (append + learner catch-up), and shadow-scoring cost per challenger.

    .venv/bin/python benchmarks/model_lifecycle.py [--labels 5000]

Prints figures; run by hand (numbers depend on the machine and its load).
"""

from __future__ import annotations

import argparse
import random
import time
import uuid

from pydantic import SecretStr

from fraudstream.config import Settings
from fraudstream.models import zoo
from fraudstream.services import valkey_process
from fraudstream.stream.registry import registry_for
from fraudstream.stream.scoring import Scorer

FEATURES = ("TX_AMOUNT", "TX_DURING_WEEKEND", "TX_DURING_NIGHT", "CUSTOMER_ID_NB_TX_1DAY_WINDOW",
            "CUSTOMER_ID_AVG_AMOUNT_1DAY_WINDOW", "TERMINAL_ID_RISK_7DAY_WINDOW")


def labels(n: int, seed: int = 0) -> list[tuple[dict[str, float], bool]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        fraud = rng.random() < 0.05
        x = {f: rng.random() for f in FEATURES}
        x["TX_AMOUNT"] = rng.uniform(300, 1000) if fraud else rng.uniform(1, 150)
        out.append((x, fraud))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--labels", type=int, default=5000)
    args = parser.parse_args()
    server = valkey_process()
    server.start()
    try:
        run(args.labels, Settings(redis_url=f"redis://127.0.0.1:{server.port}/0", kafka_bootstrap="127.0.0.1:1",
                                  model_signing_key=SecretStr("benchmark-key")))
    finally:
        server.stop()


def run(n_labels: int, base: Settings) -> None:
    items = labels(n_labels)
    print(f"{'model':<13} {'blob KiB':>9} {'publish ms':>11} {'restore ms':>11} {'learn+stream labels/s':>22}")
    for name in zoo.MODEL_NAMES:
        settings = base.model_copy(update={"model": name, "redis_key_prefix": f"bench-{uuid.uuid4().hex[:6]}",
                                           "checkpoint_every_labels": 10**9, "checkpoint_every_seconds": 1e9})
        scorer = Scorer.from_settings(settings)
        scorer.maintain()  # v1
        started = time.perf_counter()
        for x, y in items:
            scorer.learn(x, y, {name: 0.0})
        scorer.flush_labels()
        scorer.score_all([])  # the learner catches up from the stream
        rate = len(items) / (time.perf_counter() - started)
        lifecycle = scorer.lifecycle
        assert lifecycle is not None
        wait_for_fit = getattr(scorer.models[name].model, "wait_for_fit", None)
        if wait_for_fit is not None:
            wait_for_fit()  # gbt_window fits in the background; the live learner publishes between fits
        started = time.perf_counter()
        lifecycle.publish_due(scorer, force=True)
        publish_ms = (time.perf_counter() - started) * 1000
        registry = registry_for(settings)
        blob_kib = len(registry.blob(name)) / 1024
        started = time.perf_counter()
        registry.load(name)
        restore_ms = (time.perf_counter() - started) * 1000
        print(f"{name:<13} {blob_kib:>9.1f} {publish_ms:>11.1f} {restore_ms:>11.1f} {rate:>22,.0f}")
        scorer.close()

    probes = [x for x, _ in items[:2000]]
    for challengers in ((), ("logreg_under",), ("logreg_under", "htree")):
        scorer = Scorer.from_name("logreg", 42, 0.5, challengers=challengers)
        for x, y in items:
            scorer.learn(x, y)
        started = time.perf_counter()
        scorer.score_all(probes)
        per_tx_us = (time.perf_counter() - started) / len(probes) * 1e6
        print(f"score_all with logreg + {list(challengers)}: {per_tx_us:.0f} µs per transaction")


if __name__ == "__main__":
    main()
