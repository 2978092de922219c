"""Garbage-collector settings for long hot loops (the consumer, the backtest).

Both allocate millions of small, short-lived, acyclic objects (records, dicts, events) while a
large heap stays alive (models, clients, buffers): with CPython's default thresholds the collector
keeps traversing that heap. Reference counting frees the short-lived objects anyway; the cyclic
collector only has to run now and then.

>>> import gc
>>> before = gc.get_threshold()
>>> with fewer_collections():
...     during = gc.get_threshold()
>>> during[0] > before[0], gc.get_threshold() == before
(True, True)
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# generation 0 collected after 50,000 net allocations instead of 700
THRESHOLDS = (50_000, 50, 1000)


_lock = threading.Lock()
_depth = 0  # blocks running now (consumers in threads may overlap); the first sets, the last restores
_before: tuple[int, int, int] = gc.get_threshold()


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Collect cyclic garbage less often while the block runs; objects alive on entry are frozen
    (never traversed again; freed by reference counting as usual).

    Measured: backtest feature worker on 600k handbook rows 145 -> 113 us per transaction; consumer
    on handbook rows 1-100,000 with their labels 90 -> 61 us of CPU per record (GC 3.7 -> 1.6 s).
    """
    global _depth, _before
    with _lock:
        if _depth == 0:
            _before = gc.get_threshold()
            gc.freeze()
            gc.set_threshold(*THRESHOLDS)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                gc.set_threshold(*_before)
                gc.unfreeze()
