"""Device noise fitted to measured chips, from IBM's aihwkit: PCM and two ReRAM technologies.

Each fault programs a chip the way an aihwkit inference tile does (`program_analog_weights`,
then `drift_analog_weights(t)`) and reads the weights back:

1. each crossbar array's weights become conductances, as aihwkit's converter maps a tile:
   a pair of devices per weight, ``max|W|`` of the array at ``g_max`` (PCM, Wan 2022 ReRAM),
   or one device per weight, ``[min W, max W]`` onto ``[g_min, g_max]`` (CMO ReRAM);
2. aihwkit's noise model adds programming noise and draws each device's drift coefficient,
   and the programmed conductances are read back to weights;
3. the programmed weights are mapped onto the conductance range again (from their own
   extremes, as the tile does) and drifted to time ``t`` with read noise accumulated up to
   ``t``, and read back;
4. with ``compensation=global``, each array's weights are scaled by aihwkit's
   `GlobalDriftCompensation` factor: the mean ``|W|`` read at programming over the mean
   ``|W|`` read at ``t`` (computed exactly on the weights, without the periphery's noise).

The physics (every draw, fitted coefficient and clamp) is aihwkit's own code, its noise
models' per-conductance methods. They draw from torch's global generator, so a chip draws
two 63-bit seeds from its own generator and runs step 2, then step 3, inside
`torch.random.fork_rng` with the global generator seeded by one of them: a chip rebuilt alone
is the same chip, the caller's global state is left as it was, and the draws of one chip are
the same at every ``t`` (a chip ages along one path). The global generator is one per
process, so those steps take turns under a lock, and they run on one torch thread, which
keeps a chip independent of the thread count. On another device the chip's seeds come from
its generator there, and steps 2 and 3 run on the CPU (aihwkit's own draws), the weights
copied there and back.

aihwkit is optional: ``pip install --no-deps aihwkit==1.1.0`` (`INSTALL`; its wheel declares
build tools and torchvision as run-time dependencies, none of which these models import). A
fault checks that it is installed when built, without importing it; torch and aihwkit are
imported by the methods that draw, so a bad spec is refused before either loads.
"""

from __future__ import annotations

import enum
import importlib.util
import math
import threading
from abc import abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cimtest._validation import check_interval, check_option
from cimtest.exceptions import ConfigError
from cimtest.faults.base import Fault, Scope

if TYPE_CHECKING:
    import torch

    from cimtest.faults.layout import LayerSlot, WeightLayout

__all__ = ["INSTALL", "AihwkitPCM", "AihwkitReRAM", "AihwkitReRAMCMO", "Compensation"]

INSTALL = "pip install --no-deps aihwkit==1.1.0"
"""The command that installs the aihwkit these faults were checked against."""

WAN2022_TIMES = (1.0, 86400.0, 172800.0)
"""Times after programming (s) at which Wan et al. (2022) measured and aihwkit fitted."""

_ZERO_CLIP = 1e-7
"""aihwkit's converters divide by ``max|W|`` of a tile clamped to at least this."""
_READOUT_CLIP = 1e-4
"""aihwkit's `GlobalDriftCompensation` reads the mean ``|W|`` clamped to at least this."""
_CMO_T_READ = 1e-6
"""``t_read`` of aihwkit's CMO read noise (s): below it, its square root of a log is NaN."""

_GLOBAL_RNG = threading.Lock()
"""Held while a chip draws from torch's global generator (the engine fills chips on several
threads, and there is one global generator)."""


class Compensation(enum.StrEnum):
    """Drift compensation after reading the weights at ``t``."""

    NONE = "none"
    """The weights as read at ``t``."""
    GLOBAL = "global"
    """aihwkit's `GlobalDriftCompensation`: one factor per crossbar array."""


class _AihwkitFault(Fault):
    """A chip programmed and drifted by an aihwkit noise model (see the module docstring).

    Subclasses are frozen dataclasses whose first field is ``t`` (the level), with
    ``g_max`` and ``compensation`` among the others; they build the aihwkit noise model
    (`noise_model`) and check their own parameters (`_check_model`).
    """

    level_name = "t"
    time_name = "t"
    t: float
    g_max: float
    compensation: Compensation

    def _check_parameters(self) -> None:
        owner = f"fault '{self.kind}'"
        check_interval("t", self.t, 0, math.inf, owner, closed="left")
        check_interval("g_max", self.g_max, 0, math.inf, owner, closed="neither")
        check_option("compensation", self.compensation, list(Compensation), owner)
        object.__setattr__(self, "compensation", Compensation(self.compensation))
        self._check_model(owner)
        _require_aihwkit(self.kind)

    @abstractmethod
    def _check_model(self, owner: str) -> None:
        """Raise `ConfigError` if a parameter of the noise model is out of range."""

    @abstractmethod
    def noise_model(self) -> Any:
        """The aihwkit noise model (a ``BaseNoiseModel``) with this fault's parameters."""

    def _conductances(
        self, weights: torch.Tensor, tiles: _Tiles
    ) -> tuple[list[torch.Tensor], Callable[[list[torch.Tensor]], torch.Tensor]]:
        """aihwkit's ``SinglePairConductanceConverter`` (``g_min = 0``), one tile per array."""
        return _pair_conductances(weights, tiles, self.g_max)

    def _perturb(
        self,
        weights: torch.Tensor,
        layers: tuple[LayerSlot, ...],
        layout: WeightLayout,
        generators: Sequence[torch.Generator],
    ) -> None:
        import torch

        try:
            model = self.noise_model()
        except ImportError as error:  # installed but broken, or shadowed by another module
            raise ConfigError(f"fault '{self.kind}' cannot import aihwkit ({error}); "
                              f"install it with: {INSTALL}") from error
        tiles = _Tiles.of(layers)
        for row, generator in enumerate(generators):
            seeds = torch.randint(0, 2**63 - 1, (2,), generator=generator,
                                  device=generator.device).tolist()
            cells = tiles.gather([weights[row, slot.offset : slot.stop].cpu() for slot in layers])
            with _one_thread():
                read = tiles.scatter(self._chip(model, cells, tiles, seeds)).to(weights.device)
            at = 0
            for slot in layers:
                weights[row, slot.offset : slot.stop] = read[at : at + slot.numel]
                at += slot.numel

    def _chip(
        self, model: Any, weights: torch.Tensor, tiles: _Tiles, seeds: list[int]
    ) -> torch.Tensor:
        """One chip's weights (n,), in `tiles` order, programmed, drifted to ``t`` and read
        back; programming draws from the global generator seeded with ``seeds[0]``, drift and
        read noise with ``seeds[1]``."""
        targets, to_weights = self._conductances(weights, tiles)
        with _global_generator(seeds[0]):
            programmed, coefficients = self._program(model, targets)
        reference = to_weights(programmed)
        remapped, to_weights = self._conductances(reference, tiles)
        read = to_weights(self._drift(model, remapped, coefficients, seeds[1]))
        if self.compensation is Compensation.GLOBAL:
            before = tiles.mean_abs(reference).clamp_(min=_READOUT_CLIP)
            after = tiles.mean_abs(read).clamp_(min=_READOUT_CLIP)
            read.mul_(tiles.spread(before / after))
        return read

    def _program(
        self, model: Any, targets: list[torch.Tensor]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The programmed conductances of `targets` and each device's drift coefficients,
        drawn in aihwkit's order (from the global generator)."""
        programmed, coefficients = [], []
        for target in targets:
            programmed.append(model.apply_programming_noise_to_conductance(target))
            coefficients.append(model.generate_drift_coefficients(target))
        return programmed, coefficients

    def _drift(
        self, model: Any, remapped: list[torch.Tensor], coefficients: list[torch.Tensor],
        seed: int,
    ) -> list[torch.Tensor]:
        """The `remapped` programmed conductances at ``t`` (drift and read noise from the
        coefficients drawn at programming), drawn with the global generator seeded with
        `seed`."""
        with _global_generator(seed):
            return [model.apply_drift_noise_to_conductance(g, coefficient, self.t)
                    for g, coefficient in zip(remapped, coefficients)]


@dataclass(frozen=True)
class AihwkitPCM(_AihwkitFault):
    """PCM fitted on about a million devices: aihwkit's ``PCMLikeNoiseModel``.

    Programming noise with a conductance-dependent SD (a quadratic in ``G / g_max``),
    per-device drift ``G(t) = G_prog ((t + t_0) / t_0)^-ν`` with ``ν`` drawn once from a
    conductance-dependent normal (``t_0`` = 20 s), and 1/f read noise accumulated up to ``t``
    (Nandakumar et al., ICECS 2019). Two devices per weight, ``max|W|`` of an array at
    ``g_max``.
    """

    t: float
    """Seconds after programming, ≥ 0 (the level; 0 is a freshly programmed chip, not the
    ideal one)."""
    g_max: float = 25.0
    """Conductance (µS) that ``max|W|`` of a crossbar array is programmed to, > 0."""
    compensation: Compensation = Compensation.NONE
    """``none`` or ``global`` (aihwkit's `GlobalDriftCompensation`, one factor per array)."""
    prog_noise_scale: float = 1.0
    """Factor on the programming noise's SD, ≥ 0."""
    read_noise_scale: float = 1.0
    """Factor on the SD of the read (1/f) noise accumulated up to ``t``, ≥ 0."""
    drift_scale: float = 1.0
    """Factor on every drift coefficient ν, ≥ 0."""
    scope: Scope = field(default_factory=Scope)
    """Layers the fault acts on."""
    per_read: bool = False
    """Program a new chip at every forward pass instead of once per chip."""

    kind = "aihwkit-pcm"

    def _check_model(self, owner: str) -> None:
        for name in ("prog_noise_scale", "read_noise_scale", "drift_scale"):
            check_interval(name, getattr(self, name), 0, math.inf, owner, closed="left")

    def noise_model(self) -> Any:
        from aihwkit.inference import PCMLikeNoiseModel

        return PCMLikeNoiseModel(g_max=self.g_max, prog_noise_scale=self.prog_noise_scale,
                                 read_noise_scale=self.read_noise_scale,
                                 drift_scale=self.drift_scale)

    def _program(
        self, model: Any, targets: list[torch.Tensor]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The programmed conductances of `targets`, and the targets themselves: `_drift`
        draws the drift coefficients of the devices that drift."""
        return [model.apply_programming_noise_to_conductance(g) for g in targets], targets

    def _drift(
        self, model: Any, remapped: list[torch.Tensor], coefficients: list[torch.Tensor],
        seed: int,
    ) -> list[torch.Tensor]:
        """As aihwkit's loop over both devices, at half its cost: after re-mapping, one device
        of each pair is at 0 µS, and PCM's drift and read noise (both proportional to G) keep
        it there, so only the other device drifts, with a coefficient drawn from its target
        conductance (`coefficients` holds the targets, see `_program`)."""
        import torch

        signed = remapped[0] - remapped[1]
        target = torch.where(signed > 0, coefficients[0], coefficients[1])
        with _global_generator(seed):
            nu = model.generate_drift_coefficients(target)
            drifted = model.apply_drift_noise_to_conductance(signed.abs(), nu, self.t)
        return [torch.copysign(drifted, signed), drifted.new_zeros(())]


@dataclass(frozen=True)
class AihwkitReRAM(_AihwkitFault):
    """ReRAM of the NeuRRAM chip: aihwkit's ``ReRamWan2022NoiseModel``.

    The deviation from the target conductance has an SD given by a quartic in ``G / g_max``
    fitted to the figures of Wan et al., Nature 2022, at 1 s (programming), 1 day and 2 days
    after programming; at ``t`` the weight is the target plus a fresh deviation of that time's
    SD. Two devices per weight, ``max|W|`` of an array at ``g_max``.
    """

    t: float
    """Seconds after programming: one of 1, 86400, 172800 (the fitted times; the level)."""
    g_max: float = 25.0
    """Conductance (µS) that ``max|W|`` of a crossbar array is programmed to, > 0."""
    compensation: Compensation = Compensation.NONE
    """``none`` or ``global`` (aihwkit's `GlobalDriftCompensation`, one factor per array)."""
    noise_scale: float = 1.0
    """Factor on the SD of every deviation (programming and at ``t``), ≥ 0."""
    scope: Scope = field(default_factory=Scope)
    """Layers the fault acts on."""
    per_read: bool = False
    """Program a new chip at every forward pass instead of once per chip."""

    kind = "aihwkit-reram"

    def _check_model(self, owner: str) -> None:
        if self.t not in WAN2022_TIMES:
            raise ConfigError(
                f"The 't' parameter of {owner} must be one of 1, 86400, 172800 (the seconds "
                f"after programming that Wan et al. 2022 measured, so it cannot be "
                f"calibrated); got {self.t!r}."
            )
        check_interval("noise_scale", self.noise_scale, 0, math.inf, owner, closed="left")

    def noise_model(self) -> Any:
        from aihwkit.inference import ReRamWan2022NoiseModel

        return ReRamWan2022NoiseModel(g_max=self.g_max, noise_scale=self.noise_scale)


@dataclass(frozen=True)
class AihwkitReRAMCMO(_AihwkitFault):
    """Conductive-metal-oxide/HfOx ReRAM of IBM Research Zurich: aihwkit's
    ``ReRamCMONoiseModel``.

    Programming noise linear in the target conductance, its coefficients set by the
    program-and-verify acceptance range; a relaxation whose mean and SD are linear in
    ``log t`` and independent of the conductance; read noise accumulated up to ``t``; the
    result clamped to ``[g_min, g_max]`` (Falcone et al., in review, as cited by aihwkit).
    One device per weight: ``[min W, max W]`` of an array onto ``[g_min, g_max]``.
    """

    t: float
    """Seconds after programming: 0 (programmed, no relaxation) or at least 1e-6 (the level)."""
    g_max: float = 88.2
    """Conductance (µS) that ``max W`` of a crossbar array is programmed to, > g_min."""
    compensation: Compensation = Compensation.NONE
    """``none`` or ``global`` (aihwkit's `GlobalDriftCompensation`, one factor per array)."""
    g_min: float = 9.0
    """Conductance (µS) that ``min W`` of a crossbar array is programmed to, ≥ 0."""
    acceptance_range: float = 0.2
    """Acceptance range of the program-and-verify loop, in % of the target: 0.2 or 2."""
    prog_noise_scale: float = 1.0
    """Factor on the programming noise's SD, ≥ 0."""
    read_noise_scale: float = 1.0
    """Factor on the SD of the read noise accumulated up to ``t``, ≥ 0."""
    drift_scale: float = 1.0
    """Factor on the relaxation's mean shift and SD, ≥ 0."""
    scope: Scope = field(default_factory=Scope)
    """Layers the fault acts on."""
    per_read: bool = False
    """Program a new chip at every forward pass instead of once per chip."""

    kind = "aihwkit-reram-cmo"

    def _check_model(self, owner: str) -> None:
        if 0 < self.t < _CMO_T_READ:
            raise ConfigError(
                f"The 't' parameter of {owner} must be 0 or at least 1e-06 (aihwkit's read "
                f"noise is undefined below its t_read); got {self.t!r}."
            )
        check_interval("g_min", self.g_min, 0, self.g_max, owner, closed="left")
        check_option("acceptance_range", self.acceptance_range, (0.2, 2.0), owner)
        for name in ("prog_noise_scale", "read_noise_scale", "drift_scale"):
            check_interval(name, getattr(self, name), 0, math.inf, owner, closed="left")

    def noise_model(self) -> Any:
        from aihwkit.inference import ReRamCMONoiseModel

        return ReRamCMONoiseModel(g_max=self.g_max, g_min=self.g_min,
                                  acceptance_range=self.acceptance_range,
                                  prog_noise_scale=self.prog_noise_scale,
                                  read_noise_scale=self.read_noise_scale,
                                  drift_scale=self.drift_scale)

    def _conductances(
        self, weights: torch.Tensor, tiles: _Tiles
    ) -> tuple[list[torch.Tensor], Callable[[list[torch.Tensor]], torch.Tensor]]:
        """aihwkit's ``SingleDeviceConductanceConverter``, one tile per array."""
        return _single_conductances(weights, tiles, self.g_min, self.g_max)


def _require_aihwkit(kind: str) -> None:
    """Raise `ConfigError` unless aihwkit can be imported (checked without importing it)."""
    try:
        found = importlib.util.find_spec("aihwkit") is not None
    except ValueError:  # sys.modules["aihwkit"] is None: its import is blocked
        found = False
    if not found:
        raise ConfigError(
            f"fault '{kind}' needs the optional extra aihwkit, which is not installed; "
            f"install it with: {INSTALL}"
        )


@contextmanager
def _global_generator(seed: int) -> Iterator[None]:
    """Run the block with torch's global CPU generator seeded with `seed`, then restore it
    (one block at a time in the process)."""
    import torch

    with _GLOBAL_RNG, torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        yield


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run the block's torch ops on one thread: split over threads, an element-wise power
    rounds the elements at a split's edge in another kernel, so a chip would depend on the
    thread count (the engine's worker threads run on one already)."""
    import torch

    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@dataclass(frozen=True)
class _Tiles:
    """The weights of some layers grouped by crossbar array: aihwkit maps each tile onto the
    conductances on its own. The layers' weights, concatenated and permuted by `order`, hold
    each array's weights contiguously, `lengths` of them."""

    order: torch.Tensor | None
    """int64 permutation of the concatenated weights (``None``: one array per layer)."""
    lengths: tuple[int, ...]
    """Weights of each array, in order."""

    @classmethod
    def of(cls, layers: tuple[LayerSlot, ...]) -> _Tiles:
        """The arrays of `layers`, taken from their `array_shape` and `crossbar_index`."""
        import torch

        orders, lengths, at = [], [], 0
        for slot in layers:
            arrays, rows, cols = slot.array_shape
            if arrays == 1:
                orders.append(torch.arange(at, at + slot.numel))
                lengths.append(slot.numel)
            else:
                array = slot.crossbar_index // (rows * cols)
                orders.append(torch.argsort(array, stable=True) + at)
                counts = torch.bincount(array, minlength=arrays)
                lengths.extend(int(c) for c in counts if c > 0)
            at += slot.numel
        multi = any(slot.array_shape[0] > 1 for slot in layers)
        return cls(torch.cat(orders) if multi else None, tuple(lengths))

    def gather(self, parts: list[torch.Tensor]) -> torch.Tensor:
        """The concatenated `parts` (the layers' weights) in array order."""
        import torch

        cells = torch.cat(parts)
        return cells if self.order is None else cells[self.order]

    def scatter(self, cells: torch.Tensor) -> torch.Tensor:
        """`cells` in array order back in the layers' order."""
        if self.order is None:
            return cells
        out = cells.new_empty(cells.shape)
        out[self.order] = cells
        return out

    def max(self, cells: torch.Tensor) -> torch.Tensor:
        """Largest of `cells` in each array, (arrays,)."""
        import torch

        return torch.stack([part.max() for part in cells.split(self.lengths)])

    def mean_abs(self, cells: torch.Tensor) -> torch.Tensor:
        """Mean of ``|cells|`` in each array, (arrays,)."""
        import torch

        return torch.stack([part.abs().mean() for part in cells.split(self.lengths)])

    def spread(self, values: torch.Tensor) -> torch.Tensor:
        """One value per array repeated over the array's weights, (n,)."""
        import torch

        lengths = torch.tensor(self.lengths)
        return values.repeat_interleave(lengths, output_size=sum(self.lengths))


def _pair_conductances(
    weights: torch.Tensor, tiles: _Tiles, g_max: float
) -> tuple[list[torch.Tensor], Callable[[list[torch.Tensor]], torch.Tensor]]:
    """``[G+, G-]`` of `weights` and the map back, as aihwkit's ``SinglePairConductanceConverter``
    with ``g_min = 0``: ``G± = clamp(±W g_max / max|W|, 0, g_max)``, ``W = (G+ - G-) max|W| /
    g_max``, ``max|W|`` per array."""
    scale = tiles.spread(g_max / tiles.max(weights.abs()).clamp_(min=_ZERO_CLIP))
    scaled = weights * scale
    targets = [scaled.clamp(min=0.0, max=g_max), (-scaled).clamp(min=0.0, max=g_max)]
    return targets, lambda g: (g[0] - g[1]) / scale


def _single_conductances(
    weights: torch.Tensor, tiles: _Tiles, g_min: float, g_max: float
) -> tuple[list[torch.Tensor], Callable[[list[torch.Tensor]], torch.Tensor]]:
    """``[G]`` of `weights` and the map back, as aihwkit's ``SingleDeviceConductanceConverter``:
    ``[min W, max W]`` of each array onto ``[g_min, g_max]`` (an array of equal weights, where
    aihwkit divides by zero, is scaled as if its range were 1e-7)."""
    low = -tiles.max(-weights)
    span = (tiles.max(weights) - low).clamp_(min=_ZERO_CLIP)
    scale = tiles.spread((g_max - g_min) / span)
    offset = tiles.spread(low)
    targets = [(weights - offset) * scale + g_min]
    return targets, lambda g: offset + (g[0] - g_min) / scale
