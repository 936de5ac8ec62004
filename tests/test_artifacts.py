"""Test artefacts: round trip, atomic writes, corrupt files and the fingerprint check."""

import json

import pytest
import torch
from safetensors.torch import save_file

from cimtest.artifacts import Artifact, load_artifact, save_artifact
from cimtest.exceptions import ArtifactError
from cimtest.fingerprint import content_digest


def make_artifact() -> Artifact:
    return Artifact(
        method="btv",
        tensors={"mean": torch.arange(6.0).reshape(1, 2, 3), "log_var": torch.zeros(1, 2, 3)},
        params={"alpha": 0.1, "steps": 10, "false_alarm": None},
        thresholds={"offset": 0.25, "false_alarm": 0.5},
        input_shape=(1, 2, 3),
        fingerprint="ab" * 32,
        info={"loss_curve": [3.0, 2.0, 1.5]},
    )


def test_round_trip(tmp_path):
    path = save_artifact(tmp_path / "t.safetensors", make_artifact())
    back = load_artifact(path, expected_fingerprint="ab" * 32)
    original = make_artifact()
    assert back.method == "btv" and back.params == original.params
    assert back.thresholds == original.thresholds and back.input_shape == (1, 2, 3)
    assert back.info == original.info and back.cimtest_version == original.cimtest_version
    assert set(back.tensors) == {"mean", "log_var"}
    assert torch.equal(back.tensors["mean"], original.tensors["mean"])
    assert [p.name for p in tmp_path.iterdir()] == ["t.safetensors"]  # no temp file left


def test_fingerprint_mismatch_refused_unless_forced(tmp_path):
    path = save_artifact(tmp_path / "t.safetensors", make_artifact())
    with pytest.raises(ArtifactError, match="--force"):
        load_artifact(path, expected_fingerprint="cd" * 32)
    assert load_artifact(path, expected_fingerprint="cd" * 32, force=True).method == "btv"


def test_corrupt_and_foreign_files(tmp_path):
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00\x01not a safetensors file")
    with pytest.raises(ArtifactError, match="not a readable"):
        load_artifact(garbage)
    foreign = tmp_path / "weights.safetensors"
    save_file({"w": torch.zeros(2)}, foreign)
    with pytest.raises(ArtifactError, match="not a cimtest test artefact"):
        load_artifact(foreign)
    newer = tmp_path / "newer.safetensors"
    save_file({"w": torch.zeros(2)}, newer,
              metadata={"format": "cimtest-test", "format_version": "99", "cimtest": "{}"})
    with pytest.raises(ArtifactError, match="format 99"):
        load_artifact(newer)
    older = tmp_path / "older.safetensors"
    save_file({"w": torch.zeros(2)}, older,
              metadata={"format": "cimtest-test", "format_version": "2", "cimtest": "{}"})
    with pytest.raises(ArtifactError, match="format 2.*refit"):
        load_artifact(older)
    partial = tmp_path / "partial.safetensors"
    metadata = {"format": "cimtest-test", "format_version": "3",
                "cimtest": json.dumps({"method": "x"})}
    metadata["digest"] = content_digest(metadata, {"w": torch.zeros(2)})
    save_file({"w": torch.zeros(2)}, partial, metadata=metadata)
    with pytest.raises(ArtifactError, match="lacks"):
        load_artifact(partial)
    with pytest.raises(ArtifactError, match="does not exist"):
        load_artifact(tmp_path / "missing.safetensors")


def _edit_header(path, old: bytes, new: bytes) -> None:
    """Replace `old` by `new` (same length) inside the JSON header, as a hex editor would."""
    data = path.read_bytes()
    assert len(old) == len(new) and data.count(old) == 1
    path.write_bytes(data.replace(old, new))


def test_edited_metadata_is_refused_even_forced(tmp_path):
    path = save_artifact(tmp_path / "t.safetensors", make_artifact())
    _edit_header(path, b'0.25', b'9e99')  # the offset threshold, header length unchanged
    for force in (False, True):
        with pytest.raises(ArtifactError, match="fails its digest check") as info:
            load_artifact(path, expected_fingerprint="cd" * 32, force=force)
        assert "\n" not in str(info.value)


def test_corrupted_tensor_bytes_are_refused(tmp_path):
    path = save_artifact(tmp_path / "t.safetensors", make_artifact())
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # the last byte of the last tensor
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="digest"):
        load_artifact(path)


def test_missing_digest(tmp_path):
    """An artefact of the current format without its digest is an edit."""
    from safetensors import safe_open

    path = save_artifact(tmp_path / "t.safetensors", make_artifact())
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    del metadata["digest"]
    stripped = tmp_path / "stripped.safetensors"
    save_file(tensors, stripped, metadata=metadata)
    with pytest.raises(ArtifactError, match="digest"):
        load_artifact(stripped)
