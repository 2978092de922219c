"""The labels a windowed model refits on: each one's number, features and class, oldest first.

`WindowedBoostedTrees` keeps every fraud and a share of genuine labels here, drops those older than
its window before a fit, and checkpoints them as one compressed float32 matrix.

>>> import numpy as np
>>> kept = KeptLabels()
>>> for number, fraud in ((1, False), (2, True), (3, False)):
...     kept.add(number, np.array([float(number)], dtype=np.float32), fraud)
>>> kept.drop_up_to(1); len(kept), kept.frauds
(2, 1)
>>> X, y = kept.matrix(); X.ravel().tolist(), y.tolist()
([2.0, 3.0], [True, False])
>>> KeptLabels().matrix()[0].shape
(0, 0)
>>> again = KeptLabels.unpacked(kept.packed(width=1), width=1)
>>> [(n, row.tolist(), f) for n, row, f in again.rows], again.frauds
([(2, [2.0], True), (3, [3.0], False)], 1)
"""

from __future__ import annotations

import zlib
from collections import deque

import numpy as np

#: A checkpoint's form: label numbers, the zlib-compressed float32 rows, classes.
Packed = tuple[np.ndarray, bytes, np.ndarray]


class KeptLabels:
    """(label number, features, is_fraud) in the order learned, and how many are frauds (a refit
    tried every 100 labels checks that count without a pass over the rows)."""

    def __init__(self) -> None:
        self.rows: deque[tuple[int, np.ndarray, bool]] = deque()
        self.frauds = 0

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, number: int, row: np.ndarray, is_fraud: bool) -> None:
        self.rows.append((number, row, is_fraud))
        self.frauds += is_fraud

    def drop_up_to(self, oldest: int) -> None:
        """Drop the labels numbered `oldest` or lower."""
        rows = self.rows
        while rows and rows[0][0] <= oldest:
            self.frauds -= rows.popleft()[2]

    def matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """The rows as one matrix, and their classes (for a fit)."""
        y = np.fromiter((k[2] for k in self.rows), dtype=bool, count=len(self.rows))
        return (np.stack([k[1] for k in self.rows]) if self.rows else np.empty((0, 0), dtype=np.float32)), y

    def packed(self, width: int) -> Packed:
        n = len(self.rows)
        X = np.stack([k[1] for k in self.rows]) if n else np.empty((0, width), dtype=np.float32)
        return (np.fromiter((k[0] for k in self.rows), dtype=np.int64, count=n),
                zlib.compress(np.ascontiguousarray(X, dtype=np.float32).tobytes(), 1),
                np.fromiter((k[2] for k in self.rows), dtype=bool, count=n))

    @classmethod
    def unpacked(cls, packed: Packed, width: int) -> KeptLabels:
        seen, data, y = packed
        X = np.frombuffer(zlib.decompress(data), dtype=np.float32).reshape(len(seen), width)
        kept = cls()
        kept.rows = deque(zip(seen.tolist(), X.copy(), y.tolist()))
        kept.frauds = int(np.count_nonzero(y))
        return kept
