"""Moving "applied" markers kept one key per label (before 2026-12-05) into the registry's legacy
marker hash, which the label-append script also checks (see `fraudstream.stream.registry`).

A marker says that a transaction's label is in the label stream already, so that a label delivered
again is not learned twice. The old layout cannot be moved into the per-hour marker hashes (its key
does not say the transaction's hour), so its markers go into one hash, ``markers:legacy``, which
lives as long as the longest of them would have and is then gone.
"""

from __future__ import annotations

from fraudstream.stream.label_log import APPLIED_TTL_MS
from fraudstream.stream.registry import ModelRegistry
from fraudstream.stream.state.redis_records import glob_escaped, scanned_in_chunks


def migrate_legacy_markers(registry: ModelRegistry, chunk: int = 1000) -> int:
    """Move every ``applied:<customer>:<transaction>`` key into ``markers:legacy`` (field
    ``<customer>:<transaction>``, as the label-append script looks it up; the same value) and return
    how many were moved. Run it with the
    consumers stopped; a second run finds nothing to move."""
    client = registry.client
    head = registry.key("applied", "")
    legacy = registry.key("markers", "legacy")

    def move(keys: list[bytes]) -> int:
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.get(key)
            pipe.pttl(key)
        replies = pipe.execute()
        fields, longest = {}, 0
        for key, value, ttl in zip(keys, replies[::2], replies[1::2]):
            if value is None:  # expired meanwhile
                continue
            fields[key.decode()[len(head):]] = value
            longest = max(longest, ttl if ttl > 0 else APPLIED_TTL_MS)
        pipe = client.pipeline(transaction=False)
        if fields:
            pipe.hset(legacy, mapping=fields)
            pipe.pexpire(legacy, longest, gt=True)  # never shortened (GT: only a longer one than it has)
            pipe.pexpire(legacy, longest, nx=True)  # and a hash without one (GT leaves it alone) gets it
        pipe.delete(*keys)
        pipe.execute()
        return len(fields)

    return sum(move(keys) for keys in scanned_in_chunks(client, f"{glob_escaped(head)}*", chunk))
