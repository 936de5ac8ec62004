"""The periphery in the batched forward: hooks around each mapped layer (`Periphery`).

`install` adds a pre-hook (noise management and DAC) and a hook (output noise, ADC, scale
back) to every mapped layer of the batched module, and a per-chip noise buffer the engine
fills through `torch.func.functional_call` like the weights. `draw_noise` draws that noise
for a chunk of chips from their own generators, so a chip's outputs never depend on the
chunk it runs in.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from cimtest.engine.seeding import chip_seeds
from cimtest.hardware import MappedModel
from cimtest.hardware.periphery import NOISE_BUFFER, Periphery, dac_codes

__all__ = ["NOISE_READ", "draw_noise", "install", "noise_shapes"]

NOISE_READ = 2**31
"""Per-read stream offset of the output noise: a forward pass's noise for chip i comes from
``chip_seed(seed, i, NOISE_READ + r)`` (r = 0 for a forward over all inputs at once, r = j + 1
for input j of a per-read loop), apart from the weights' streams (r < 2^31)."""


def install(module: nn.Module, mapped: MappedModel, periphery: Periphery) -> None:
    """Wrap every mapped layer of `module` (the batched copy of the ideal chip) in the
    periphery; a no-op for the ideal periphery."""
    if periphery.ideal:
        return
    modules = dict(module.named_modules())
    for layer in mapped.layers:
        target = modules[layer.name]
        target.register_buffer(NOISE_BUFFER, torch.zeros(0, device=mapped.reference.device),
                               persistent=False)
        target.register_forward_pre_hook(_PreHook(periphery))
        target.register_forward_hook(_PostHook(periphery, layer.max_abs))


def noise_shapes(module: nn.Module, mapped: MappedModel,
                 input_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """Each mapped layer's output shape for one input (what its noise buffer holds per input)."""
    shapes: dict[str, tuple[int, ...]] = {}
    modules = dict(module.named_modules())
    handles = [modules[layer.name].register_forward_hook(
        lambda m, _, out, name=layer.name: shapes.__setitem__(name, tuple(out.shape[1:])))
        for layer in mapped.layers]
    try:
        with torch.no_grad():
            module(torch.zeros(1, *input_shape, device=mapped.reference.device))
    finally:
        for handle in handles:
            handle.remove()
    return shapes


def draw_noise(shapes: dict[str, tuple[int, ...]], periphery: Periphery, seed: int,
               chips: Sequence[int], n_inputs: int, read: int = 0,
               device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Output noise of `chips` for a forward pass over `n_inputs` inputs, by buffer name:
    float32 ``(len(chips), n_inputs, *shape)`` per layer on `device`, ``out_noise · N(0, 1)``;
    chip i's draws come from its own generator there (`NOISE_READ` + `read`), layer after
    layer."""
    if periphery.out_noise == 0:
        return {}
    noise = {name: torch.empty(len(chips), n_inputs, *shape, device=device)
             for name, shape in shapes.items()}
    for row, chip_seed in enumerate(chip_seeds(seed, chips, NOISE_READ + read)):
        generator = torch.Generator(device=device).manual_seed(chip_seed)
        for tensor in noise.values():
            tensor[row].normal_(0.0, periphery.out_noise, generator=generator)
    return {f"{name}.{NOISE_BUFFER}": tensor for name, tensor in noise.items()}


class _PreHook:
    """Noise management and DAC: x → codes · scale (`dac_codes`); α, the largest |x| of each
    sample, is kept for the output side."""

    def __init__(self, periphery: Periphery) -> None:
        self.bits = periphery.dac_bits

    def __call__(self, layer: nn.Module, args: tuple) -> tuple:
        (x,) = args
        alpha = x.abs().reshape(x.shape[0], -1).amax(dim=1)
        alpha = torch.where(alpha > 0, alpha, torch.ones_like(alpha))
        layer._cimtest_alpha = alpha.reshape(-1, *([1] * (x.dim() - 1)))
        if self.bits is None:
            return (x,)
        codes, scale = dac_codes(x, self.bits)
        return (codes * scale,)


class _PostHook:
    """Output noise, ADC and scale back, on ``(W x)`` in units of α ω (the bias is digital)."""

    def __init__(self, periphery: Periphery, omega: float) -> None:
        self.omega = float(omega) if omega > 0 else 1.0
        self.bound = periphery.adc_bound
        self.step = None if periphery.adc_bits is None else (
            2.0 * periphery.adc_bound / (2**periphery.adc_bits - 2))

    def __call__(self, layer: nn.Module, args: tuple, out: torch.Tensor) -> torch.Tensor:
        alpha = layer._cimtest_alpha
        bias = layer.bias
        shape = (-1, *([1] * (out.dim() - 2)))
        analog = out if bias is None else out - bias.reshape(shape)
        scale = alpha * self.omega
        y = analog / scale
        noise = getattr(layer, NOISE_BUFFER)
        if noise.numel():
            y = y + noise
        if self.step is not None:
            y = torch.round(y / self.step) * self.step
        if self.bound is not None:
            y = torch.clamp(y, -self.bound, self.bound)
        y = y * scale
        return y if bias is None else y + bias.reshape(shape)
