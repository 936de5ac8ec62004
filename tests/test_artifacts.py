"""Test artefacts: round trip, atomic writes, corrupt files and the fingerprint check."""

import json

import pytest
import torch
from safetensors.torch import save_file

from cimtest.artifacts import Artifact, load_artifact, save_artifact
from cimtest.exceptions import ArtifactError


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
    partial = tmp_path / "partial.safetensors"
    save_file({"w": torch.zeros(2)}, partial, metadata={
        "format": "cimtest-test", "format_version": "1", "cimtest": json.dumps({"method": "x"})})
    with pytest.raises(ArtifactError, match="lacks"):
        load_artifact(partial)
    with pytest.raises(ArtifactError, match="does not exist"):
        load_artifact(tmp_path / "missing.safetensors")
