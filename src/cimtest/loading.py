"""Model loading: the same MODEL argument everywhere (zoo name, module:factory, .pt2 archive).

Nothing a user hands in is unpickled: weights load with safetensors or
``torch.load(weights_only=True)``; ``.pt2`` archives with ``torch.export.load``.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from cimtest.exceptions import ModelError
from cimtest.fingerprint import state_fingerprint

__all__ = ["LoadedModel", "check_finite", "load_model", "load_weights"]

_logger = logging.getLogger(__name__)

TASKS = ("classification", "segmentation", "generation", "discrimination")


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for cimtest: eval mode, its input shape, task and fingerprint."""

    module: nn.Module
    name: str
    task: str
    input_shape: tuple[int, ...]
    """Shape of one input without the batch dimension, e.g. (1, 8, 8) or (100,)."""
    output_shape: tuple[int, ...]
    fingerprint: str
    """sha256 of the state dict's canonical bytes (`cimtest.fingerprint.state_fingerprint`)."""
    data_size: int | None = None
    """For zoo models: the digits size the model was trained on (8, 16 or 32)."""
    source: str | None = None
    """For zoo models: ``"shipped"`` (the same weights on every machine) or ``"trained here"``
    (numbers vary with the CPU that trained them)."""

    @property
    def num_classes(self) -> int | None:
        """Classes of a classifier or segmenter (first output dimension), else None."""
        if self.task in ("classification", "segmentation"):
            return self.output_shape[0]
        return None


def check_finite(module: nn.Module) -> None:
    """Raise `ModelError` naming the first parameter or buffer holding NaN or Inf."""
    for name, tensor in list(module.named_parameters()) + list(module.named_buffers()):
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ModelError(f"model weight '{name}' holds NaN or Inf values")


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` or ``.pt``/``.pth`` (weights only, no pickle)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"weights file '{path}' does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # safetensors and torch raise many types for corrupt files
        raise ModelError(f"cannot read weights file '{path}': {exc}") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"weights file '{path}' does not hold a state dict of tensors")
    return state


def _load_state(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing:
        raise ModelError(f"{source}: missing weights for layer(s) {', '.join(missing[:5])}")
    if unexpected:
        raise ModelError(f"{source}: unexpected weights {', '.join(unexpected[:5])}")
    for key, tensor in state.items():
        if tuple(tensor.shape) != tuple(own[key].shape):
            raise ModelError(
                f"{source}: shape mismatch for '{key}': model has {tuple(own[key].shape)}, "
                f"file has {tuple(tensor.shape)}"
            )
    module.load_state_dict(state)


def _from_factory(spec: str, weights: str | Path | None) -> nn.Module:
    module_name, _, attr = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ModelError(f"cannot import model factory '{spec}': {exc}") from exc
    try:
        module = factory()
    except Exception as exc:
        raise ModelError(f"model factory '{spec}' failed: {exc}") from exc
    if not isinstance(module, nn.Module):
        raise ModelError(f"model factory '{spec}' returned {type(module).__name__}, not a Module")
    if weights is not None:
        _load_state(module, load_weights(weights), str(weights))
    return module


def _from_export(path: Path) -> tuple[nn.Module, tuple[int, ...] | None]:
    try:
        program = torch.export.load(str(path))
    except Exception as exc:
        raise ModelError(f"cannot read torch.export archive '{path}': {exc}") from exc
    shape = None
    args = program.example_inputs[0] if program.example_inputs else ()
    if args and isinstance(args[0], torch.Tensor):
        shape = tuple(args[0].shape[1:])
    return program.module(), shape


def _infer_task(output_shape: tuple[int, ...], input_shape: tuple[int, ...]) -> str:
    if len(output_shape) == 1:
        return "discrimination" if output_shape[0] == 1 else "classification"
    if len(input_shape) == 1:
        return "generation"
    return "segmentation"


def load_model(
    spec: str,
    *,
    weights: str | Path | None = None,
    input_shape: tuple[int, ...] | None = None,
    task: str | None = None,
    train_if_missing: bool = True,
) -> LoadedModel:
    """Load MODEL: a zoo name, ``package.module:factory`` (+ `weights`), or a ``.pt2`` archive.

    The input shape comes from the zoo entry, the export archive, a module attribute
    ``input_shape``, or the `input_shape` argument; the task is inferred from the output
    shape unless given. NaN/Inf weights, missing or unexpected keys and shape mismatches
    raise `ModelError` naming the layer.
    """
    from cimtest import zoo

    data_size = source = None
    if spec.endswith(".pt2"):
        module, shape = _from_export(Path(spec))
        input_shape = input_shape or shape
        name = Path(spec).stem
    elif ":" in spec:
        module = _from_factory(spec, weights)
        input_shape = input_shape or getattr(module, "input_shape", None)
        name = spec
    else:
        entry = zoo.get_entry(spec)
        if weights is not None:
            module = entry.build()
            _load_state(module, load_weights(weights), str(weights))
        else:
            module, metadata = zoo.load_trained(spec, train_if_missing=train_if_missing)
            source = metadata["source"]
        input_shape, task, name = entry.input_shape, task or entry.task, entry.name
        data_size = entry.data_size
    if input_shape is None:
        raise ModelError(f"cannot infer the input shape of '{spec}'; give --input-shape C,H,W")
    if not spec.endswith(".pt2"):
        module = module.eval()
    check_finite(module)
    try:
        with torch.no_grad():
            out = module(torch.zeros(2, *input_shape))
    except Exception as exc:
        hint = " (export it with a dynamic batch dimension)" if spec.endswith(".pt2") else ""
        raise ModelError(
            f"model '{spec}' fails on a batch of inputs of shape {input_shape}{hint}: {exc}"
        ) from exc
    output_shape = tuple(out.shape[1:])
    task = task or _infer_task(output_shape, tuple(input_shape))
    if task not in TASKS:
        raise ModelError(f"unknown task '{task}'; known: {', '.join(TASKS)}")
    _logger.info("loaded %s (%s, input %s)", name, task, input_shape)
    return LoadedModel(
        module=module,
        name=name,
        task=task,
        input_shape=tuple(input_shape),
        output_shape=output_shape,
        fingerprint=state_fingerprint(module),
        data_size=data_size,
        source=source,
    )
