"""Reads of each crossbar layer with known inputs: what a chip's own remedies measure.

A chip in the field has no data, but the tester knows the test's inputs and the model: it
can drive every mapped layer with that layer's input on the ideal chip (the test's inputs
propagated through the model offline) and read the layer's output, bias excluded. Global
drift compensation compares a chip's read with its own read right after programming;
re-calibration fits each output channel's gain to the ideal chip's read.
"""

from __future__ import annotations

import copy
import threading

import torch
from torch import nn
from torch.func import functional_call

from cimtest._reproducible import mkl_single_threaded
from cimtest._threads import parallel_map
from cimtest.hardware import MappedModel

__all__ = ["LayerReads"]

_FLOOR = 1e-30
"""A read this small (a layer whose weights all read 0) leaves its scale at 1."""


class LayerReads:
    """Every mapped layer of `mapped` read with its input on the ideal chip for inputs `x`.

    Each chip's reads run on one thread (MKL's included), so its scales and gains do not
    depend on the chips beside it or on the thread count (results stay chunk-invariant).
    """

    def __init__(self, mapped: MappedModel, x: torch.Tensor) -> None:
        self.mapped = mapped
        self.modules = [mapped.ideal.get_submodule(layer.name) for layer in mapped.layers]
        self.shapes = [layer.geometry.weight_shape for layer in mapped.layers]
        self.spans = list(zip(mapped.offsets[:-1], mapped.offsets[1:], strict=True))
        self.inputs = _layer_inputs(mapped.ideal, self.modules, x)
        self._local = threading.local()
        self.ideal = self.read(mapped.reference)

    def read(self, row: torch.Tensor) -> list[torch.Tensor]:
        """Each layer's output without bias, float64, for one chip's weight row (P,)."""
        outputs = []
        with torch.no_grad(), mkl_single_threaded():
            for module, shape, (lo, hi), x in zip(self._own_modules(), self.shapes, self.spans,
                                                  self.inputs, strict=True):
                params = {"weight": row[lo:hi].reshape(shape)}
                if getattr(module, "bias", None) is not None:
                    params["bias"] = torch.zeros_like(module.bias)
                outputs.append(functional_call(module, params, (x,)).double())
        return outputs

    def _own_modules(self) -> list[nn.Module]:
        """This thread's copies of the layers: `functional_call` swaps a module's weight in
        place, so threads reading chips at once must not share one."""
        modules = getattr(self._local, "modules", None)
        if modules is None:
            modules = self._local.modules = [copy.deepcopy(m) for m in self.modules]
        return modules

    def sizes(self, rows: torch.Tensor) -> torch.Tensor:
        """Each chip's read magnitude per layer, ``sum |y_l|``, float64 (B, L) for rows
        (B, P): the reference a global drift compensation keeps."""
        return self._per_chip(rows, lambda row: torch.stack([y.abs().sum()
                                                             for y in self.read(row)]))

    def compensate(self, rows: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """Global drift compensation in place: each chip's layer ``l`` scaled by
        ``reference[i, l] / sum |y_l|`` (its read right after programming over its read
        now), one scale per layer as aihwkit's ``GlobalDriftCompensation`` applies per
        tile. Returns `rows`."""
        return self.scale(rows, reference / self.sizes(rows).clamp_min(_FLOOR))

    def gains(self, rows: torch.Tensor) -> torch.Tensor:
        """Least-squares gain of each layer that brings each chip's reads to the ideal
        chip's, ``g_l = <y*_l, y_l> / <y_l, y_l>`` over every output of every read, float64
        (B, L). One gain per layer, not per output channel: the test's few inputs give a
        channel of a linear layer as few values as the test has inputs, too few to fit on."""
        def fit(row: torch.Tensor) -> torch.Tensor:
            return torch.stack([(ideal * y).sum() / (y * y).sum().clamp_min(_FLOOR)
                                for y, ideal in zip(self.read(row), self.ideal, strict=True)])
        return self._per_chip(rows, fit)

    def scale(self, rows: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
        """Scale each chip's layer ``l`` in place by ``scales[i, l]`` (float64 (B, L)).
        Returns `rows`."""
        for i in range(rows.shape[0]):
            for (lo, hi), s in zip(self.spans, scales[i].tolist(), strict=True):
                rows[i, lo:hi].mul_(s)
        return rows

    @staticmethod
    def _per_chip(rows: torch.Tensor, fn) -> torch.Tensor:
        """``fn`` of each chip's row, stacked: chips spread over torch's threads, each
        chip's reads on one thread (the reads are far too small to share one)."""
        return torch.stack(parallel_map(lambda i: fn(rows[i]), range(rows.shape[0])))


def _layer_inputs(model: nn.Module, modules: list[nn.Module], x: torch.Tensor
                  ) -> list[torch.Tensor]:
    """The input of each of `modules` when `model` runs on `x` (one forward, by hooks)."""
    seen: dict[int, torch.Tensor] = {}

    def keep(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        seen.setdefault(id(module), inputs[0].detach().clone())

    handles = [m.register_forward_pre_hook(keep) for m in modules]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return [seen[id(m)] for m in modules]
