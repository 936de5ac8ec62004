"""Model loading: the same MODEL argument everywhere (zoo name, module:factory, .pt2 archive).

Nothing a user hands in is unpickled: weights load with safetensors or
``torch.load(weights_only=True)``; ``.pt2`` archives with ``torch.export.load``.
"""

from __future__ import annotations

import importlib
import logging
import os
import pickle
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from cimtest.exceptions import ModelError, first_line
from cimtest.fingerprint import state_fingerprint
from cimtest.tasks import TASKS, Task

__all__ = ["LoadedModel", "check_finite", "first_layer", "import_from_cwd", "load_model",
           "load_weights", "reload_model"]

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for cimtest: eval mode, its input shape, task and fingerprint."""

    module: nn.Module
    name: str
    task: Task
    input_shape: tuple[int, ...]
    """Shape of one input without the batch dimension: (F), (C, L) or (C, H, W), e.g.
    (100,), (1, 64) or (1, 8, 8)."""
    output_shape: tuple[int, ...]
    fingerprint: str
    """sha256 of the state dict's canonical bytes (`cimtest.fingerprint.state_fingerprint`)."""
    dataset: str | None = None
    """For zoo models: the built-in data set it was trained on (``"digits"``, ``"mnist"``,
    ``"mnist1d"``; `cimtest.data.builtin_splits` gives it at `input_shape`)."""
    source: str | None = None
    """For zoo models: ``"shipped"`` (the same weights on every machine) or ``"trained here"``
    (numbers vary with the CPU that trained them)."""
    spec: str = ""
    """The MODEL that loads it again: a zoo name, ``module:factory`` or a ``.pt2`` path
    (absolute)."""
    weights: str | None = None
    """The weights file it was loaded with (absolute path), if any."""

    def reference(self) -> dict[str, object]:
        """What a test stores to load this model again (`reload_model`): name, spec, weights
        and input shape."""
        return {"name": self.name, "spec": self.spec, "weights": self.weights,
                "input_shape": list(self.input_shape)}

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
    except pickle.UnpicklingError:
        raise ModelError(f"weights file '{path}' holds pickled Python objects, not only "
                         "tensors; cimtest never unpickles: save a state dict "
                         "(torch.save(model.state_dict(), ...)) or safetensors") from None
    except Exception as exc:  # safetensors and torch raise many types for corrupt files
        raise ModelError(f"cannot read weights file '{path}': {first_line(exc)}") from exc
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



def import_from_cwd(module_name: str) -> object:
    """Import `module_name` as ``python -m`` would: the current directory is searched too."""
    here = os.getcwd()
    if here in sys.path or "" in sys.path:
        return importlib.import_module(module_name)
    sys.path.append(here)  # after everything else: an installed module wins
    try:
        return importlib.import_module(module_name)
    finally:
        sys.path.remove(here)


def _from_factory(spec: str, weights: str | Path | None) -> nn.Module:
    module_name, _, attr = spec.partition(":")
    try:
        factory = getattr(import_from_cwd(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ModelError(f"cannot import model factory '{spec}': {first_line(exc)}") from exc
    try:
        module = factory()
    except Exception as exc:
        raise ModelError(f"model factory '{spec}' failed: {first_line(exc)}") from exc
    if not isinstance(module, nn.Module):
        raise ModelError(f"model factory '{spec}' returned {type(module).__name__}, not a Module")
    if weights is not None:
        _load_state(module, load_weights(weights), str(weights))
    return module


def _from_export(path: Path) -> tuple[nn.Module, tuple[int, ...] | None]:
    if not path.is_file():
        raise ModelError(f"torch.export archive '{path}' does not exist")
    logger = logging.getLogger("torch.export")  # logs a traceback before raising its error
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        program = torch.export.load(str(path))
    except Exception as exc:
        raise ModelError(f"cannot read torch.export archive '{path}': {first_line(exc)}") \
            from exc
    finally:
        logger.setLevel(level)
    shape = None
    args = program.example_inputs[0] if program.example_inputs else ()
    if args and isinstance(args[0], torch.Tensor):
        shape = tuple(args[0].shape[1:])
    return program.module(), shape


_CONV_RANK = {nn.Conv1d: 2, nn.Conv2d: 3, nn.ConvTranspose2d: 3}
"""Input rank (C, L) = 2 or (C, H, W) = 3 of each convolution type, without the batch."""


def first_layer(module: nn.Module) -> tuple[str, nn.Module] | None:
    """The first Linear or convolution of `module` in registration order (name, layer)."""
    for name, layer in module.named_modules():
        if isinstance(layer, (nn.Linear, *_CONV_RANK)):
            return name, layer
    return None


def _shape_hint(module: nn.Module) -> tuple[int | None, int | None]:
    """(input rank, channels) the first layer expects: (2, C) for a Conv1d, (3, C) for a
    Conv2d, (None, None) for a Linear (it may follow a flatten) or none."""
    found = first_layer(module)
    if found is None or isinstance(found[1], nn.Linear):
        return None, None
    layer = found[1]
    return _CONV_RANK[type(layer)], layer.in_channels


def _infer_shape(
    module: nn.Module, spec: str, data: str | Path | None
) -> tuple[int, ...]:
    """The input shape read from `data`'s inputs, else a first Linear's in_features."""
    if data is not None:
        from cimtest.data import data_input_shape

        return data_input_shape(data, *_shape_hint(module))
    found = first_layer(module)
    if found is not None and isinstance(found[1], nn.Linear):
        return (found[1].in_features,)
    if found is not None:
        name, layer = found
        form = "C,L" if isinstance(layer, nn.Conv1d) else "C,H,W"
        raise ModelError(f"cannot infer the input shape of '{spec}' (its first layer '{name}' "
                         f"is a {type(layer).__name__}); give --data or --input-shape {form}")
    raise ModelError(f"cannot infer the input shape of '{spec}'; give --data or --input-shape "
                     "F, C,L or C,H,W")


def _check_rank(module: nn.Module, shape: tuple[int, ...], spec: str) -> list:
    """Forward pre-hooks that refuse an input shape a convolution would read as unbatched
    (a (C, L) input where a Conv2d needs (C, H, W), say); remove them after the forward."""

    def hook(name: str, layer: nn.Module):
        def check(_, args):
            wanted = _CONV_RANK[type(layer)] + 1
            if args and isinstance(args[0], torch.Tensor) and args[0].dim() != wanted:
                form = "(C, L)" if wanted == 3 else "(C, H, W)"
                raise ModelError(
                    f"input shape {shape} does not fit '{spec}': its layer '{name}' "
                    f"({type(layer).__name__}) takes {form} inputs and would get "
                    f"{tuple(args[0].shape[1:])}")
        return check

    return [layer.register_forward_pre_hook(hook(name, layer))
            for name, layer in module.named_modules() if type(layer) in _CONV_RANK]


def _infer_task(output_shape: tuple[int, ...], input_shape: tuple[int, ...]) -> Task:
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
    task: Task | None = None,
    train_if_missing: bool = True,
    data: str | Path | None = None,
) -> LoadedModel:
    """Load MODEL: a zoo name, ``package.module:factory`` or a ``.pt2`` archive (each with
    `weights` instead of its own if given).

    One input is (F), (C, L) or (C, H, W). Its shape is the `input_shape` argument, else
    the zoo entry's, the export archive's or a module attribute ``input_shape``, else that
    of the inputs in `data` (a path `load_data` reads; see `cimtest.data.data_input_shape`),
    else a first Linear layer's ``(in_features,)``. The task is inferred from the output
    shape unless given. A module factory is imported as ``python -m`` would, the current
    directory included. NaN/Inf weights, missing or unexpected keys and shape mismatches
    raise `ModelError` naming the layer; so does an input shape the model cannot take.
    """
    from cimtest import zoo

    dataset = source = None
    if spec.endswith(".pt2"):
        module, shape = _from_export(Path(spec))
        if weights is not None:  # a chip's weights in the archive's graph
            _load_state(module, load_weights(weights), str(weights))
        input_shape = input_shape or shape
        name = Path(spec).stem
    elif ":" in spec:
        module = _from_factory(spec, weights)
        input_shape = input_shape or getattr(module, "input_shape", None)
        name = spec
        if input_shape is None:
            input_shape = _infer_shape(module, spec, data)
    else:
        entry = zoo.get_entry(spec)
        if weights is not None:
            module = entry.build()
            _load_state(module, load_weights(weights), str(weights))
        else:
            module, metadata = zoo.load_trained(spec, train_if_missing=train_if_missing)
            source = metadata["source"]
        input_shape, task, name = entry.input_shape, task or entry.task, entry.name
        dataset = entry.dataset
    if input_shape is None:
        raise ModelError(f"cannot infer the input shape of '{spec}'; give --input-shape "
                         "F, C,L or C,H,W")
    input_shape = tuple(int(v) for v in input_shape)
    if not 1 <= len(input_shape) <= 3 or min(input_shape) < 1:
        raise ModelError(f"input shape {input_shape} of '{spec}': one input is (F), (C, L) or "
                         "(C, H, W) of positive sizes")
    if not spec.endswith(".pt2"):
        module = module.eval()
    check_finite(module)
    hooks = _check_rank(module, input_shape, spec)
    try:
        with torch.no_grad():
            out = module(torch.zeros(2, *input_shape))
    except ModelError:
        raise
    except Exception as exc:
        hint = " (export it with a dynamic batch dimension)" if spec.endswith(".pt2") else ""
        raise ModelError(
            f"model '{spec}' fails on a batch of inputs of shape {input_shape}{hint}: "
            f"{first_line(exc)}"
        ) from exc
    finally:
        for handle in hooks:
            handle.remove()
    if not isinstance(out, torch.Tensor) or out.dim() < 2 or out.shape[0] != 2:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelError(f"model '{spec}' on a batch of 2 inputs of shape {input_shape} returns "
                         f"{got}, not one output per input")
    output_shape = tuple(out.shape[1:])
    task = task or _infer_task(output_shape, tuple(input_shape))
    if task not in TASKS:
        raise ModelError(f"unknown task '{task}'; known: {', '.join(TASKS)}")
    _logger.info("loaded %s (%s, input %s)", name, task, input_shape)
    return LoadedModel(
        spec=str(Path(spec).resolve()) if spec.endswith(".pt2") else spec,
        weights=None if weights is None else str(Path(weights).resolve()),
        module=module,
        name=name,
        task=task,
        input_shape=tuple(input_shape),
        output_shape=output_shape,
        fingerprint=state_fingerprint(module),
        dataset=dataset,
        source=source,
    )


def reload_model(
    reference: object,
    *,
    weights: str | Path | None = None,
    input_shape: tuple[int, ...] | None = None,
    task: Task | None = None,
) -> LoadedModel:
    """Load again the model a test remembers (`LoadedModel.reference`), with `weights`
    instead of the remembered ones if given, without training a zoo model. A zoo name or a
    ``.pt2`` archive only: a ``module:factory`` would run code that a file names.

    Raises
    ------
    ModelError
        If the test remembers no model, names a ``module:factory`` (load it with
        `load_model`), or it cannot be loaded again (a moved weights file, a zoo model not
        trained here).
    """
    spec = reference.get("spec") if isinstance(reference, dict) else None
    if not isinstance(spec, str) or not spec:
        raise ModelError("the test does not name the model it was fitted for")
    if ":" in spec and not spec.endswith(".pt2"):
        raise ModelError("a module:factory that a file names is not imported (it runs code)")
    stored, shape = reference.get("weights"), reference.get("input_shape")
    if input_shape is None and isinstance(shape, list) and shape:
        input_shape = tuple(int(v) for v in shape)
    return load_model(spec, weights=weights if weights is not None else stored,
                      input_shape=input_shape, task=task, train_if_missing=False)
