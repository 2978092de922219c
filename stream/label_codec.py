"""The features of a label-stream entry: the values alone, and the id of their names' list.

A learner reads back every label a scoring consumer appends, so the entry is packed once and
unpacked once per label. As a msgpack map of the 35 features an entry took 1,242 bytes, 927 of
them the names; as ``[names id, [values...]]`` it takes 328 (packing 2.4 -> 1.8 us, unpacking
4.9 -> 2.9 us). The registry stores each list of names under ``feature_names:<id>`` (the id: 64
bits of BLAKE2b of the list) with every batch of entries that uses it, so another process of this
version or a later one reads the entries; maps written by an earlier version are still read (an
earlier version cannot read these: upgrade every consumer of a registry together, see docs/upgrading.md).

An entry that cannot be read (its names are gone from Redis, or values and names differ in
number) unpacks to None: the learner skips it, with an error logged once per names' list, rather
than stopping on it again after every restart. A read of many entries (`reader`) asks Redis for a
missing list once, not once per entry.

>>> stored = {}
>>> codec = FeatureCodec(load=stored.get)
>>> names_id, blob = codec.pack({"TX_AMOUNT": 12.5, "TX_DURING_NIGHT": 1.0})
>>> stored[names_id] = codec.names(names_id)  # what the registry writes with the entry
>>> FeatureCodec(load=stored.get).unpack(blob)  # another process: the names come from the store
{'TX_AMOUNT': 12.5, 'TX_DURING_NIGHT': 1.0}
>>> codec.unpack(msgpack.packb({"TX_AMOUNT": 3.0}))  # an entry written as a map
{'TX_AMOUNT': 3.0}
>>> FeatureCodec(load={}.get).unpack(blob) is None  # names not stored: logged, skipped
True
>>> asked = []
>>> read = FeatureCodec(load=lambda i: asked.append(i)).reader()  # one read of a backlog
>>> [read(blob), read(blob)], len(asked)  # the missing names are asked for once per read
([None, None], 1)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from hashlib import blake2b

import msgpack

log = logging.getLogger(__name__)


class FeatureCodec:
    """Packs and unpacks label-stream features; `load(names id)` gives a stored names' list (msgpack)."""

    def __init__(self, load: Callable[[int], bytes | None]) -> None:
        self.load = load
        self._ids: dict[tuple[str, ...], int] = {}
        self._packed: dict[int, bytes] = {}
        self._names: dict[int, tuple[str, ...]] = {}
        self._reported: set[int] = set()

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

    def unpack(self, blob: bytes) -> dict[str, float] | None:
        """The features, or None for an entry that cannot be read (see the module docstring)."""
        return self._unpack(blob, set())

    def reader(self) -> Callable[[bytes], dict[str, float] | None]:
        """`unpack` for one read of many entries: a names id found missing in Redis is not asked
        for again within it (a later read asks again: the names may have been written since)."""
        missing: set[int] = set()
        return lambda blob: self._unpack(blob, missing)

    def _unpack(self, blob: bytes, missing: set[int]) -> dict[str, float] | None:
        entry = msgpack.unpackb(blob)
        if isinstance(entry, dict):
            return entry
        names_id, values = entry
        names = self._names.get(names_id)
        if names is None and names_id not in missing:
            packed = self.load(names_id)
            if packed is None:
                missing.add(names_id)
            else:
                names = self._names[names_id] = tuple(msgpack.unpackb(packed))
        if names is None or len(names) != len(values):
            if names_id not in self._reported:
                self._reported.add(names_id)
                log.error("label stream entries refer to feature names %x that are %s: they are skipped, not learned "
                          "(were keys deleted or evicted? run Redis with maxmemory-policy noeviction)", names_id,
                          "not in Redis" if names is None else f"{len(names)} against {len(values)} values")
            return None
        return dict(zip(names, values))
