"""Pinned model versions: copies of published checkpoints, kept until unpinned.

The registry keeps only the newest `fraudstream.stream.registry.KEEP_VERSIONS` versions of each
model, and a learner catching up publishes about one a second, so a version known to be good is
soon gone from the rotation. A pinned copy stays: `fraudstream models export` and `rollback` read
it. Nothing else does: consumers restore from the rotation, and the label stream is not kept for a
pinned version (a rollback starts learning from the stream's end, as an import does).

Key: ``{<prefix>:models}:pinned:<name>`` (hash version -> signed checkpoint blob, as published).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class PinnedVersions:
    """The pinned copies of one registry; `key` makes its keys (``key("pinned", name)``)."""

    def __init__(self, client: Any, key: Callable[..., str]) -> None:
        self.client = client
        self.key = key

    def pin(self, name: str, version: int, blob: bytes) -> None:
        self.client.hset(self.key("pinned", name), str(version), blob)

    def unpin(self, name: str, version: int) -> bool:
        """False when that version was not pinned."""
        return bool(self.client.hdel(self.key("pinned", name), str(version)))

    def versions(self, name: str) -> list[int]:
        return sorted(int(v) for v in self.client.hkeys(self.key("pinned", name)))

    def blob(self, name: str, version: int) -> bytes | None:
        data = self.client.hget(self.key("pinned", name), str(version))
        return None if data is None else bytes(data)
