"""What every method needs of a model: its module, input shape, fingerprint and ideal chip."""

from __future__ import annotations

import torch
from torch import nn

from cimtest._device import DeviceLike
from cimtest.engine import Population
from cimtest.exceptions import ConfigError
from cimtest.fingerprint import state_fingerprint
from cimtest.loading import LoadedModel

__all__ = ["ideal_chip", "model_reference", "module_device", "resolve_model"]


def resolve_model(
    model: LoadedModel | nn.Module,
) -> tuple[nn.Module, tuple[int, ...], str, str | None]:
    """(module, input shape, fingerprint, built-in data set or None) of a loaded model or
    module."""
    if isinstance(model, LoadedModel):
        return model.module, tuple(model.input_shape), model.fingerprint, model.dataset
    shape = getattr(model, "input_shape", None)
    if shape is None:
        raise ConfigError("cannot infer the model's input shape; give the module an "
                          "input_shape attribute or pass a LoadedModel")
    return model, tuple(int(v) for v in shape), state_fingerprint(model), None


def model_reference(model: LoadedModel | nn.Module) -> dict | None:
    """How a test can load `model` again (`LoadedModel.reference`); None for a bare module."""
    return model.reference() if isinstance(model, LoadedModel) else None


def ideal_chip(module: nn.Module, seed: int, device: DeviceLike = None
               ) -> tuple[Population, nn.Module]:
    """The ideal chip of `module` on `device` as a population of one and as a module out of
    autograd."""
    population = Population(module, "none", seed, n=1, device=device)
    ideal = population.mapped.ideal
    for parameter in ideal.parameters():
        parameter.requires_grad_(False)
    return population, ideal


def module_device(module: nn.Module) -> torch.device:
    """The device of `module`'s first parameter (the CPU without parameters)."""
    parameter = next(module.parameters(), None)
    return torch.device("cpu") if parameter is None else parameter.device
