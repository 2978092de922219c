"""The model registry in Redis: signed checkpoint versions, the champion and challengers and the learner
lock; the shared label stream, with each model's prequential figures, is its `labels`
(`fraudstream.stream.label_log`).

Every key is ``{<prefix>:models}:...`` (one hash tag, so the Lua scripts work on a cluster too):

- ``names`` (set): every registered model name
- ``ckpt:<name>`` (hash version -> signed checkpoint blob), ``latest:<name>`` (newest version),
  ``pos:<name>`` (hash version -> the last label-stream entry that version learned)
- ``champion`` (string), ``challengers`` (set): the active models
- ``learner`` (string with a TTL): the consumer that holds the learner role
- ``pinned:<name>``: copies of versions kept until unpinned (`fraudstream.stream.pins`)
- ``publish_failed`` (hash name -> JSON): models the learner cannot checkpoint
  (`fraudstream.stream.publish_failures`)
- the label stream's keys: see `fraudstream.stream.label_log`

Only verified blobs are ever unpickled (`fraudstream.models.checkpoint`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from importlib.resources import files
from typing import Any

from fraudstream.constants import MODEL_NAME_PATTERN
from fraudstream.errors import CheckpointError, ModelError
from fraudstream.models import checkpoint
from fraudstream.models.checkpoint import Checkpoint, CheckpointInfo
from fraudstream.stream.label_log import LabelLog
from fraudstream.stream.label_stream import stream_id
from fraudstream.stream.pins import PinnedVersions
from fraudstream.stream.publish_failures import KEEP_FOR_FAILING_S, PublishFailures, trim_bound

log = logging.getLogger(__name__)

KEEP_VERSIONS = 3


class PublishConflict(CheckpointError):
    """Another version was published first (an import), or the learner role was lost."""


class ModelRegistry:
    """See the module docstring. `client` is a `redis.Redis` or `RedisCluster`."""

    def __init__(self, client: Any, prefix: str, signing_key: bytes | str) -> None:
        self.client = client
        self.prefix = prefix
        self.signing_key = signing_key
        def script(name: str) -> Any:
            return client.register_script(files(__package__).joinpath(f"{name}.lua").read_text())

        self._publish, self._hold = script("checkpoint_publish"), script("learner_hold")
        self._release, self._promote = script("learner_release"), script("champion_promote")
        self.labels = LabelLog(client, self.key, script("labels_append"))
        self.pinned = PinnedVersions(client, self.key)
        self.publish_failures = PublishFailures(client, self.key)

    def key(self, *parts: str) -> str:
        """``{prefix:models}:part:part``."""
        return ":".join((f"{{{self.prefix}:models}}", *parts))

    # -- catalogue -------------------------------------------------------------------------------
    def names(self) -> list[str]:
        return sorted(n.decode() for n in self.client.smembers(self.key("names")))

    def active(self) -> tuple[str | None, list[str]]:
        """The champion and the challengers (sorted)."""
        champion = self.client.get(self.key("champion"))
        challengers = self.client.smembers(self.key("challengers"))
        return (champion.decode() if champion else None), sorted(c.decode() for c in challengers)

    def set_champion_if_absent(self, name: str) -> str:
        """The champion, set to `name` when there is none yet."""
        self.client.set(self.key("champion"), name, nx=True)
        return self.active()[0] or name

    def add_challengers(self, names: Sequence[str]) -> None:
        champion = self.active()[0]
        extra = [n for n in names if n != champion]
        if extra:
            self.client.sadd(self.key("challengers"), *extra)

    def retire(self, name: str) -> bool:
        """Stop scoring with the challenger `name` (its versions stay); False if it was not one.
        `ModelError` for the champion: promote another model first."""
        if self.active()[0] == name:
            raise ModelError(f"{name!r} is the champion: promote another model first")
        self.publish_failures.clear(name)  # no learner tries it any more
        return bool(self.client.srem(self.key("challengers"), name))

    def promote(self, name: str) -> str | None:
        """Make `name` (which must have a published version that verifies with this registry's key:
        the consumers would refuse it) the champion; the former champion becomes a challenger.
        Returns the former champion."""
        newest = self.latest_version(name)
        if newest == 0:
            raise self.unknown(name)
        try:
            checkpoint.verify(self.blob(name, newest), self.signing_key)
        except CheckpointError as exc:
            raise CheckpointError(f"{name} not promoted: its newest checkpoint (v{newest}) does not verify with "
                                  f"the signing key in use ({exc}); the consumers would refuse it") from None
        old = self._promote(keys=[self.key("champion"), self.key("challengers")], args=[name])
        return old.decode() if old else None

    # -- versions --------------------------------------------------------------------------------
    def latest_version(self, name: str) -> int:
        return int(self.client.get(self.key("latest", name)) or 0)

    def latest_versions(self, names: Sequence[str]) -> dict[str, int]:
        if not names:
            return {}
        values = self.client.mget([self.key("latest", n) for n in names])
        return {n: int(v or 0) for n, v in zip(names, values)}

    def publish_blob(self, name: str, version: int, blob: bytes, position: str, owner: str = "",
                     restore: bool = False) -> int:
        """Store a signed blob as `version` of `name` (learned up to stream entry `position`): only if
        it is the next version (`restore`: any after the newest, when Redis lost versions) and (with
        `owner`) only while `owner` holds the learner role. Raises `PublishConflict` otherwise."""
        result = int(self._publish(
            keys=[self.key("latest", name), self.key("ckpt", name), self.key("names"), self.key("learner"),
                  self.key("pos", name)],
            args=[name, version, blob, owner, KEEP_VERSIONS, position, "1" if restore else ""]))
        if result == -1:
            raise PublishConflict(f"{owner} no longer holds the learner role")
        if result == -2:
            raise PublishConflict(f"version {version} of {name} is not the next one (another was published)")
        return result

    def publish(self, model: Any, info: CheckpointInfo, owner: str = "", restore: bool = False) -> CheckpointInfo:
        """Sign and publish `model` as ``info.version``. A learner's publication (`owner`) records its
        signing key as the registry's (`fraudstream.stream.signing_record`); so does an import while no consumer
        holds the learner role (a key changed with the consumers stopped), else only when none is
        recorded: a forced import with another key does not make the running consumers' key look
        foreign to the next import."""
        self.publish_blob(info.name, info.version, checkpoint.dumps(model, info, self.signing_key), info.position,
                          owner, restore)
        self.client.set(self.key("signing_key"), checkpoint.key_fingerprint(self.signing_key), nx=not owner and self.learner() is not None)
        self.publish_failures.clear(info.name)  # its newest version is current again
        log.info("published %s v%d (%d labels learned)", info.name, info.version, info.labels_learned)
        return info

    def blob(self, name: str, version: int | None = None, pinned: bool = False) -> bytes:
        """The stored blob of a version of `name` (default: the newest) from the rotation, or with
        `pinned` also a pinned copy (export, pin, rollback; never a restore: the label stream after a
        pinned version is not kept)."""
        version = self.latest_version(name) if version is None else version
        data = self.client.hget(self.key("ckpt", name), str(version)) if version else None
        if data is None and version and pinned:
            data = self.pinned.blob(name, version)
        if data is None:
            newest = self.latest_version(name)
            if newest == 0:
                raise self.unknown(name)
            pinned = ", ".join(f"v{v}" for v in self.pinned.versions(name))
            raise ModelError(f"{name!r} has no version {version} in the registry: it keeps "
                             f"{', '.join(f'v{v}' for v in self.kept_versions(name))} (the newest {KEEP_VERSIONS}) "
                             f"and {'the pinned ' + pinned if pinned else 'no pinned version'}")
        return bytes(data)

    def kept_versions(self, name: str) -> list[int]:
        """The versions of `name` in the rotation (the newest `KEEP_VERSIONS`), oldest first."""
        return sorted(int(v) for v in self.client.hkeys(self.key("ckpt", name)))

    def pin(self, name: str, version: int | None = None) -> CheckpointInfo:
        """Keep a copy of a version of `name` (default: the newest) until `unpin`; it must verify."""
        blob = self.blob(name, version, pinned=True)
        info, _ = checkpoint.verify(blob, self.signing_key)
        self.pinned.pin(name, info.version, blob)
        return info

    def rollback(self, name: str, version: int) -> CheckpointInfo:
        """Publish a kept or pinned version of `name` again, as its next version: the consumers switch
        to it within about a second, and it learns on from the current end of the label stream."""
        return self.import_blob(self.blob(name, version, pinned=True), name, source=f"rollback to v{version}")

    def unknown(self, name: str) -> ModelError:
        """The error for a name with no published version."""
        return ModelError(f"no published model named {name!r} in the registry; known models: {', '.join(self.names()) or 'none'}")

    def load(self, name: str, version: int | None = None) -> Checkpoint:
        """The verified, unpickled checkpoint (`CheckpointError` if its signature does not match)."""
        try:
            return checkpoint.loads(self.blob(name, version), self.signing_key)
        except CheckpointError as exc:
            raise CheckpointError(f"registry model {name!r}: {exc}") from None

    def info(self, name: str) -> CheckpointInfo:
        """The verified header of the newest version (nothing unpickled)."""
        return checkpoint.verify(self.blob(name), self.signing_key)[0]

    def import_blob(self, blob: bytes, name: str | None = None, source: str = "import") -> CheckpointInfo:
        """Verify a signed checkpoint from elsewhere and publish it as the next version of `name`
        (default: its own name, which must be a model name). It starts learning live from the current
        end of the label stream."""
        info, payload = checkpoint.verify(blob, self.signing_key)
        target = name or info.name
        if name is None and not re.fullmatch(MODEL_NAME_PATTERN, target):
            raise ModelError(f"the name in the file, {target!r}, is not a model name (1-64 letters, digits, '_', "
                             "'-' or '.'): give one with --name")
        self._same_kind(target, info)
        loaded = checkpoint.unpickled(info, payload)
        for _ in range(5):
            new = info.bump(name=target, version=self.latest_version(target) + 1, position=self.labels.end(),
                            source=source)
            try:
                self.publish(loaded.model, new)
                return new
            except PublishConflict:
                continue
        raise PublishConflict(f"could not import {target}: versions kept changing")

    def _same_kind(self, name: str, incoming: CheckpointInfo) -> None:
        """Refuse a checkpoint of another kind of model as a new version of a published `name`: its
        versions and its live figures would mix two models; nor under the zoo's name of another kind."""
        from fraudstream.models.zoo import MODEL_NAMES

        if name in MODEL_NAMES and incoming.kind != name:
            raise ModelError(f"{name} is the name of a model of the zoo, and this checkpoint is of another kind "
                             f"({incoming.kind}): import it under another name (--name)")
        if self.latest_version(name) == 0:
            return
        try:
            current, _ = checkpoint.verify(self.blob(name), self.signing_key)
        except CheckpointError:  # signed with another key: replaced anyway, and `models` says so
            return
        if current.kind != incoming.kind:
            raise ModelError(f"{name} is a {current.kind} model (v{current.version}) and this checkpoint is "
                             f"{incoming.kind}: import it under another name")

    def trim_labels(self, names: Sequence[str], failing: Mapping[str, str] | None = None,
                    keep_s: float = KEEP_FOR_FAILING_S) -> list[str]:
        """Drop the entries every kept version of every model in `names` has learned (so a restore
        that falls back to an older version can still replay the stream after it); for a model that
        cannot be checkpointed (`failing`: name -> the position it learned in the learner), no more
        than `keep_s` of entries behind that position (`publish_failures.trim_bound`). Returns the
        failing models whose newest version the stream is now trimmed past."""
        kept = {n: [p.decode() for p in self.client.hvals(self.key("pos", n))] for n in names}
        failing = failing or {}
        bound = trim_bound(kept, failing, int(keep_s * 1000))
        if bound is None:
            return []
        past = [n for n in failing if self._entries_between(max(kept.get(n) or ["0-0"], key=stream_id), bound)]
        self.labels.trim(bound)
        return past

    def _entries_between(self, after: str, before: str) -> bool:
        """Whether the label stream has an entry after the id `after` and before the id `before`."""
        return stream_id(after) < stream_id(before) and bool(
            self.client.xrange(self.key("labels"), min=f"({after}", max=f"({before}", count=1))

    # -- learner role ----------------------------------------------------------------------------
    def hold_learner(self, owner: str, ttl_ms: int) -> int:
        """Acquire or renew the learner role: 2 acquired, 1 renewed, 0 held by another consumer."""
        return int(self._hold(keys=[self.key("learner")], args=[owner, ttl_ms]))

    def release_learner(self, owner: str) -> None:
        self._release(keys=[self.key("learner")], args=[owner])

    def learner(self) -> str | None:
        value = self.client.get(self.key("learner"))
        return value.decode() if value else None


def _connect(settings: Any) -> Any:
    """Like `fraudstream.stream.state.redis_store.connect`, without importing that submodule: its
    first import rebinds the package attribute `fraudstream.stream.state.redis_store` (a function)
    to the module, which breaks a later ``from fraudstream.stream.state import redis_store``."""
    import redis
    from redis.cluster import RedisCluster

    if not settings.redis_url:
        raise ModelError("no Redis URL for the model registry (FRAUDSTREAM_REDIS_URL)")
    password = settings.redis_password.get_secret_value() if settings.redis_password else None
    kwargs: dict[str, Any] = {"password": password} if password else {}
    if settings.redis_cluster:
        return RedisCluster.from_url(settings.redis_url, **kwargs)
    return redis.Redis.from_url(settings.redis_url, **kwargs)


def registry_for(settings: Any, client: Any | None = None) -> ModelRegistry:
    """The registry of `settings` (a new client unless one is given)."""
    if client is None:
        client = _connect(settings)
    key = settings.model_signing_key.get_secret_value()
    return ModelRegistry(client, settings.redis_key_prefix, key)


__all__ = ["ModelRegistry", "PublishConflict", "registry_for", "stream_id"]
