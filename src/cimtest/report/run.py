"""A comparison RUN directory: ``comparison.json``, ``tensors.safetensors``, ``roc.png``
(every method's ROC curve in one plot) and ``tests/``, written atomically.

`cimtest compare -o RUN` and `cimtest demo` write it; `cimtest report RUN` reads it. The JSON
holds the table, the setup, ROC curves, the populations' accuracies, the flag rate per
accuracy-drop bin and each method's `describe()` (its decision, curves and choices); the
safetensors file each method's `figures()` as ``NAME.KEY`` (the EGIS images, the Bayesian
vector's mean and variance, each learned test's inputs before and after its gradient steps;
no pickle anywhere); ``tests/NAME.safetensors`` every fitted test (each its own artefact,
for `cimtest export`). The JSON carries a digest over itself and the tensors
(`cimtest.fingerprint.content_digest`); a run whose digest fails is refused. ``roc.png`` is a rendering of the JSON's curves and is not covered.
"""

from __future__ import annotations

import json
import logging
from itertools import pairwise
from pathlib import Path

import numpy as np
import torch

from cimtest import __version__
from cimtest._atomic import atomic_directory
from cimtest.exceptions import ArtifactError
from cimtest.fingerprint import DIGEST_KEY, content_digest
from cimtest.report import plots
from cimtest.report.comparison import Comparison

__all__ = ["DROP_BINS", "RUN_JSON", "RUN_ROC", "RUN_TENSORS", "RUN_TESTS", "load_run",
           "run_document", "save_run"]

RUN_JSON = "comparison.json"
RUN_TENSORS = "tensors.safetensors"
RUN_ROC = "roc.png"
RUN_TESTS = "tests"
"""Folder of every fitted test, ``NAME.safetensors`` (`cimtest export` and `decide` take them)."""
FORMAT = "cimtest-comparison"

_logger = logging.getLogger(__name__)

DROP_BINS = (float("-inf"), 0.5, 1.0, 2.0, 4.0, 8.0, float("inf"))
"""Edges (points of accuracy below the ideal chip) of the flag-rate-versus-drop curves."""


def run_document(comparison: Comparison, ideal_accuracy: float) -> dict:
    """The JSON view of `comparison` (everything the report needs but the tensors)."""
    methods = comparison.methods
    drop = ideal_accuracy - comparison.eval_accuracy
    flags = {}
    for row in comparison.rows:
        flags[row["method"]] = _flag_rate_by_drop(comparison, row["method"], drop)
    doc = {
        "format": FORMAT, "cimtest": __version__, "setup": comparison.setup,
        "ideal_accuracy": ideal_accuracy, "cutoff_accuracy": comparison.cutoff_accuracy,
        "rows": comparison.rows, "forwards": comparison.forwards,
        "roc": {k: {"fpr": fpr.tolist(), "tpr": tpr.tolist()}
                for k, (fpr, tpr) in comparison.roc.items()},
        "train_accuracy": comparison.train_accuracy.tolist(),
        "eval_accuracy": comparison.eval_accuracy.tolist(),
        "drop_bins": [b if np.isfinite(b) else None for b in DROP_BINS],
        "flag_rate_by_drop": flags,
    }
    doc["methods"] = {name: method.describe() for name, method in methods.items()}
    return doc


def save_run(comparison: Comparison, path: str | Path, ideal_accuracy: float) -> Path:
    """Write the RUN directory at `path` (replacing an old one only once complete)."""
    from safetensors.torch import save_file

    path = Path(path)
    if not path.parent.is_dir():
        raise ArtifactError(f"folder '{path.parent}' does not exist")
    tensors = {f"{name}.{key}": value for name, method in comparison.methods.items()
               for key, value in method.figures().items()}
    tensors = {k: v.detach().float().contiguous() for k, v in tensors.items()}
    try:
        with atomic_directory(path) as tmp:
            doc = json.loads(json.dumps(run_document(comparison, ideal_accuracy)))
            doc[DIGEST_KEY] = content_digest(doc, tensors)
            (tmp / RUN_JSON).write_text(json.dumps(doc, indent=1))
            aucs = {row["method"]: row["auc"] for row in doc["rows"]}
            (tmp / RUN_ROC).write_bytes(plots.roc_curves(doc["roc"], aucs))
            save_file(tensors, str(tmp / RUN_TENSORS))
            (tmp / RUN_TESTS).mkdir()
            for name, method in comparison.methods.items():
                method.save(tmp / RUN_TESTS / f"{name}.safetensors")
    except OSError as exc:
        raise ArtifactError(f"cannot write run '{path}': {exc}") from exc
    return path


def load_run(path: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """Read a RUN directory: (the JSON document, the tensors by name); `ArtifactError` if it
    is missing, corrupt, not a comparison, or edited since it was written (digest)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    doc_path, tensor_path = path / RUN_JSON, path / RUN_TENSORS
    if not path.exists():
        raise ArtifactError(f"run folder '{path}' does not exist; write one with `cimtest "
                            "compare ... -o RUN`")
    if not path.is_dir():
        raise ArtifactError(f"'{path}' is a file, not a run folder written by `cimtest compare "
                            "-o RUN`")
    if not doc_path.is_file():
        raise ArtifactError(f"'{path}' is not a comparison run (no {RUN_JSON}); write one "
                            "with `cimtest compare ... -o RUN`")
    try:
        doc = json.loads(doc_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"'{doc_path}' is corrupt: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ArtifactError(f"'{doc_path}' is not a cimtest comparison")
    missing = [k for k in ("setup", "rows", "roc", "eval_accuracy", "methods") if k not in doc]
    if missing:
        raise ArtifactError(f"'{doc_path}' lacks {', '.join(missing)} (written by another "
                            "version of cimtest?); rerun `cimtest compare`")
    try:
        tensors = load_file(str(tensor_path)) if tensor_path.is_file() else {}
    except (SafetensorError, OSError) as exc:
        raise ArtifactError(f"'{tensor_path}' is corrupt: {exc}") from exc
    if DIGEST_KEY not in doc:
        _logger.warning("run '%s' has no digest (written before cimtest recorded them), so an "
                        "edit to it would go unnoticed; rerun `cimtest compare` to add one", path)
    elif doc[DIGEST_KEY] != content_digest(doc, tensors):
        raise ArtifactError(f"run '{path}' fails its digest check: {RUN_JSON} or {RUN_TENSORS} "
                            "was edited or corrupted after it was written; rerun `cimtest "
                            "compare`")
    return doc, tensors


def _flag_rate_by_drop(comparison: Comparison, name: str, drop: np.ndarray) -> list:
    """Percent of evaluation chips flagged by `name` in each accuracy-drop bin (None if empty)."""
    flagged = comparison.flags[name]
    out = []
    for low, high in pairwise(DROP_BINS):
        inside = (drop >= low) & (drop < high)
        out.append(float(100.0 * flagged[inside].mean()) if inside.any() else None)
    return out
