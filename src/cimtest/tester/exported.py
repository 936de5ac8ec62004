"""An exported test: the folder a tester loads, and the one `decide` reads back.

``DIR/inputs.npy`` holds the inputs (float32, ``(inputs, *input_shape)``, in the order a chip
must run them, in the model's input space); ``DIR/test.safetensors`` the fitted test (its
decision model); ``DIR/manifest.json`` what a bench needs to know: the method and its
decision, the model's name and fingerprint, the input shape and how a raw input maps into it,
the expected response shape, the ideal chip's responses as a sanity reference, and a digest
over the manifest, the inputs and the test artefact's bytes. For a crossbar whose DAC takes
integer inputs (a periphery with ``dac_bits``), ``DIR/codes.npy`` holds the inputs' codes and
the manifest their per-input scale. ``DIR/inputs/*.png`` draws the inputs for people and is
not covered.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cimtest import __version__
from cimtest._atomic import atomic_directory
from cimtest._device import DeviceLike
from cimtest.exceptions import TesterError
from cimtest.fingerprint import DIGEST_KEY, content_digest
from cimtest.hardware.periphery import Periphery, dac_codes
from cimtest.methods.base import TestMethod

__all__ = ["FORMAT", "INPUTS_FILE", "MANIFEST_FILE", "TEST_FILE", "ExportedTest",
           "ideal_responses", "prepare_export", "read_export", "write_export"]

FORMAT = "cimtest-exported-test"
VERSION = 1
INPUTS_FILE = "inputs.npy"
CODES_FILE = "codes.npy"
MANIFEST_FILE = "manifest.json"
TEST_FILE = "test.safetensors"
PICTURES = "inputs"


@dataclass(frozen=True)
class ExportedTest:
    """An exported test: its manifest, its inputs and the fitted test (`path`: the folder
    it was read from, None before it is written)."""

    path: Path | None
    manifest: dict[str, Any]
    inputs: np.ndarray
    test: TestMethod
    codes: np.ndarray | None = None
    """int32 DAC codes of the inputs (``inputs ≈ codes * scale``), for a periphery with a DAC."""

    @property
    def response_shape(self) -> tuple[int, ...]:
        """One chip's responses: ``(inputs, *output_shape)``."""
        return tuple(self.manifest["response_shape"][1:])

    @property
    def ideal(self) -> np.ndarray:
        """The ideal chip's responses, float32 ``(inputs, *output_shape)``."""
        return np.asarray(self.manifest["ideal_responses"], dtype=np.float32)


def ideal_responses(test: TestMethod, module: torch.nn.Module,
                    periphery: Periphery | None = None, device: DeviceLike = None) -> np.ndarray:
    """The ideal chip's (the model quantised and mapped, no faults, on `periphery`, run on
    `device`) responses to the test's inputs, float32 ``(inputs, *output_shape)``: the
    reference a bench's responses should resemble."""
    from cimtest.engine import Population

    outputs = Population(module, "none", n=1, periphery=periphery, device=device).outputs(
        test.inputs_.detach().float())
    return outputs[0].cpu().numpy().astype(np.float32)


def prepare_export(
    test: TestMethod, model: Any, *, normalisation: dict[str, Any] | None = None,
    periphery: Periphery | None = None, device: DeviceLike = None,
) -> ExportedTest:
    """The exported form of `test` in memory (see the module docstring): write it with
    `write_export`, or decide on responses with it directly.

    Parameters
    ----------
    test : TestMethod
        A fitted test.
    model : LoadedModel or torch.nn.Module
        The model the test was fitted for (its fingerprint must match): it gives the ideal
        chip's responses (and a loaded model its name).
    normalisation : dict, optional
        How a raw input becomes a model input, ``{"mean": [...], "std": [...], "raw_range":
        [lo, hi]}`` per channel (``x = (raw - mean) / std``); None when not known.
    periphery : Periphery, optional
        The chips' converters: the ideal responses are computed on them, and with a DAC
        (``dac_bits``) the inputs' integer codes and per-input scales are exported too.
    device : str or torch.device, optional
        Where the ideal chip's responses are computed (None: the CPU).
    """
    from cimtest.methods._model import resolve_model

    periphery = periphery or Periphery()

    module, _, fingerprint, _ = resolve_model(model)
    name = getattr(model, "name", None) or (test.model_ or {}).get("name") or "model"
    if test.fingerprint_ != fingerprint:
        raise TesterError(f"the test was fitted for the model with fingerprint "
                          f"{test.fingerprint_[:12]}..., not {name} ({fingerprint[:12]}...)")
    inputs = test.inputs_.detach().float().cpu().contiguous().numpy()
    ideal = ideal_responses(test, module, periphery, device)
    codes, quantisation = None, None
    if periphery.dac_bits is not None:
        raw, scale = dac_codes(test.inputs_.detach().float().cpu(), periphery.dac_bits)
        codes = raw.to(torch.int32).numpy()
        quantisation = {"dac_bits": periphery.dac_bits, "codes": CODES_FILE,
                        "scale": scale.reshape(-1).tolist(),
                        "rule": "input = codes * scale (one scale per input)"}
    features = test.respond(torch.from_numpy(ideal[None]))
    manifest = {
        "format": FORMAT, "version": VERSION, "cimtest": __version__,
        "method": test.name, "test": test.describe(),
        "model": {"name": name, "fingerprint": fingerprint, "reference": test.model_},
        "input_shape": list(test.input_shape_),
        "input_space": "the model's inputs" + ("" if normalisation else
                                               " (how raw data maps into them: not known)"),
        "normalisation": normalisation,
        "hardware": periphery.spec(),
        "input_quantisation": quantisation,
        "inputs": len(inputs),
        "response_shape": [None, len(inputs), *(int(v) for v in ideal.shape[1:])],
        "ideal_responses": ideal.tolist(),
        "ideal_score": float(test.score(features)[0]),
        "ideal_flagged": bool(test.decide(features)[0]),
        "decision": {"rule": "score > threshold", "threshold": float(test.threshold_),
                     "flag_word": test.flag_word},
    }
    return ExportedTest(None, manifest, inputs, test, codes)


def write_export(exported: ExportedTest, path: str | Path, *, pictures: bool = True) -> Path:
    """Write `exported` as a folder at `path` (atomic: an old folder is replaced only once the
    new one is complete); with `pictures`, also draw the inputs as PNGs under ``inputs/``."""
    from cimtest.report.plots import image_grid

    path = Path(path)
    if not path.parent.is_dir():
        raise TesterError(f"cannot write '{path}': folder '{path.parent}' does not exist")
    manifest, inputs = dict(exported.manifest), exported.inputs
    try:
        with atomic_directory(path) as tmp:
            np.save(tmp / INPUTS_FILE, inputs, allow_pickle=False)
            exported.test.save(tmp / TEST_FILE)
            names = [INPUTS_FILE, TEST_FILE]
            if exported.codes is not None:
                np.save(tmp / CODES_FILE, exported.codes, allow_pickle=False)
                names.append(CODES_FILE)
            manifest["files"] = {name: _sha256(tmp / name) for name in names}
            manifest[DIGEST_KEY] = content_digest(manifest)
            (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1))
            if pictures:
                (tmp / PICTURES).mkdir()
                for start in range(0, len(inputs), 64):
                    part = torch.from_numpy(inputs[start:start + 64])
                    titles = [f"input {start + i}" for i in range(len(part))]
                    (tmp / PICTURES / f"inputs-{start:05d}.png").write_bytes(
                        image_grid(part, titles))
    except OSError as exc:
        raise TesterError(f"cannot write '{path}': {exc}") from exc
    return path


def read_export(path: str | Path) -> ExportedTest:
    """Read an exported folder; `TesterError` if it is missing, incomplete, or edited since
    it was written (the manifest's digest, the inputs' and the test's sha256)."""
    path = Path(path)
    manifest_path = path / MANIFEST_FILE
    if not manifest_path.is_file():
        raise TesterError(f"'{path}' is not an exported test (no {MANIFEST_FILE}); write one "
                          "with `cimtest export TEST -o DIR`")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TesterError(f"'{manifest_path}' is corrupt: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise TesterError(f"'{manifest_path}' is not a cimtest exported test")
    if manifest.get("version") != VERSION:
        raise TesterError(f"'{manifest_path}' is format version {manifest.get('version')}; "
                          f"this cimtest reads version {VERSION}")
    if manifest.get(DIGEST_KEY) != content_digest(manifest):
        raise TesterError(f"'{manifest_path}' fails its digest check: it was edited or "
                          "corrupted after export; export the test again")
    for name, digest in manifest["files"].items():
        if not (path / name).is_file() or _sha256(path / name) != digest:
            raise TesterError(f"'{path / name}' is missing or differs from the file exported "
                              "with this manifest; export the test again")
    inputs = np.load(path / INPUTS_FILE, allow_pickle=False)
    codes = (np.load(path / CODES_FILE, allow_pickle=False)
             if CODES_FILE in manifest["files"] else None)
    test = TestMethod.load(path / TEST_FILE, manifest["model"]["fingerprint"])
    if test.name != manifest["method"] or math.prod(inputs.shape) != test.inputs_.numel():
        raise TesterError(f"'{path}' holds a {test.name} test that does not match its manifest")
    return ExportedTest(path, manifest, inputs, test, codes)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
