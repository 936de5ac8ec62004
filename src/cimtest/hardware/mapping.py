"""Crossbar mapping: mapped layers' weights as ``rows x cols`` matrices tiled into arrays.

Conv1d/Conv2d weight (out, in/groups, *k) → rows = (in/groups)·prod(k), cols = out
(grouped and depthwise convs use the compact form: each group's columns read only the
rows of its own inputs, driven in their own cycle). ConvTranspose2d weight
(in, out/groups, kh, kw) → rows = in, cols = (out/groups)·kh·kw. Linear (out, in) →
rows = in, cols = out. A matrix is tiled row-major into arrays of ``array_size`` cells
(zero padded); ``array_size=None`` keeps one array per layer.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn

from cimtest.exceptions import ConfigError, ModelError
from cimtest.hardware.cells import cells_per_weight
from cimtest.hardware.quant import dequantise, quantise

__all__ = [
    "MAPPED_TYPES",
    "CrossbarGeometry",
    "MappedLayer",
    "MappedModel",
    "from_crossbar",
    "map_model",
    "mapped_layers",
    "tile",
    "to_crossbar",
    "untile",
]

MAPPED_TYPES = (nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
"""Layers whose weights a chip stores in crossbars; everything else stays digital."""


@dataclass(frozen=True)
class CrossbarGeometry:
    """Shape of one layer on the chip: its matrix and the arrays that hold it."""

    kind: str
    """``"conv"``, ``"convT"`` or ``"linear"``: which rule turns the weight into a matrix."""
    weight_shape: tuple[int, ...]
    rows: int
    cols: int
    array_rows: int
    array_cols: int

    @property
    def tiles(self) -> tuple[int, int]:
        """Arrays along rows and along columns."""
        return math.ceil(self.rows / self.array_rows), math.ceil(self.cols / self.array_cols)

    @property
    def arrays(self) -> int:
        """Number of arrays the layer occupies."""
        tr, tc = self.tiles
        return tr * tc

    def crossbar_index(self) -> torch.Tensor:
        """For each weight element (torch's flat order), its flat index in the array stack.

        The array stack has shape (arrays, array_rows, array_cols); int64 of shape (numel,).
        """
        numel = math.prod(self.weight_shape)
        ids = to_crossbar(torch.arange(numel).reshape(self.weight_shape), self.kind)
        r = torch.arange(self.rows).unsqueeze(1).expand(self.rows, self.cols)
        c = torch.arange(self.cols).unsqueeze(0).expand(self.rows, self.cols)
        tile_id = (r // self.array_rows) * self.tiles[1] + c // self.array_cols
        flat = (tile_id * self.array_rows + r % self.array_rows) * self.array_cols
        flat = flat + c % self.array_cols
        index = torch.empty(numel, dtype=torch.int64)
        index[ids.reshape(-1)] = flat.reshape(-1)
        return index


def _kind(module: nn.Module) -> str:
    if isinstance(module, nn.ConvTranspose2d):
        return "convT"
    if isinstance(module, nn.Linear):
        return "linear"
    return "conv"


_GRAPH_KINDS = {
    "aten.conv1d.default": "conv",
    "aten.conv2d.default": "conv",
    "aten.conv_transpose2d.input": "convT",
    "aten.linear.default": "linear",
}


def mapped_layers(model: nn.Module) -> list[tuple[str, str]]:
    """(name, kind) of every mapped layer, in model order; its weight is ``name + '.weight'``.

    Layers are found by module type, or, for a `torch.export` graph module (whose layers
    are aten calls, not modules), by the aten convolution and linear calls on parameters.
    """
    found = [(name, _kind(m)) for name, m in model.named_modules() if isinstance(m, MAPPED_TYPES)]
    graph = getattr(model, "graph", None)
    if found or graph is None:
        return found
    for node in graph.nodes:
        kind = _GRAPH_KINDS.get(str(node.target)) if node.op == "call_function" else None
        weight = node.args[1] if kind and len(node.args) > 1 else None
        target = getattr(weight, "target", "")
        if getattr(weight, "op", None) == "get_attr" and target.endswith(".weight"):
            found.append((target[: -len(".weight")], kind))
    return found


def _eval(model: nn.Module) -> nn.Module:
    """Eval mode; an exported graph module is already in inference form and refuses `eval()`."""
    try:
        return model.eval()
    except NotImplementedError:
        return model


def to_crossbar(weight: torch.Tensor, kind: str) -> torch.Tensor:
    """Return the (rows, cols) crossbar matrix of a layer's `weight` (a view where possible)."""
    if kind == "conv":
        return weight.reshape(weight.shape[0], -1).T
    if kind == "convT":
        return weight.reshape(weight.shape[0], -1)
    return weight.T


def from_crossbar(matrix: torch.Tensor, kind: str, weight_shape: tuple[int, ...]) -> torch.Tensor:
    """Inverse of `to_crossbar`: the layer weight of `weight_shape` stored in `matrix`."""
    if kind == "conv":
        return matrix.T.reshape(weight_shape)
    if kind == "convT":
        return matrix.reshape(weight_shape)
    return matrix.T.reshape(weight_shape)


def tile(matrix: torch.Tensor, geometry: CrossbarGeometry) -> torch.Tensor:
    """Cut a (rows, cols) matrix into zero-padded arrays, shape (arrays, array_rows, array_cols)."""
    tr, tc = geometry.tiles
    ar, ac = geometry.array_rows, geometry.array_cols
    padded = matrix.new_zeros(tr * ar, tc * ac)
    padded[: geometry.rows, : geometry.cols] = matrix
    return padded.reshape(tr, ar, tc, ac).permute(0, 2, 1, 3).reshape(tr * tc, ar, ac)


def untile(arrays: torch.Tensor, geometry: CrossbarGeometry) -> torch.Tensor:
    """Inverse of `tile`: the (rows, cols) matrix held by the arrays."""
    tr, tc = geometry.tiles
    ar, ac = geometry.array_rows, geometry.array_cols
    padded = arrays.reshape(tr, tc, ar, ac).permute(0, 2, 1, 3).reshape(tr * ar, tc * ac)
    return padded[: geometry.rows, : geometry.cols]


@dataclass(frozen=True)
class MappedLayer:
    """One mapped layer: where its weight lives in the model and on the chip."""

    name: str
    """Module name in the model, e.g. ``layer1.0.conv1``; its parameter is ``name + '.weight'``."""
    geometry: CrossbarGeometry
    scale: float
    """int8 quantisation scale of the layer (``max|W| / 127``)."""
    max_abs: float
    """``max|W|`` of the float weights (the additive variation's unit)."""

    @property
    def numel(self) -> int:
        """Number of mapped weights."""
        return math.prod(self.geometry.weight_shape)


@dataclass(frozen=True)
class MappedModel:
    """A model as a chip stores it: the ideal chip and its int8 reference weights.

    ``codes`` (int8) and ``reference`` (float32, the dequantised codes) are flat vectors of
    all mapped weights, layer after layer in model order; ``offsets[k]`` is where layer
    ``k`` starts (``offsets[-1]`` = total). They are read-only references: chips are
    rebuilt from them, never written into them.
    """

    ideal: nn.Module
    layers: tuple[MappedLayer, ...]
    codes: torch.Tensor
    reference: torch.Tensor
    offsets: tuple[int, ...]
    bits_per_cell: int

    @property
    def cells(self) -> int:
        """Memristive cells holding all mapped weights."""
        return self.reference.numel() * cells_per_weight(self.bits_per_cell)

    def layer_weights(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Split flat weights of shape (..., P) into parameter tensors (..., *weight_shape)."""
        lead = flat.shape[:-1]
        return {
            f"{layer.name}.weight": flat[..., lo:hi].reshape(*lead, *layer.geometry.weight_shape)
            for layer, lo, hi in zip(self.layers, self.offsets[:-1], self.offsets[1:])
        }


def map_model(
    model: nn.Module,
    *,
    array_size: tuple[int, int] | None = None,
    bits_per_cell: int = 1,
) -> MappedModel:
    """Quantise every mapped layer of `model` and build its ideal chip and crossbar geometry.

    The float model is not changed; the ideal chip is a deep copy in eval mode whose mapped
    weights are the dequantised int8 codes.
    """
    cells_per_weight(bits_per_cell)
    if array_size is not None and (len(array_size) != 2 or min(array_size) < 1):
        raise ConfigError(f"array size must be two positive ints ROWSxCOLS; got {array_size!r}")
    ideal = _eval(copy.deepcopy(model))
    parameters = dict(ideal.named_parameters())
    layers, codes, refs, offsets = [], [], [], [0]
    for name, kind in mapped_layers(ideal):
        weight = parameters[f"{name}.weight"]
        if not torch.isfinite(weight).all():
            raise ModelError(f"layer '{name}' has NaN or Inf weights")
        rows, cols = to_crossbar(weight, kind).shape
        ar, ac = array_size if array_size is not None else (rows, cols)
        geometry = CrossbarGeometry(kind, tuple(weight.shape), rows, cols, ar, ac)
        max_abs = float(weight.detach().abs().max())
        q, scale = quantise(weight)
        deq = dequantise(q, scale)
        with torch.no_grad():
            weight.copy_(deq)
        layers.append(MappedLayer(name, geometry, scale, max_abs))
        codes.append(q.reshape(-1))
        refs.append(deq.reshape(-1))
        offsets.append(offsets[-1] + q.numel())
    if not layers:
        raise ModelError("the model has no mapped layer (Conv1d/Conv2d/ConvTranspose2d/Linear)")
    for p in ideal.parameters():
        p.requires_grad_(False)
    return MappedModel(
        ideal=ideal,
        layers=tuple(layers),
        codes=torch.cat(codes),
        reference=torch.cat(refs),
        offsets=tuple(offsets),
        bits_per_cell=bits_per_cell,
    )
