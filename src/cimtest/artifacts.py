"""Test artefacts: tensors in a safetensors file, everything else as JSON in its metadata.

A test artefact holds what a chip needs to run a test (e.g. the Bayesian test vector's mean,
log-variance and stored sample) plus the facts needed to use it safely: the method and its
hyper-parameters, the threshold(s), the model's input shape, the cimtest version and the
sha256 fingerprint of the model it was made for. Nothing is pickled. A digest over the
tensors and the metadata (`cimtest.fingerprint.content_digest`) is stored beside them.
Loading checks the format, the digest (an edited or corrupted artefact is always refused,
``force`` or not) and, when asked, the fingerprint; writing goes to a temporary file renamed
into place, so a crash never leaves half an artefact.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from cimtest import __version__
from cimtest._atomic import atomic_file
from cimtest.exceptions import ArtifactError
from cimtest.fingerprint import DIGEST_KEY, content_digest

__all__ = ["FORMAT", "FORMAT_VERSION", "Artifact", "check_digest", "check_fingerprint",
           "load_artifact", "save_artifact", "stored_digest"]

_logger = logging.getLogger(__name__)

FORMAT = "cimtest-test"
"""Value of the ``format`` metadata key of every cimtest test artefact."""

FORMAT_VERSION = 3
"""Layout version of the artefact; a newer one is refused by older cimtest, an older one
(before every method shared one layout, `cimtest.methods.persistence`) by this one."""

_REQUIRED = ("method", "params", "thresholds", "input_shape", "fingerprint", "cimtest_version")


@dataclass(frozen=True)
class Artifact:
    """A test as stored on disk.

    Attributes
    ----------
    method : str
        Test method, e.g. ``"btv"``.
    tensors : dict of str to torch.Tensor
        The test's arrays (CPU, dtype kept), e.g. ``mean_``, ``log_var_``, ``inputs_``.
    params : dict
        Hyper-parameters of the method (``get_params()``), JSON values only.
    thresholds : dict of str to float
        Decision thresholds by rule name, e.g. ``{"offset": 0.12, "false_alarm": 0.15}``.
    input_shape : tuple of int
        Shape of one model input without the batch dimension.
    fingerprint : str
        sha256 fingerprint of the weights of the model the test was made for.
    cimtest_version : str
        Version of cimtest that wrote the artefact.
    info : dict
        Anything else worth keeping, JSON values only (loss curve, σ_y of the ideal chip...).
    model : dict or None
        How to load the model again (`cimtest.loading.LoadedModel.reference`: name, spec
        such as a zoo name or ``module:factory``, weights path), so that commands need
        ``--model`` only when it cannot be found again; None if the test was fitted on a
        bare module.
    """

    method: str
    tensors: dict[str, torch.Tensor]
    params: dict[str, Any]
    thresholds: dict[str, float]
    input_shape: tuple[int, ...]
    fingerprint: str
    cimtest_version: str = __version__
    info: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] | None = None


def save_artifact(path: str | Path, artifact: Artifact) -> Path:
    """Write `artifact` to `path` (a ``.safetensors`` file) atomically; return the path.

    Raises
    ------
    ArtifactError
        If the metadata is not JSON-serialisable or the file cannot be written.
    """
    from safetensors.torch import save_file

    path = Path(path)
    meta = {
        "method": artifact.method,
        "params": artifact.params,
        "thresholds": artifact.thresholds,
        "input_shape": list(artifact.input_shape),
        "fingerprint": artifact.fingerprint,
        "cimtest_version": artifact.cimtest_version,
        "info": artifact.info,
        "model": artifact.model,
    }
    try:
        metadata = {"format": FORMAT, "format_version": str(FORMAT_VERSION),
                    "cimtest": json.dumps(meta)}
    except (TypeError, ValueError) as exc:
        raise ArtifactError(f"artefact metadata is not JSON-serialisable: {exc}") from exc
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in artifact.tensors.items()}
    metadata[DIGEST_KEY] = content_digest(metadata, tensors)
    try:
        with atomic_file(path) as tmp:
            save_file(tensors, str(tmp), metadata=metadata)
    except OSError as exc:
        raise ArtifactError(f"cannot write artefact '{path}': {exc}") from exc
    _logger.info("saved %s test artefact to %s", artifact.method, path)
    return path


def load_artifact(
    path: str | Path, expected_fingerprint: str | None = None, *, force: bool = False
) -> Artifact:
    """Read a test artefact, checking its format, its digest and (optionally) the model
    fingerprint.

    Parameters
    ----------
    path : str or Path
        A file written by `save_artifact`.
    expected_fingerprint : str, optional
        Fingerprint of the model the test is about to be used with; a different stored
        fingerprint raises unless `force`.
    force : bool
        Accept a fingerprint mismatch (logged as a warning); never a failed digest.

    Raises
    ------
    ArtifactError
        If the file is missing, corrupt, not a cimtest test artefact, of a newer format
        version, edited since it was written (its digest differs), or made for another
        model (and `force` is False).
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"test artefact '{path}' does not exist")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (safe_open is no dict)
    except Exception as exc:  # safetensors raises several types on corrupt headers
        raise ArtifactError(f"'{path}' is not a readable safetensors file: {exc}") from exc
    if metadata.get("format") != FORMAT:
        raise ArtifactError(f"'{path}' is not a cimtest test artefact (no '{FORMAT}' format tag)")
    try:
        version = int(metadata.get("format_version", ""))
    except ValueError as exc:
        raise ArtifactError(f"'{path}': corrupt artefact metadata ({exc})") from exc
    if version > FORMAT_VERSION:
        raise ArtifactError(f"'{path}' has artefact format {version}; this cimtest reads up to "
                            f"{FORMAT_VERSION} (upgrade cimtest)")
    if version < FORMAT_VERSION:
        raise ArtifactError(f"'{path}' has artefact format {version}, written by an older "
                            f"cimtest; this one reads format {FORMAT_VERSION}: refit the test")
    check_digest(path, metadata, tensors)
    try:
        meta = json.loads(metadata["cimtest"])
    except (KeyError, ValueError) as exc:
        raise ArtifactError(f"'{path}': corrupt artefact metadata ({exc})") from exc
    missing = [key for key in _REQUIRED if key not in meta]
    if missing:
        raise ArtifactError(f"'{path}': artefact metadata lacks {', '.join(missing)}")
    artifact = Artifact(
        method=meta["method"],
        tensors=tensors,
        params=meta["params"],
        thresholds={k: float(v) for k, v in meta["thresholds"].items()},
        input_shape=tuple(int(v) for v in meta["input_shape"]),
        fingerprint=meta["fingerprint"],
        cimtest_version=meta["cimtest_version"],
        info=meta.get("info", {}),
        model=meta.get("model") if isinstance(meta.get("model"), dict) else None,
    )
    if expected_fingerprint is not None:
        check_fingerprint(path, artifact.fingerprint, expected_fingerprint, force=force)
    return artifact


def check_fingerprint(path: str | Path, stored: str, expected: str, *,
                      force: bool = False, advice: str | None = None) -> None:
    """Refuse the test at `path`, made for the model fingerprinted `stored`, on the model
    fingerprinted `expected` if they differ: `ArtifactError`, or a warning if `force`.

    `advice` ends the error with what fixes the case at hand (the command line knows which
    option that is: the right weights, a reference model); by default, `force`."""
    if stored == expected:
        return
    message = (f"test '{path}' was made for the model with fingerprint {stored[:12]}..., "
               f"not {expected[:12]}...")
    if not force:
        advice = advice or "pass --force (force=True) to apply it anyway"
        raise ArtifactError(f"{message}; {advice}")
    _logger.warning("%s; forced", message)


def stored_digest(path: str | Path) -> str | None:
    """The digest recorded in the header of the artefact at `path` (None if it has none or
    is unreadable); reads the header only. `load_artifact` checks it against the content."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return (handle.metadata() or {}).get(DIGEST_KEY)
    except Exception:  # safetensors raises several types on corrupt headers  # noqa: BLE001
        return None


def check_digest(
    path: str | Path, metadata: dict[str, str], tensors: dict[str, torch.Tensor]
) -> None:
    """Raise `ArtifactError` unless the digest stored in `metadata` is that of `metadata`
    and `tensors`."""
    if metadata.get(DIGEST_KEY) != content_digest(metadata, tensors):
        raise ArtifactError(f"test artefact '{path}' fails its digest check: it was edited or "
                            "corrupted after it was written (--force does not override this); "
                            "refit it")
