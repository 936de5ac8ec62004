"""The crossbar's periphery: DAC input resolution, ADC output resolution and range, output noise.

A mapped layer computes ``y = W x + b`` in three steps, as aihwkit's analog tiles do
(`aihwkit.simulator.tiles.analog_mvm`, one-pass mode):

1. noise management: the input is divided by its largest magnitude α (per input sample)
   and the DAC rounds it to ``2^dac_bits - 1`` levels over [-1, 1] (step ``2 / (2^b - 2)``);
2. the crossbar multiplies by ``W / ω`` (ω = max|W| of the layer: the largest weight maps to
   the largest conductance); additive output noise ``out_noise · N(0, 1)`` per output, in
   those normalised units, redrawn at every forward pass;
3. the ADC rounds to steps of ``2 · adc_bound / (2^adc_bits - 2)`` and clips to ±adc_bound;
   the result is scaled back by α ω, and the digital bias added.

Differences from aihwkit, by design: α is per input sample over the layer's whole input
(aihwkit takes it per input vector, i.e. per patch of a convolution; the same for a Linear
layer), and an output beyond the ADC's range is clipped (aihwkit's default bound management
retries at half the input scale; its ``BoundManagementType.NONE`` clips as here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING

from cimtest._validation import check_interval
from cimtest.exceptions import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = ["PRESETS", "Periphery", "dac_codes", "parse_periphery"]

NOISE_BUFFER = "_cimtest_out_noise"
"""Name of the per-chip output-noise buffer a mapped layer carries in the batched forward."""


@dataclass(frozen=True)
class Periphery:
    """DAC, ADC and output noise of every mapped layer (`None` bits: that converter is ideal).

    Attributes
    ----------
    dac_bits : int or None
        Input (DAC) resolution in bits, >= 2; None: float inputs.
    adc_bits : int or None
        Output (ADC) resolution in bits, >= 2; None: no output rounding.
    adc_bound : float
        ADC range ±bound in the normalised output units (aihwkit's ``out_bound``); None with
        ``adc_bits`` None: no clipping.
    out_noise : float
        Standard deviation of the additive output noise in normalised units (aihwkit's
        ``out_noise``), redrawn at every forward pass; 0: none.
    """

    dac_bits: int | None = None
    adc_bits: int | None = None
    adc_bound: float | None = None
    out_noise: float = 0.0

    def __post_init__(self) -> None:
        for name in ("dac_bits", "adc_bits"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 2):
                raise ConfigError(f"the periphery's {name} must be an integer of at least 2 "
                                  f"bits (or none); got {value!r}")
        if self.adc_bound is not None:
            check_interval("adc_bound", self.adc_bound, 0, math.inf, "the periphery",
                           closed="neither")
        if self.adc_bits is not None and self.adc_bound is None:
            raise ConfigError("an ADC resolution needs its range: give adc_bound too")
        check_interval("out_noise", self.out_noise, 0, math.inf, "the periphery",
                       closed="left")

    @property
    def ideal(self) -> bool:
        """True when the periphery changes nothing (the chip computes ``W x + b``)."""
        return (self.dac_bits is None and self.adc_bits is None and self.adc_bound is None
                and self.out_noise == 0)

    def spec(self) -> str:
        """The keys that differ from the ideal periphery, ``"dac_bits=7,adc_bits=9,..."``
        (``"ideal"`` when none does)."""
        keys = [f"{f.name}={getattr(self, f.name)!r}" for f in fields(self)
                if getattr(self, f.name) != f.default]
        return ",".join(keys) or "ideal"


PRESETS: dict[str, Periphery] = {
    "ideal": Periphery(),
    "aihwkit": Periphery(dac_bits=7, adc_bits=9, adc_bound=12.0, out_noise=0.06),
}
"""Named peripheries: ``ideal`` (cimtest's weight-only chips) and ``aihwkit`` (the defaults
of aihwkit's ``IOParameters``: 7-bit inputs, 9-bit outputs over ±12, output noise 0.06)."""


def parse_periphery(text: str | None) -> Periphery:
    """``--hardware``: a preset name, keys ``dac_bits=6,adc_bits=8,adc_bound=10,out_noise=0.04``,
    or a preset followed by keys (``aihwkit,out_noise=0``); None is the ideal periphery.
    `ConfigError` names the preset or key that is not known."""
    if text is None or not text.strip():
        return PRESETS["ideal"]
    parts = [p.strip() for p in text.split(",") if p.strip()]
    base = PRESETS["ideal"]
    if parts and "=" not in parts[0]:
        if parts[0] not in PRESETS:
            raise ConfigError(f"unknown hardware preset {parts[0]!r}; presets: "
                              f"{', '.join(PRESETS)}")
        base, parts = PRESETS[parts[0]], parts[1:]
    names = {f.name: f for f in fields(Periphery)}
    changes: dict[str, object] = {}
    for part in parts:
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in names:
            raise ConfigError(f"unknown hardware key in {part!r}; keys: {', '.join(names)} "
                              "(or a preset first: " + ", ".join(PRESETS) + ")")
        changes[key] = _value(key, value.strip())
    return replace(base, **changes)


def dac_codes(x: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The DAC's view of inputs `x` (N, ...): integer codes (as floats) in
    ``[-(2^(b-1) - 1), 2^(b-1) - 1]`` and each sample's scale, float32 (N, 1, ...), such that
    the chip is driven with ``codes * scale`` (scale = α / (2^(b-1) - 1), α = the sample's
    largest magnitude, 1 for an all-zero sample)."""
    import torch

    alpha = x.abs().reshape(x.shape[0], -1).amax(dim=1)
    alpha = torch.where(alpha > 0, alpha, torch.ones_like(alpha))
    levels = 2 ** (bits - 1) - 1
    scale = (alpha / levels).reshape(-1, *([1] * (x.dim() - 1)))
    return torch.clamp(torch.round(x / scale), -levels, levels), scale


def _value(key: str, text: str) -> object:
    if text.lower() in ("none", ""):
        if key == "out_noise":
            return 0.0
        return None
    try:
        return int(text) if key.endswith("_bits") else float(text)
    except ValueError:
        raise ConfigError(f"hardware key {key} takes a number; got {text!r}") from None
