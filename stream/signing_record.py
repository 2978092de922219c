"""Which signing key the consumers of a registry use: the fingerprint of it (never the key) that a
learner's publication, the first consumer that started, or the first import recorded under the
registry's ``signing_key`` (`ModelRegistry.publish`), so that `fraudstream models` can tell a
checkpoint signed with another key from a broken one, and a consumer can warn as it starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fraudstream.errors import CheckpointError, ModelError
from fraudstream.models import checkpoint

if TYPE_CHECKING:
    from fraudstream.stream.registry import ModelRegistry


def signing_key_matches(registry: ModelRegistry) -> bool | None:
    """Whether `registry`'s signing key is the one recorded (`checkpoint.key_fingerprint`) by the
    newest learner's publication, or else by the first consumer that started or the first import; in
    a registry from before the record, whether the newest version of some published model verifies
    with it. None: nothing tells. False: the consumers sign with another key."""
    recorded = registry.client.get(registry.key("signing_key"))
    if recorded is not None:
        return recorded.decode() == checkpoint.key_fingerprint(registry.signing_key)
    published = [n for n, v in registry.latest_versions(registry.names()).items() if v]
    for name in published:
        try:
            checkpoint.verify(registry.blob(name), registry.signing_key)
            return True
        except (CheckpointError, ModelError):
            continue
    return False if published else None


def note_signing_key(registry: ModelRegistry) -> bool | None:
    """Record `registry`'s signing key's fingerprint unless one is recorded (a consumer that starts);
    whether the recorded one is this key's (None: none was)."""
    mine, key = checkpoint.key_fingerprint(registry.signing_key), registry.key("signing_key")
    if registry.client.set(key, mine, nx=True):
        return None
    return registry.client.get(key) in (mine.encode(), None)
