"""Forward chips that differ from the ideal chip in few weights: ideal layers plus corrections.

A mapped layer is linear in its weight, so a chip's layer ``f(x; W + Δ)`` is the ideal
``f(x; W)`` plus ``f(x; Δ)`` without bias. With chips folded into the batch, the ideal
layers run once on every chip's inputs (one dense convolution at the speed of the ideal
model), and each chip's few edited weights add ``δ`` times the input values they read.
Cell faults at rates of interest (a few hundred edited weights per chip) cost a fraction
of a dense forward this way, and no chip's weight row is ever copied.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator

import torch
from torch import nn
from torch.nn import functional as F

from cimtest.faults import SparseEdits
from cimtest.hardware import MappedModel

__all__ = ["DELTA_TYPES", "SAMPLES_PER_CALL", "DeltaForward", "SparsePathError"]

DELTA_TYPES = (nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
"""Mapped layer types the sparse corrections cover (zero-padded and transposed convolutions
with any stride, dilation, groups and output padding, and linear layers); a model with a
convolution padded otherwise (reflect, circular, "same") runs on the dense path."""

SAMPLES_PER_CALL = 128
"""Samples (chips x inputs per chip) in every call of the ideal layers; see `__call__`.
The fixed group keeps a chip's outputs bit-identical whatever its chunk; 128 was the best of
32, 64, 128 and 256 across the zoo (docs/engine.md); a population smaller than one group pays
for the padding."""
_GATHER = 1 << 22
"""Gathered input values per correction step (bounds the memory of one step)."""


class SparsePathError(RuntimeError):
    """The model reads a mapped layer's weight itself (e.g. tied weights), which the sparse
    corrections cannot follow; the engine then runs the model on the dense path."""


class _DeltaLayer(nn.Module):
    """A mapped layer that adds the corrections of its chips' edited weights to its output."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer
        self.edits: tuple[torch.Tensor, torch.Tensor, torch.Tensor, int] | None = None
        """Set for one call: (chip, weight index in the layer, delta, inputs per chip)."""

    @property
    def weight(self) -> torch.Tensor:
        """Not available: the corrections apply only where the model calls the layer."""
        raise SparsePathError("the model reads a mapped layer's weight outside the layer's "
                              "forward (tied or shared weights)")

    @property
    def bias(self) -> torch.Tensor | None:
        """The ideal layer's bias (chips share it)."""
        return self.layer.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layer(x)
        if self.edits is None or self.edits[0].numel() == 0:
            return out
        chip, index, delta, per_chip = self.edits
        if isinstance(self.layer, nn.Linear):
            return _linear_correction(self.layer, x, out, chip, index, delta, per_chip)
        if isinstance(self.layer, nn.ConvTranspose2d):
            return _transposed_correction(self.layer, x, out, chip, index, delta, per_chip)
        return _conv_correction(self.layer, x, out, chip, index, delta, per_chip)


class DeltaForward:
    """Evaluate chips given as `SparseEdits` of the ideal chip: ``(B chips) x inputs ->
    (B, N, *out)``, agreeing with `BatchedForward` on the same weights to float rounding."""

    def __init__(self, mapped: MappedModel) -> None:
        if not self.supports(mapped):
            raise ValueError("the model has a mapped layer the sparse corrections do not cover")
        self.mapped = mapped
        self.module = copy.deepcopy(mapped.ideal)
        self.layers: list[_DeltaLayer] = []
        for layer in mapped.layers:
            parent_name, _, child = layer.name.rpartition(".")
            parent = self.module.get_submodule(parent_name)
            wrapped = _DeltaLayer(getattr(parent, child))
            setattr(parent, child, wrapped)
            self.layers.append(wrapped)
        self._starts = torch.tensor(mapped.offsets[:-1])

    @staticmethod
    def supports(mapped: MappedModel) -> bool:
        """Whether every mapped layer is a `DELTA_TYPES` layer with numeric zero padding."""
        for layer in mapped.layers:
            module = mapped.ideal.get_submodule(layer.name)
            if type(module) not in DELTA_TYPES:
                return False
            if isinstance(module, nn.Conv1d | nn.Conv2d) and (
                    module.padding_mode != "zeros" or isinstance(module.padding, str)):
                return False
        return True

    @torch.no_grad()
    def __call__(self, edits: SparseEdits, x: torch.Tensor, *, per_chip_input: bool = False
                 ) -> torch.Tensor:
        """Outputs of the chips of `edits` on `x`: (N, *input_shape) shared by every chip,
        or with ``per_chip_input`` (B, N, *input_shape). Returns float32 (B, N, *out).

        The ideal layers always run on `SAMPLES_PER_CALL` samples' worth of chips (the last
        group padded with ideal chips): CPU kernels pick their blocking from the batch size,
        and a fixed size keeps a chip's outputs bit-identical whatever the chunk.
        """
        n_chips = edits.n_rows
        per_chip = x.shape[1] if per_chip_input else x.shape[0]
        group = max(1, SAMPLES_PER_CALL // per_chip)
        row, col, delta = edits.entries()
        layer = torch.searchsorted(self._starts, col, right=True) - 1
        index = col - self._starts[layer]
        cuts = torch.searchsorted(row, torch.arange(0, n_chips + group, group)).tolist()
        outputs = []
        for start, (lo, hi) in zip(range(0, n_chips, group), itertools.pairwise(cuts)):
            stop = min(start + group, n_chips)
            if per_chip_input:
                inputs = x[start:stop]
                if stop - start < group:
                    inputs = torch.cat([inputs, x[:1].expand(group - (stop - start),
                                                             *x.shape[1:])])
                inputs = inputs.reshape(-1, *x.shape[2:])
            else:
                inputs = x.repeat(group, *([1] * (x.dim() - 1)))
            out = self._forward(inputs, row[lo:hi] - start, layer[lo:hi], index[lo:hi],
                                delta[lo:hi], per_chip)
            outputs.append(out.reshape(group, per_chip, *out.shape[1:])[: stop - start])
        return torch.cat(outputs)

    def _forward(self, inputs: torch.Tensor, chip: torch.Tensor, layer: torch.Tensor,
                 index: torch.Tensor, delta: torch.Tensor, per_chip: int) -> torch.Tensor:
        """One call of the ideal layers with each layer's corrections set."""
        try:
            for number, wrapped in enumerate(self.layers):
                mine = layer == number
                wrapped.edits = (chip[mine], index[mine], delta[mine], per_chip)
            return self.module(inputs)
        finally:
            for wrapped in self.layers:
                wrapped.edits = None


def _steps(chip: torch.Tensor, per_chip: int, step: int
           ) -> Iterator[tuple[slice, torch.Tensor]]:
    """The edits in runs of `step`: each run's slice and its samples, (E, per_chip) indices
    of the chip's inputs in the folded batch."""
    for lo in range(0, chip.numel(), step):
        part = slice(lo, lo + step)
        yield part, chip[part, None] * per_chip + torch.arange(per_chip)


def _conv_correction(layer: nn.Conv1d | nn.Conv2d, x: torch.Tensor, out: torch.Tensor,
                     chip: torch.Tensor, index: torch.Tensor, delta: torch.Tensor,
                     per_chip: int) -> torch.Tensor:
    """``out`` plus, for each edited weight (o, c, ki, kj) of a chip, delta times the input
    values it reads, at every output position of that chip's samples."""
    if x.dim() == 3:  # Conv1d as a Conv2d of height 1
        kernel, stride, padding, dilation = ((1, *layer.kernel_size), (1, *layer.stride),
                                             (0, *layer.padding), (1, *layer.dilation))
        x, result = x.unsqueeze(2), out.unsqueeze(2)
    else:
        kernel, stride, padding, dilation = (layer.kernel_size, layer.stride, layer.padding,
                                             layer.dilation)
        result = out
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    n_out, in_per_group = layer.out_channels, layer.in_channels // layer.groups
    out_per_group = n_out // layer.groups
    o, c, ki, kj = torch.unravel_index(index, (n_out, in_per_group, kh, kw))
    channel = (o // out_per_group) * in_per_group + c
    padded = F.pad(x, (pw, pw, ph, ph))
    h_out, w_out = result.shape[-2:]
    flat = result.view(-1, h_out, w_out)  # (samples * out channels, H, W)
    step = max(1, _GATHER // (per_chip * h_out * w_out))
    for part, sample in _steps(chip, per_chip, step):
        rows = ki[part, None] * dh + sh * torch.arange(h_out)
        cols = kj[part, None] * dw + sw * torch.arange(w_out)
        values = padded[sample[:, :, None, None], channel[part, None, None, None],
                        rows[:, None, :, None], cols[:, None, None, :]]
        values.mul_(delta[part, None, None, None])
        target = (sample * n_out + o[part, None]).flatten()
        flat.index_add_(0, target, values.reshape(-1, h_out, w_out))
    return out


def _transposed_correction(layer: nn.ConvTranspose2d, x: torch.Tensor, out: torch.Tensor,
                           chip: torch.Tensor, index: torch.Tensor, delta: torch.Tensor,
                           per_chip: int) -> torch.Tensor:
    """``out`` plus, for each edited weight (c, o, ki, kj) of a chip, delta times input
    channel c scattered to the output positions ``i * stride - padding + k * dilation``."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (layer.kernel_size, layer.stride, layer.padding,
                                              layer.dilation)
    n_out, in_per_group = layer.out_channels, layer.in_channels // layer.groups
    out_per_group = n_out // layer.groups
    c, o, ki, kj = torch.unravel_index(index, (layer.in_channels, out_per_group, kh, kw))
    channel_out = (c // in_per_group) * out_per_group + o
    h_in, w_in = x.shape[-2:]
    h_out, w_out = out.shape[-2:]
    flat = out.view(-1)
    step = max(1, _GATHER // (per_chip * h_in * w_in))
    for part, sample in _steps(chip, per_chip, step):
        values = x[sample, c[part, None]] * delta[part, None, None, None]  # (E, n, H, W)
        rows = torch.arange(h_in) * sh - ph + ki[part, None] * dh  # (E, H)
        cols = torch.arange(w_in) * sw - pw + kj[part, None] * dw  # (E, W)
        valid = (((rows >= 0) & (rows < h_out))[:, None, :, None]
                 & ((cols >= 0) & (cols < w_out))[:, None, None, :])
        target = (((sample * n_out + channel_out[part, None])[:, :, None, None] * h_out
                   + rows[:, None, :, None]) * w_out + cols[:, None, None, :])
        valid = valid.expand_as(target)
        flat.index_add_(0, target[valid], values[valid])
    return out


def _linear_correction(layer: nn.Linear, x: torch.Tensor, out: torch.Tensor,
                       chip: torch.Tensor, index: torch.Tensor, delta: torch.Tensor,
                       per_chip: int) -> torch.Tensor:
    """``out`` plus, for each edited weight (o, i) of a chip, delta times input feature i
    of that chip's samples."""
    n_out, n_in = layer.out_features, layer.in_features
    samples = x.shape[0]
    x3 = x.reshape(samples, -1, n_in)
    middle = x3.shape[1]
    o, i = index // n_in, index % n_in
    correction = torch.zeros(samples * n_out, middle, dtype=out.dtype)
    step = max(1, _GATHER // (per_chip * middle))
    for part, sample in _steps(chip, per_chip, step):
        values = x3[sample[:, :, None], torch.arange(middle), i[part, None, None]]
        values.mul_(delta[part, None, None])
        target = (sample * n_out + o[part, None]).flatten()
        correction.index_add_(0, target, values.reshape(-1, middle))
    out3 = out.view(samples, middle, n_out)
    out3 += correction.view(samples, n_out, middle).transpose(1, 2)
    return out
