"""A population of chips: a model, a non-ideality spec and a seed; evaluated chunk by chunk."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from cimtest._device import DeviceLike, resolve_device
from cimtest.engine.aged import AgedRows
from cimtest.engine.batched import MICRO_BATCH, BatchedForward, activation_bytes
from cimtest.engine.delta import DeltaForward, SparsePathError
from cimtest.engine.layout import weight_layout
from cimtest.engine.memory import BYTES_PER_WEIGHT, chunk_size, parse_memory
from cimtest.engine.periphery import draw_noise, noise_shapes
from cimtest.engine.rows import fill_rows, row_buffer, sparse_rows
from cimtest.engine.seeding import chip_generators, chip_seed
from cimtest.faults import FaultStack, SparseEdits, parse_spec
from cimtest.hardware import MappedModel, map_model
from cimtest.hardware.periphery import Periphery, parse_periphery
from cimtest.metrics import mean_iou
from cimtest.progress import Progress
from cimtest.tasks import ScoredTask

__all__ = ["ChipSpec", "Population"]

_logger = logging.getLogger(__name__)

REPROGRAMMED = 2**40
"""The chip index under which `Population.reprogrammed` hashes a rewrite's seed: beyond any
real chip index, so a rewrite never shares a stream with a chip's own draws."""

DENSE_CHUNK = 32
"""Most chips per chunk when chips run as dense forwards (`BatchedForward.dense`): a larger
chunk holds more weights and reports progress less often, and 32 chips already give every
thread blocks of chips to draw."""

DELTA_SHARE = 0.002
"""Chips whose static faults are all cell faults editing at most this expected share of the
weights run, unless they run as dense forwards, on `DeltaForward` (the ideal layers plus
sparse corrections) rather than on per-chip weight rows; results agree to float rounding
(docs/engine.md). Above this share, or with many inputs per chip, the corrections cost
more than a dense forward (measured in docs/engine.md, "The sparse path")."""


@dataclass(frozen=True)
class ChipSpec:
    """What a chip is made of: the non-idealities and the crossbar it stores weights in."""

    faults: FaultStack
    array_size: tuple[int, int] | None = None
    """Rows x cols of one crossbar array; None = one array per layer."""
    bits_per_cell: int = 1
    """Bits a cell stores (1 = binary cells as in STT-MRAM, 2 = four-level cells, ...)."""
    periphery: Periphery = field(default_factory=Periphery)
    """DAC, ADC and output noise around every crossbar (`cimtest.hardware.periphery`)."""


class Population:
    """`n` chips sharing a model and a non-ideality spec; chip `i` is fully set by (seed, i).

    Parameters
    ----------
    model : torch.nn.Module
        The float model; it is quantised once into the ideal chip and never changed.
    fault : FaultStack or str
        The non-idealities, as a stack or a spec string (``"mult:eta=0.05"``; ``"none"``).
    seed : int
        Population seed. Chip ``i`` draws only from generators seeded by ``(seed, i)``, so
        results do not depend on the chunk size, the chunk order or the executor.
    n : int
        Number of chips.
    array_size, bits_per_cell
        Crossbar geometry (see `ChipSpec`).
    memory : str or int
        Working-set budget of one chunk, e.g. ``"2GB"``; sets the chunk size.
    periphery : Periphery or str, optional
        DAC, ADC and output noise of every crossbar, or a ``--hardware`` text (a preset
        such as ``"aihwkit"``, or keys); None: the ideal periphery (weights only). Output
        noise is redrawn at every forward pass from the chip's own stream.
    at : float, optional
        Seconds since programming: the chips at that age (`at`); the spec may then leave out
        the age ``t`` of its faults with a time model.
    device : str or torch.device, optional
        Where the chips are drawn and evaluated: ``"cpu"`` (None, the default), ``"cuda"``,
        ``"cuda:N"`` or ``"auto"`` (`cimtest._device.resolve_device`). Chip ``i``'s
        generators are seeded by ``(seed, i)`` on that device, and every tensor a method
        returns lives there (docs/engine.md, "Devices").
    """

    def __init__(
        self,
        model: nn.Module,
        fault: FaultStack | str = "none",
        seed: int = 0,
        n: int = 1,
        *,
        array_size: tuple[int, int] | None = None,
        bits_per_cell: int = 1,
        memory: str | int = "2GB",
        periphery: Periphery | str | None = None,
        at: float | None = None,
        device: DeviceLike = None,
    ) -> None:
        faults = parse_spec(fault, allow_missing_time=at is not None) \
            if isinstance(fault, str) else fault
        if at is not None:
            faults = faults.at(at)
        if not isinstance(periphery, Periphery):
            periphery = parse_periphery(periphery)
        self.spec = ChipSpec(faults, array_size, bits_per_cell, periphery)
        self.seed = int(seed)
        self.n = int(n)
        self.memory = parse_memory(memory)
        self.device = resolve_device(device)
        self.mapped = _on_device(
            map_model(model, array_size=array_size, bits_per_cell=bits_per_cell), self.device)
        self.layout = weight_layout(self.mapped)
        faults.check_layout(self.layout)
        self._static, self._per_read = faults.split_time()
        self._forward = BatchedForward(self.mapped, periphery)
        self._noise_shapes: dict[tuple[int, ...], dict[str, tuple[int, ...]]] = {}
        self._engines: dict[str, DeltaForward | None] = {}

    def with_faults(self, fault: FaultStack | str, n: int | None = None) -> Population:
        """A population of the same model and seed with other non-idealities (no re-mapping)."""
        faults = parse_spec(fault) if isinstance(fault, str) else fault
        faults.check_layout(self.layout)
        other = object.__new__(Population)
        other.__dict__.update(self.__dict__)
        other.spec = ChipSpec(faults, self.spec.array_size, self.spec.bits_per_cell,
                              self.spec.periphery)
        other.n = self.n if n is None else int(n)
        other._static, other._per_read = faults.split_time()
        return other

    def at(self, t: float) -> Population:
        """The same chips `t` seconds after programming (`FaultStack.at`; no re-mapping).

        Every fault with a time model draws nothing that depends on the age, so chip ``i``
        at any age shares every draw with chip ``i`` at any other: a chip's trajectory is one
        chip aging. `ConfigError` if no fault has a time model.
        """
        return self.with_faults(self.faults.at(t))

    def reprogrammed(self, generation: int) -> Population:
        """The same chips rewritten `generation` times (0: as first programmed): fresh
        programming draws, chip ``i`` of generation ``g`` seeded by ``(seed', i)`` with
        ``seed'`` hashed from ``(seed, g)``, so rewrites are independent of each other and of
        the first programming."""
        if generation == 0:
            return self
        other = object.__new__(Population)
        other.__dict__.update(self.__dict__)
        other.seed = chip_seed(self.seed, REPROGRAMMED, generation) >> 32
        return other

    def recipe(self) -> dict[str, object]:
        """How to rebuild these chips, as JSON: fault spec, seed, count, crossbar geometry."""
        array_size = self.spec.array_size
        recipe = {"fault": self.spec.faults.spec(), "seed": self.seed, "n": self.n,
                  "array_size": None if array_size is None else list(array_size),
                  "bits_per_cell": self.spec.bits_per_cell}
        if not self.spec.periphery.ideal:
            recipe["hardware"] = self.spec.periphery.spec()
        return recipe

    @property
    def sparse(self) -> bool:
        """Whether chips run as the ideal chip plus sparse corrections (`DELTA_SHARE`): on
        inputs that do not run as dense forwards, or on any with per-read faults; never with a
        periphery (it is not linear in the weights' corrections), nor off the CPU (its
        per-chip draws and sorts are host work)."""
        if not self.spec.periphery.ideal or self.device.type != "cpu":
            return False
        faults = self._static.faults + self._per_read.faults
        if not faults or not FaultStack(faults).sparse:
            return False
        if sum(f.edited_share(self.layout) for f in faults) > DELTA_SHARE:
            return False
        return self._delta() is not None

    def _delta(self) -> DeltaForward | None:
        """The model's `DeltaForward` (built once, shared by `with_faults` copies), or None
        when a mapped layer is not covered."""
        if "delta" not in self._engines:
            supported = DeltaForward.supports(self.mapped)
            self._engines["delta"] = DeltaForward(self.mapped) if supported else None
        return self._engines["delta"]

    @property
    def faults(self) -> FaultStack:
        """The population's non-idealities."""
        return self.spec.faults

    def weights(self, chips: Sequence[int], *, scratch: torch.Tensor | None = None
                ) -> torch.Tensor:
        """Static (device-to-device) weights of `chips`, float32 of shape (len(chips), P).

        With `scratch` (float32 (B, P), B >= len(chips)) the rows are written into its first
        rows and a view is returned: a campaign reuses one buffer for all its chunks.
        """
        out = row_buffer(scratch, len(chips), self.mapped.reference.numel(), self.device)
        return fill_rows(out, self.mapped.reference, self._static, self.layout,
                         chip_generators(self.seed, chips, device=self.device))

    def edits(self, chips: Sequence[int]) -> SparseEdits:
        """Static weights of `chips` as `SparseEdits` of the ideal chip (the rows `weights`
        returns); every static fault must be a cell fault (see `sparse`)."""
        return sparse_rows(self.mapped.reference, self._static, self.layout,
                           chip_generators(self.seed, chips, device=self.device))

    def chips_per_chunk(self, input_shape: tuple[int, ...], n_inputs: int, *,
                        extra_weight_sets: int = 0) -> int:
        """Chips per chunk that keep weights and activations of `n_inputs` inputs in budget.

        Where chips run as dense forwards (`BatchedForward.dense`, no per-read faults), one
        per thread, one chip's activations are counted per thread, and a chunk holds at most
        `DENSE_CHUNK` chips; otherwise every chip's activations are counted. Always a multiple
        of `MICRO_BATCH` (at least one micro-batch), so that results do not depend on the
        chunk size. `extra_weight_sets` counts float32 weight sets a caller holds per chip
        beside the three of `BYTES_PER_WEIGHT` (the aged campaign's rows drawn once).
        """
        weight_bytes = (BYTES_PER_WEIGHT + 4 * extra_weight_sets) * self.mapped.reference.numel()
        act = n_inputs * activation_bytes(self.mapped.ideal, input_shape)
        if self._dense(input_shape, n_inputs):
            act *= torch.get_num_threads()
            chips = min(DENSE_CHUNK, chunk_size(max(self.memory - act, 0), weight_bytes, self.n))
        else:
            chips = chunk_size(self.memory, weight_bytes + act, self.n)
        return max(MICRO_BATCH, chips - chips % MICRO_BATCH)

    def forward(self, chips: Sequence[int], x: torch.Tensor, *,
                scratch: torch.Tensor | None = None) -> torch.Tensor:
        """Outputs of `chips` on inputs `x` (N, *input_shape): float32 (len(chips), N, *out).

        Per-read non-idealities are redrawn for every input: input ``j`` of chip ``i`` sees
        draws seeded by ``(seed, i, j + 1)``. `scratch` (see `weights`) holds the weights.
        """
        return self.forward_each(chips, [x], scratch=scratch)[0]

    def forward_each(self, chips: Sequence[int], inputs: Sequence[torch.Tensor], *,
                     scratch: torch.Tensor | None = None) -> list[torch.Tensor]:
        """`forward` on each input set of `inputs` (all of one shape), the chips' static
        weights drawn once for all of them: a costly draw (correlated fields) is paid once."""
        inputs = [x.to(self.device) for x in inputs]
        n_inputs = inputs[0].shape[0]
        if self.sparse and not self._dense(tuple(inputs[0].shape[1:]), n_inputs):
            try:
                edits = self.edits(chips)
                return [self._sparse_forward(chips, edits, x) for x in inputs]
            except SparsePathError as exc:
                _logger.warning("%s: this model runs on the dense path", exc)
                self._engines["delta"] = None
        flat = self.weights(chips, scratch=scratch)
        return [self.forward_rows(chips, flat, x) for x in inputs]

    def forward_at(self, chips: Sequence[int], x: torch.Tensor, times: Sequence[float], *,
                   scratch: torch.Tensor | None = None, base: torch.Tensor | None = None
                   ) -> list[torch.Tensor]:
        """`forward` of `chips` at each age in `times`: ``[self.at(t).forward(chips, x) for t
        in times]``, equal to it bit for bit.

        The static faults written before the first one with a time model are drawn once for
        all ages, into `base` (float32 (B, P) like `scratch`; `AgedRows`). Chips on the
        sparse path are drawn at every age. Per-read draws and output noise are those of the
        same reads at every age, so what changes is the aging alone.
        """
        x = x.to(self.device)
        aged = AgedRows(self)
        outputs: list[torch.Tensor] = []
        for t in times:
            population = self.at(t)
            if population.sparse and not population._dense(tuple(x.shape[1:]), x.shape[0]):
                outputs.append(population.forward(chips, x, scratch=scratch))
                continue
            flat = aged.weights(chips, t, scratch=scratch, base=base)
            outputs.append(population.forward_rows(chips, flat, x))
        return outputs

    def _dense(self, input_shape: tuple[int, ...], n_inputs: int) -> bool:
        """Whether chips run as dense forwards on `n_inputs` inputs (never per-read faults:
        they forward one input at a time)."""
        return not self._per_read.faults and self._forward.dense((n_inputs, *input_shape))

    def forward_rows(self, chips: Sequence[int], flat: torch.Tensor, x: torch.Tensor
                     ) -> torch.Tensor:
        """`forward` of `chips` from their static weight rows `flat` (float32 (B, P), e.g.
        `weights` changed by a remedy), per-read draws per input (and the periphery's output
        noise, drawn per forward pass)."""
        x = x.to(self.device)
        if not self._per_read.faults:
            return self._forward(flat, x, noise=self._noise(chips, x, 0))
        outputs = []
        noisy = torch.empty_like(flat)
        for j in range(x.shape[0]):
            fill_rows(noisy, flat, self._per_read, self.layout,
                      chip_generators(self.seed, chips, j + 1, self.device))
            outputs.append(self._forward(noisy, x[j : j + 1],
                                         noise=self._noise(chips, x[j : j + 1], j + 1)))
        return torch.cat(outputs, dim=1)

    def _noise(self, chips: Sequence[int], x: torch.Tensor, read: int) -> dict[str, torch.Tensor]:
        """The periphery's output noise of `chips` for one forward pass over `x`."""
        periphery = self.spec.periphery
        if periphery.out_noise == 0:
            return {}
        shape = tuple(x.shape[1:])
        if shape not in self._noise_shapes:
            self._noise_shapes[shape] = noise_shapes(self._forward.module, self.mapped, shape)
        return draw_noise(self._noise_shapes[shape], periphery, self.seed, chips, x.shape[0],
                          read, self.device)

    def _sparse_forward(self, chips: Sequence[int], edits: SparseEdits, x: torch.Tensor
                        ) -> torch.Tensor:
        """`forward` on the sparse path from the chips' static `edits`, per-read edits per
        input."""
        delta = self._delta()
        if not self._per_read.faults:
            return delta(edits, x)
        outputs = []
        for j in range(x.shape[0]):
            noisy = dataclasses.replace(edits)  # `write` replaces tensors, never edits them
            self._per_read.apply_sparse(noisy, self.layout,
                                        chip_generators(self.seed, chips, j + 1, self.device))
            outputs.append(delta(noisy, x[j : j + 1]))
        return torch.cat(outputs, dim=1)

    def iter_chunks(
        self,
        x: torch.Tensor,
        chips: Sequence[int] | None = None,
        *,
        progress: Progress | None = None,
    ) -> Iterator[tuple[list[int], torch.Tensor]]:
        """Yield ``(chip indices, outputs)`` chunk by chunk, never holding the whole campaign.

        ``progress(done, total)`` is called once before the first chunk (done = 0, so a
        progress bar shows its total at once) and after every chunk."""
        for block, (out,) in self._iter_each([x], chips, progress):
            yield block, out

    def _iter_each(
        self, inputs: Sequence[torch.Tensor], chips: Sequence[int] | None,
        progress: Progress | None,
    ) -> Iterator[tuple[list[int], list[torch.Tensor]]]:
        """`iter_chunks` over `forward_each`: each chunk's outputs on every input set."""
        chips = list(range(self.n)) if chips is None else [int(c) for c in chips]
        if progress is not None:
            progress(0, len(chips))
        x = inputs[0]
        step = self.chips_per_chunk(tuple(x.shape[1:]), x.shape[0])
        scratch = row_buffer(None, min(step, len(chips)), self.mapped.reference.numel(), self.device)
        for start in range(0, len(chips), step):
            block = chips[start : start + step]
            yield block, self.forward_each(block, inputs, scratch=scratch)
            if progress is not None:
                progress(min(start + step, len(chips)), len(chips))

    def outputs(self, x: torch.Tensor, chips: Sequence[int] | None = None, **kw) -> torch.Tensor:
        """All chips' outputs on `x`, float32 (n_chips, N, *out). Holds everything: small runs."""
        return torch.cat([out for _, out in self.iter_chunks(x, chips, **kw)])

    def outputs_each(self, inputs: Sequence[torch.Tensor], chips: Sequence[int] | None = None,
                     *, progress: Progress | None = None) -> list[torch.Tensor]:
        """``[self.outputs(x, chips) for x in inputs]`` (input sets of one shape), each chip
        drawn once: what a search comparing several candidate input sets on the same chips
        needs, at the cost of one draw per chip."""
        parts: list[list[torch.Tensor]] = [[] for _ in inputs]
        for _, outs in self._iter_each(inputs, chips, progress):
            for part, out in zip(parts, outs, strict=True):
                part.append(out)
        return [torch.cat(part) for part in parts]

    def iter_chunks_at(
        self,
        x: torch.Tensor,
        times: Sequence[float],
        chips: Sequence[int] | None = None,
        *,
        progress: Progress | None = None,
    ) -> Iterator[tuple[list[int], list[torch.Tensor]]]:
        """Yield ``(chip indices, [outputs at each age of times])`` chunk by chunk: each
        chunk's chips drawn once for all ages (`forward_at`); `progress` as in
        `iter_chunks`."""
        chips = list(range(self.n)) if chips is None else [int(c) for c in chips]
        if progress is not None:
            progress(0, len(chips))
        step = self.chips_per_chunk(tuple(x.shape[1:]), x.shape[0], extra_weight_sets=1)
        rows = (min(step, len(chips)), self.mapped.reference.numel())
        scratch, base = (torch.empty(rows, device=self.device) for _ in range(2))
        for start in range(0, len(chips), step):
            block = chips[start : start + step]
            yield block, self.forward_at(block, x, times, scratch=scratch, base=base)
            if progress is not None:
                progress(min(start + step, len(chips)), len(chips))

    def accuracy_at(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        times: Sequence[float],
        chips: Sequence[int] | None = None,
        *,
        task: ScoredTask = "classification",
        progress: Progress | None = None,
    ) -> torch.Tensor:
        """Per-chip accuracy in percent at each age in `times` (seconds since programming),
        float64 (len(times), n): row ``k`` is ``self.at(times[k]).accuracy(x, y)``, each chip
        drawn once for all ages (`forward_at`)."""
        scores: list[list[torch.Tensor]] = [[] for _ in times]
        for _, outs in self.iter_chunks_at(x, times, chips, progress=progress):
            for part, out in zip(scores, outs, strict=True):
                part.append(chip_accuracies(out, y, task))
        return torch.stack([torch.cat(part) for part in scores])

    def accuracy(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        chips: Sequence[int] | None = None,
        *,
        task: ScoredTask = "classification",
        progress: Progress | None = None,
    ) -> torch.Tensor:
        """Per-chip accuracy in percent (mean IoU in percent for segmentation), float64 (n,)."""
        scores = []
        for _, out in self.iter_chunks(x, chips, progress=progress):
            scores.append(chip_accuracies(out, y, task))
        return torch.cat(scores)


def _on_device(mapped: MappedModel, device: torch.device) -> MappedModel:
    """`mapped` with its ideal chip and reference weights on `device` (itself on the CPU)."""
    if device.type == "cpu":
        return mapped
    return dataclasses.replace(mapped, ideal=mapped.ideal.to(device), codes=mapped.codes.to(
        device), reference=mapped.reference.to(device))


def chip_accuracies(outputs: torch.Tensor, y: torch.Tensor, task: ScoredTask) -> torch.Tensor:
    """Accuracy (percent) of each chip's outputs (B, N, C[, H, W]) against labels `y`, on
    the outputs' device."""
    y = y.to(outputs.device)
    if task == "segmentation":
        n_classes = outputs.shape[2]
        return torch.tensor(
            [100.0 * mean_iou(out, y, n_classes) for out in outputs], dtype=torch.float64,
            device=outputs.device)
    correct = outputs.argmax(dim=2) == y.unsqueeze(0)
    return 100.0 * correct.double().mean(dim=1)
