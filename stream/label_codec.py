"""The features of a label-stream entry: the values alone, and the id of their names' list.

A learner reads back every label a scoring consumer appends, so the entry is packed once and
unpacked once per label. Packed as a msgpack map, the 35 features' names took 1,242 bytes of the
entry's ~1,250 and most of its packing time; as ``[names id, [values...]]`` an entry takes ~320
bytes (packing 2.4 -> 1.8 us, unpacking 4.9 -> 2.9 us). The registry stores each list of names
under ``names:<id>`` (the id: 64 bits of BLAKE2b of the list) with every batch of entries that
uses it, so an entry stays readable by any process and version; maps written before are still read.

>>> stored = {}
>>> codec = FeatureCodec(load=stored.get)
>>> names_id, blob = codec.pack({"TX_AMOUNT": 12.5, "TX_DURING_NIGHT": 1.0})
>>> stored[names_id] = codec.names(names_id)  # what the registry writes with the entry
>>> FeatureCodec(load=stored.get).unpack(blob)  # another process: the names come from the store
{'TX_AMOUNT': 12.5, 'TX_DURING_NIGHT': 1.0}
>>> codec.unpack(msgpack.packb({"TX_AMOUNT": 3.0}))  # an entry written as a map
{'TX_AMOUNT': 3.0}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from hashlib import blake2b

import msgpack

from fraudstream.errors import ModelError


class FeatureCodec:
    """Packs and unpacks label-stream features; `load(names id)` gives a stored names' list (msgpack)."""

    def __init__(self, load: Callable[[int], bytes | None]) -> None:
        self.load = load
        self._ids: dict[tuple[str, ...], int] = {}
        self._packed: dict[int, bytes] = {}
        self._names: dict[int, tuple[str, ...]] = {}

    def pack(self, features: Mapping[str, float]) -> tuple[int, bytes]:
        """The id of the features' names and the entry."""
        names = tuple(features)
        names_id = self._ids.get(names)
        if names_id is None:
            packed = msgpack.packb(list(names))
            names_id = int.from_bytes(blake2b(packed, digest_size=8).digest(), "big")
            self._ids[names], self._packed[names_id], self._names[names_id] = names_id, packed, names
        return names_id, msgpack.packb([names_id, list(features.values())])

    def names(self, names_id: int) -> bytes:
        """The names' list of an id this codec packed, as it is stored."""
        return self._packed[names_id]

    def unpack(self, blob: bytes) -> dict[str, float]:
        entry = msgpack.unpackb(blob)
        if isinstance(entry, dict):
            return entry
        names_id, values = entry
        names = self._names.get(names_id)
        if names is None:
            packed = self.load(names_id)
            if packed is None:
                raise ModelError(f"a label stream entry refers to feature names {names_id:x} that are not in Redis "
                                 "(deleted or evicted: run Redis with maxmemory-policy noeviction)")
            names = self._names[names_id] = tuple(msgpack.unpackb(packed))
        return dict(zip(names, values))
