"""Signed model checkpoints: one byte format for the live registry, `backtest --save-model` and
`fraudstream models export/import`.

Layout (all of it covered by the signature)::

    b"FSCKPT1\\n" | header length (4 bytes, big endian) | header (JSON) | HMAC-SHA256 (32 bytes) | pickle

The HMAC-SHA256 over magic, length, header and pickle is checked with `hmac.compare_digest` before
the header is parsed or the pickle touched: an unsigned, truncated, tampered with or foreign-key
blob raises `CheckpointError` and is never unpickled. (Pickle runs code on load; the key is what
makes loading safe, so keep it secret: ``FRAUDSTREAM_MODEL_SIGNING_KEY``.)

>>> info = CheckpointInfo(name="demo", kind="logreg", version=3, labels_learned=10, frauds_learned=1)
>>> blob = dumps({"w": 1.5}, info, b"k1")
>>> cp = loads(blob, b"k1")
>>> cp.model, cp.info.version, cp.info.name
({'w': 1.5}, 3, 'demo')
>>> loads(blob, b"other key")
Traceback (most recent call last):
...
fraudstream.errors.CheckpointError: checkpoint signature does not match (tampered with, or signed with another key than FRAUDSTREAM_MODEL_SIGNING_KEY)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import pickle
import struct
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from fraudstream.errors import CheckpointError, UnpicklableModel
from fraudstream.outputs import write_bytes

log = logging.getLogger(__name__)

MAGIC = b"FSCKPT1\n"
_LEN = struct.Struct(">I")
_MAC_SIZE = hashlib.sha256().digest_size
MAX_HEADER_BYTES = 1 << 20


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint is: registry name, zoo model kind, version and the learning it holds.

    `position` is the id of the last entry of the live label stream this model has learned
    (``"0-0"``: none); `source` is ``live``, ``backtest`` or ``import``. `feature_settings`: the
    settings that change what a feature means which it learned with (``{"local_timezone": "UTC"}``;
    a key it lacks, as in a header written before they were recorded, reads as its default:
    `fraudstream.stream.feature_settings`).

    >>> CheckpointInfo.from_dict({"name": "m", "kind": "logreg", "version": 2}).feature_settings  # an older header
    {}
    >>> info = CheckpointInfo("m", "logreg", feature_settings={"local_timezone": "Europe/Paris"})
    >>> loads(dumps(None, info, b"k"), b"k").info.feature_settings
    {'local_timezone': 'Europe/Paris'}
    """

    name: str
    kind: str
    version: int = 0
    labels_learned: int = 0
    frauds_learned: int = 0
    position: str = "0-0"
    source: str = "live"
    created_at: float = field(default_factory=time.time)
    extra: dict[str, Any] = field(default_factory=dict)
    feature_settings: dict[str, str] = field(default_factory=dict)

    def bump(self, **changes: Any) -> CheckpointInfo:
        """A copy with `changes` and a new creation time.

        >>> CheckpointInfo("a", "logreg", version=1).bump(version=2).version
        2
        """
        return replace(self, created_at=time.time(), **changes)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckpointInfo:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        settings = known.get("feature_settings", {})
        if not isinstance(settings, dict) or not all(isinstance(v, str) for v in settings.values()):
            raise CheckpointError(f"checkpoint header's feature_settings is not an object of strings: {settings!r}")
        try:
            return cls(**known)
        except TypeError as exc:
            raise CheckpointError(f"checkpoint header is incomplete: {exc}") from None


@dataclass(frozen=True)
class Checkpoint:
    """A verified, loaded checkpoint."""

    info: CheckpointInfo
    model: Any


def warn_if_demo_key(key: str, log: logging.Logger) -> None:
    """Log a warning when `key` is the built-in demo key (`constants.DEV_SIGNING_KEY`): anyone can
    sign a checkpoint that verifies with it."""
    from fraudstream.constants import DEV_SIGNING_KEY

    if key == DEV_SIGNING_KEY:
        log.warning("model checkpoints are signed with the built-in demo key: set FRAUDSTREAM_MODEL_SIGNING_KEY "
                    "to a secret of your own before trusting checkpoints from this Redis or file")


def key_fingerprint(key: bytes | str) -> str:
    """A fingerprint of a signing key, to tell two keys apart without revealing either (an HMAC of a
    fixed message, 64 bits).

    >>> key_fingerprint("k1") == key_fingerprint(b"k1") != key_fingerprint("k2"), len(key_fingerprint("k1"))
    (True, 16)
    """
    raw = key.encode() if isinstance(key, str) else key
    return _mac(raw, b"fraudstream signing key fingerprint").hex()[:16]


def _mac(key: bytes, signed: bytes) -> bytes:
    return hmac.new(key, signed, hashlib.sha256).digest()


def _key_bytes(key: bytes | str) -> bytes:
    data = key.encode() if isinstance(key, str) else bytes(key)
    if not data:
        raise CheckpointError("empty signing key: set FRAUDSTREAM_MODEL_SIGNING_KEY")
    return data


def dumps(model: Any, info: CheckpointInfo, key: bytes | str) -> bytes:
    """Pickle `model` and sign it with `key` (HMAC-SHA256)."""
    header = json.dumps(asdict(info), sort_keys=True, separators=(",", ":")).encode()
    payload = pickled(model, f"model {info.name} ({info.kind})")
    head = MAGIC + _LEN.pack(len(header)) + header
    return head + _mac(_key_bytes(key), head + payload) + payload


def pickled(model: Any, what: str) -> bytes:
    """`model` pickled as a checkpoint holds it; `UnpicklableModel` naming `what` when it cannot be (a
    lambda or a local function in it, say)."""
    try:
        return pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        raise UnpicklableModel(f"{what} cannot be pickled, so not checkpointed: {exc}") from exc


def verify(blob: bytes, key: bytes | str) -> tuple[CheckpointInfo, bytes]:
    """Check the signature; the header and the still-pickled payload. Never unpickles.

    >>> verify(b"\\x80\\x04K\\x01.", b"k")
    Traceback (most recent call last):
    ...
    fraudstream.errors.CheckpointError: not a signed fraudstream checkpoint (no FSCKPT1 header; unsigned pickles are refused)
    >>> blob = dumps([1, 2], CheckpointInfo(name="m", kind="logreg"), b"k")
    >>> verify(blob, b"k")[0].name
    'm'
    >>> verify(blob[:-3], b"k")
    Traceback (most recent call last):
    ...
    fraudstream.errors.CheckpointError: checkpoint is truncated (its model ends early) or corrupt
    >>> verify(blob, b"another key")
    Traceback (most recent call last):
    ...
    fraudstream.errors.CheckpointError: checkpoint signature does not match (tampered with, or signed with another key than FRAUDSTREAM_MODEL_SIGNING_KEY)
    """
    if not blob.startswith(MAGIC):
        raise CheckpointError("not a signed fraudstream checkpoint (no FSCKPT1 header; unsigned pickles are refused)")
    start = len(MAGIC) + _LEN.size
    if len(blob) < start:
        raise CheckpointError("checkpoint is truncated")
    (size,) = _LEN.unpack_from(blob, len(MAGIC))
    if size > MAX_HEADER_BYTES or len(blob) < start + size + _MAC_SIZE:
        raise CheckpointError("checkpoint is truncated or its header length is corrupt")
    mac_at = start + size
    mac = blob[mac_at:mac_at + _MAC_SIZE]
    payload = blob[mac_at + _MAC_SIZE:]
    if not payload.endswith(b"."):  # every pickle ends with its STOP opcode
        raise CheckpointError("checkpoint is truncated (its model ends early) or corrupt")
    if not hmac.compare_digest(mac, _mac(_key_bytes(key), blob[:mac_at] + payload)):
        raise CheckpointError("checkpoint signature does not match (tampered with, or signed with another key "
                              f"than FRAUDSTREAM_MODEL_SIGNING_KEY){_demo_key_hint(mac, blob[:mac_at] + payload, key)}")
    try:
        info = CheckpointInfo.from_dict(json.loads(blob[start:mac_at]))
    except ValueError as exc:
        raise CheckpointError(f"checkpoint header is not valid JSON: {exc}") from None
    return info, payload


def _demo_key_hint(mac: bytes, signed: bytes, key: bytes | str) -> str:
    """Why a signature did not match, when the built-in demo key is one side of it: a file written
    while FRAUDSTREAM_MODEL_SIGNING_KEY was unset, or read while it is (neither key is shown)."""
    from fraudstream.constants import DEV_SIGNING_KEY

    demo = DEV_SIGNING_KEY.encode()
    if _key_bytes(key) == demo:
        return ": FRAUDSTREAM_MODEL_SIGNING_KEY is unset here, so the built-in demo key was tried"
    if hmac.compare_digest(mac, _mac(demo, signed)):
        return (": it was signed with the built-in demo key (FRAUDSTREAM_MODEL_SIGNING_KEY was unset where it was "
                "written), which anyone can sign with: write it again with your key set")
    return ""


def loads(blob: bytes, key: bytes | str) -> Checkpoint:
    """Verify, then unpickle. Raises `CheckpointError` for anything not signed with `key`."""
    return unpickled(*verify(blob, key))


def unpickled(info: CheckpointInfo, payload: bytes) -> Checkpoint:
    """The model of a payload `verify` returned (for a caller that looked at the header first)."""
    try:
        model = pickle.loads(payload)  # noqa: S301 - authenticated above
    except Exception as exc:  # a signed but unloadable model (e.g. another River version)
        hint = ""
        if isinstance(exc, ModuleNotFoundError) and ":" in info.kind:  # a model of your own (models/custom.py)
            hint = f" (a model of your own, from {info.kind}: install its module or put its directory on PYTHONPATH)"
        raise CheckpointError(f"checkpoint {info.name} v{info.version} is signed but cannot be loaded: {exc}{hint}") from exc
    return Checkpoint(info, model)


def save_file(path: str | Path, model: Any, info: CheckpointInfo, key: bytes | str) -> Path:
    """Write a signed checkpoint file (atomically: a temporary file renamed into place)."""
    target = Path(path)
    write_bytes(target, dumps(model, info, key))
    log.info("saved model %s (%s) v%d to %s", info.name, info.kind, info.version, target)
    return target


def load_file(path: str | Path, key: bytes | str) -> Checkpoint:
    """Read and verify a checkpoint file; `CheckpointError` names the file."""
    target = Path(path)
    try:
        blob = target.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {target}: {exc.strerror or exc}") from None
    try:
        return loads(blob, key)
    except CheckpointError as exc:
        raise CheckpointError(f"{target}: {exc}") from None
