"""Signed checkpoints: round trip, and refusal (never unpickling) of unsigned, tampered and foreign blobs."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from fraudstream.errors import CheckpointError
from fraudstream.models import checkpoint, zoo
from fraudstream.models.checkpoint import CheckpointInfo

KEY = b"test-key-1"


class Tripwire:
    """Unpickling this writes a file: the visible side effect that proves a blob was unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.write_text, (self.path, "unpickled"))


def trained_model() -> object:
    model = zoo.make_model("logreg", seed=3)
    for i in range(200):
        model.learn_one({"TX_AMOUNT": float(i % 50), "N": float(i % 7)}, i % 10 == 0)
    return model


def test_round_trip_scores_identically(tmp_path: Path) -> None:
    model = trained_model()
    info = CheckpointInfo(name="m", kind="logreg", version=4, labels_learned=200, frauds_learned=20,
                          position="17-0", source="backtest")
    path = checkpoint.save_file(tmp_path / "m.fsmodel", model, info, KEY)
    loaded = checkpoint.load_file(path, KEY)
    assert loaded.info == info
    probes = [{"TX_AMOUNT": float(a), "N": float(n)} for a in (1, 25, 49) for n in (0, 3, 6)]
    assert [zoo.score_one(loaded.model, x) for x in probes] == [zoo.score_one(model, x) for x in probes]
    assert len({zoo.score_one(model, x) for x in probes}) > 1  # a trained model, not a constant


def test_tripwire_fires_when_signed_with_the_right_key(tmp_path: Path) -> None:
    # positive control: the refusal tests below would notice an unpickle
    wire = tmp_path / "wire"
    blob = checkpoint.dumps(Tripwire(wire), CheckpointInfo(name="x", kind="logreg"), KEY)
    checkpoint.loads(blob, KEY)
    assert wire.read_text() == "unpickled"


@pytest.mark.parametrize("where", ["magic", "header", "mac", "payload", "last"])
def test_flipped_byte_is_refused_and_never_unpickled(tmp_path: Path, where: str) -> None:
    wire = tmp_path / "wire"
    blob = bytearray(checkpoint.dumps(Tripwire(wire), CheckpointInfo(name="x", kind="logreg"), KEY))
    header_len = int.from_bytes(blob[8:12], "big")
    index = {"magic": 2, "header": 14, "mac": 12 + header_len + 5, "payload": 12 + header_len + 40,
             "last": len(blob) - 1}[where]
    blob[index] ^= 0x01
    with pytest.raises(CheckpointError):
        checkpoint.loads(bytes(blob), KEY)
    assert not wire.exists()


def test_other_key_and_unsigned_pickles_are_refused(tmp_path: Path) -> None:
    wire = tmp_path / "wire"
    foreign = checkpoint.dumps(Tripwire(wire), CheckpointInfo(name="x", kind="logreg"), b"another key")
    with pytest.raises(CheckpointError, match="another key"):
        checkpoint.loads(foreign, KEY)
    with pytest.raises(CheckpointError, match="unsigned"):
        checkpoint.loads(pickle.dumps(Tripwire(wire)), KEY)
    (tmp_path / "plain.pkl").write_bytes(pickle.dumps(Tripwire(wire)))
    with pytest.raises(CheckpointError, match="plain.pkl"):
        checkpoint.load_file(tmp_path / "plain.pkl", KEY)
    with pytest.raises(CheckpointError, match="truncated"):
        checkpoint.loads(foreign[:20], KEY)
    assert not wire.exists()


def test_empty_key_is_refused() -> None:
    with pytest.raises(CheckpointError, match="SIGNING_KEY"):
        checkpoint.dumps({}, CheckpointInfo(name="x", kind="logreg"), b"")


def test_a_mismatch_with_the_demo_key_on_one_side_says_so(tmp_path: Path) -> None:
    """The usual mistake: a file written while FRAUDSTREAM_MODEL_SIGNING_KEY was unset (the built-in
    demo key), read with the key set, or the other way round. Neither key is shown."""
    from fraudstream.constants import DEV_SIGNING_KEY

    info = CheckpointInfo(name="m", kind="logreg")
    demo_signed = checkpoint.dumps([1], info, DEV_SIGNING_KEY)
    with pytest.raises(CheckpointError, match="it was signed with the built-in demo key") as caught:
        checkpoint.verify(demo_signed, b"our own secret")
    assert "our own secret" not in str(caught.value) and DEV_SIGNING_KEY not in str(caught.value)
    ours = checkpoint.dumps([1], info, b"our own secret")
    with pytest.raises(CheckpointError, match="FRAUDSTREAM_MODEL_SIGNING_KEY is unset here") as caught:
        checkpoint.verify(ours, DEV_SIGNING_KEY)
    assert "our own secret" not in str(caught.value) and DEV_SIGNING_KEY not in str(caught.value)
    with pytest.raises(CheckpointError) as caught:  # two keys of one's own: no hint about the demo key
        checkpoint.verify(ours, b"another secret")
    assert "demo key" not in str(caught.value)
    tampered = demo_signed[:-2] + b"X."  # the demo key's signature no longer matches either
    with pytest.raises(CheckpointError) as caught:
        checkpoint.verify(tampered, b"our own secret")
    assert "demo key" not in str(caught.value)
