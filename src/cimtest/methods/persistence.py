"""One artefact format for every test method: its parameters, learned state and parents.

A method lists its learned attributes in ``state``; `save_method` writes each as a tensor
(torch tensors and numpy arrays, dtype kept), a LightGBM model in its own text format (as
bytes), or a JSON value, into one safetensors artefact (`cimtest.artifacts`: digest, model
fingerprint, atomic write). Fitted parents (``parents``) are saved inside it under their
parameter name. Nothing is pickled; `load_method` rebuilds the method from its registered
class and refuses another method's artefact.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cimtest.artifacts import Artifact, load_artifact, save_artifact
from cimtest.exceptions import ArtifactError
from cimtest.methods.base import TestMethod, check_is_fitted
from cimtest.methods.detector import AccuracyRegressor, Detector

__all__ = ["load_method", "save_method"]

_logger = logging.getLogger(__name__)

_ALWAYS = ("inputs_", "threshold_", "input_shape_", "fingerprint_", "model_")
"""Learned attributes every fitted method has and saves, besides its own ``state``."""

_MODELS = {"Detector": Detector, "AccuracyRegressor": AccuracyRegressor}


def save_method(method: TestMethod, path: str | Path, info: dict[str, object]) -> Path:
    """Write the fitted `method` to `path` (see the module docstring); return the path."""
    check_is_fitted(method, (*_ALWAYS, *method.state))
    tensors: dict[str, torch.Tensor] = {}
    document = _encode(method, "", tensors)
    artifact = Artifact(
        method=method.name,
        tensors=tensors,
        params=document["params"],
        thresholds={"threshold": float(method.threshold_)},
        input_shape=tuple(method.input_shape_),
        fingerprint=method.fingerprint_,
        model=getattr(method, "model_", None),
        info={"state": document["state"], "parents": document["parents"], "saved": info},
    )
    save_artifact(path, artifact)
    _logger.info("saved %s test to %s", method.name, path)
    return Path(path)


def load_method(
    cls: type[TestMethod], path: str | Path, fingerprint: str | None, *, force: bool = False
) -> TestMethod:
    """Read a test written by `save_method`; `cls` must be its class or a base of it."""
    artifact = load_artifact(path, fingerprint, force=force)
    found = TestMethod._registry.get(artifact.method)
    if found is None or not issubclass(found, cls):
        wanted = getattr(cls, "name", "cimtest")
        raise ArtifactError(f"'{path}' holds a '{artifact.method}' test, not a {wanted} test")
    document = {"class": found.name, "params": artifact.params,
                "state": artifact.info.get("state"), "parents": artifact.info.get("parents")}
    try:
        method = _decode(document, artifact.tensors)
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"'{path}' is not a complete {found.name} test: {exc}") from None
    method.saved_info_ = dict(artifact.info.get("saved") or {})
    return method


def _encode(method: TestMethod, prefix: str, tensors: dict[str, torch.Tensor]) -> dict:
    """Parameters, state and parents of `method` as JSON; arrays and models into `tensors`."""
    params, parents = {}, {}
    for key, value in method.get_params().items():
        if isinstance(value, TestMethod):
            if key in method.parents:
                parents[key] = _encode(value, f"{prefix}{key}.", tensors) | {"class": value.name}
            value = None  # a source method that is not a parent is not part of the test
        params[key] = list(value) if isinstance(value, tuple) else value
    state = {}
    for name in (*method.state, *_ALWAYS):
        state[name] = _encode_value(getattr(method, name), prefix + name, tensors)
    return {"params": params, "state": state, "parents": parents}


def _encode_value(value: Any, key: str, tensors: dict[str, torch.Tensor]) -> dict:
    if isinstance(value, torch.Tensor):
        tensors[key] = value.detach().cpu().clone()  # a copy: saved tensors share no memory
        return {"tensor": key}
    if isinstance(value, np.ndarray):
        tensors[key] = torch.from_numpy(np.ascontiguousarray(value))
        return {"array": key}
    if isinstance(value, Detector):
        text = value.to_string().encode()
        tensors[key] = torch.frombuffer(bytearray(text), dtype=torch.uint8)
        return {"model": key, "class": type(value).__name__}
    if isinstance(value, tuple):
        return {"tuple": [list(v) if isinstance(v, tuple) else v for v in value]}
    return {"value": value}


def _decode(document: dict, tensors: dict[str, torch.Tensor]) -> TestMethod:
    cls = TestMethod._registry[document["class"]]
    params = {k: tuple(v) if isinstance(v, list) else v for k, v in document["params"].items()}
    for key, parent in (document.get("parents") or {}).items():
        params[key] = _decode(parent, tensors)
    method = cls(**params)
    for name, stored in document["state"].items():
        setattr(method, name, _decode_value(stored, tensors))
    return method


def _decode_value(stored: dict, tensors: dict[str, torch.Tensor]) -> Any:
    if "tensor" in stored:
        return tensors[stored["tensor"]]
    if "array" in stored:
        return tensors[stored["array"]].numpy()
    if "model" in stored:
        text = bytes(tensors[stored["model"]].numpy()).decode()
        return _MODELS[stored["class"]].from_string(text)
    if "tuple" in stored:
        return tuple(tuple(v) if isinstance(v, list) else v for v in stored["tuple"])
    return stored["value"]
