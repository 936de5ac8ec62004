"""Batched evaluation: a chunk of chips is a stack of weight sets evaluated in one vmap call."""

from __future__ import annotations

import copy
import functools
import logging
import threading

import torch
from torch import nn
from torch.func import functional_call, vmap
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from cimtest._reproducible import PORTABLE, mkl_single_threaded, mkl_strict, portable
from cimtest._threads import parallel_map
from cimtest.engine.periphery import install
from cimtest.hardware import MappedModel
from cimtest.hardware.periphery import Periphery

_logger = logging.getLogger(__name__)

__all__ = ["DENSE_INPUTS", "DENSE_WORK", "MICRO_BATCH", "BatchedForward", "activation_bytes"]

MICRO_BATCH = 8
"""Chips are evaluated in groups of a multiple of this size (the last group padded).

CPU convolution kernels pick their blocking from the number of groups, so a chip's outputs
could differ in the last bits between a chunk of 1 and a chunk of 7 chips. With every call
a multiple of 8 chips, a chip's outputs are bit-identical whatever the chunk size or its
position in the chunk (tested on every zoo architecture).
"""

DENSE_INPUTS = 128
"""From this many inputs shared by every chip, chips run as dense forwards (one chip per
thread, see `BatchedForward`). vmap's grouped convolutions pay while a chip's own batch is
too small, but fall to a third of the dense speed at 540 inputs (ResNet-20 8x8, one
thread). A chip's outputs depend only on its weights and the inputs, so results stay
chunk-invariant."""

DENSE_WORK = 100_000_000
"""From this many multiply-accumulates per chip (its inputs x the model's per input), chips
run as dense forwards whatever their count of inputs: measured on 8 chips (docs/engine.md,
"Dense or vmap"), vmap was faster in 8 of 11 cases up to 65 M (ResNet-20 at 1 input of
3x32x32, at 16 of 1x8x8) and 1.2-4.5x slower in every case from 160 M (ResNet-20 at 4
inputs, ResNet-18 and VGG-16 at 1)."""


SMALL_OUTPUT = 64
"""A convolution whose output has at most this many positions over all inputs of a chip
(N x H_out x W_out) runs as one matmul over unfolded patches; larger ones stay convolutions,
except 1x1 convolutions, which always run as matmuls."""


class _PatchMatmulConv2d(nn.Conv2d):
    """A Conv2d (groups 1, zero padding) that computes small outputs and every 1x1
    convolution as W @ unfold(x).

    Under vmap with per-chip weights, a convolution becomes a grouped convolution, which
    oneDNN runs slowly on small maps; a matmul becomes one batched matmul (faster at a few
    inputs per chip, no gain from 32 inputs, where outputs exceed `SMALL_OUTPUT` and the
    convolution is kept; measured in docs/engine.md). oneDNN's AVX-512 grouped 1x1
    convolution rounds differently with the thread count (MobileNet-v2, 8 groups of 32 -> 16
    channels, 1 against 2 threads); as a matmul, MKL's strict mode makes it exact.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            return super().forward(x)
        n, _, h, w = x.shape
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (self.kernel_size, self.stride, self.padding,
                                                  self.dilation)
        ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
        wo = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        if n * ho * wo > SMALL_OUTPUT and (kh, kw) != (1, 1):
            return super().forward(x)
        cols = _patches(x, self.kernel_size, self.dilation, self.padding, self.stride)
        out = self.weight.reshape(self.out_channels, -1) @ cols
        if self.bias is not None:
            out = out + self.bias.reshape(-1, 1)
        return out.reshape(self.out_channels, n, ho, wo).transpose(0, 1)


class _PatchMatmulConvTranspose2d(nn.ConvTranspose2d):
    """A ConvTranspose2d (groups 1, zero padding) that computes small outputs as
    fold(Wᵀ @ x): oneDNN's transposed convolution rounds differently with the thread count
    (the DCGAN generator at one input, 8 against 1-4 threads); a matmul on one MKL thread
    and `F.fold`'s fixed summation order do not."""

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if x.dim() != 4 or output_size is not None:
            return super().forward(x, output_size)
        n, c_in, h, w = x.shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        (dh, dw), (oh, ow) = self.dilation, self.output_padding
        ho = (h - 1) * sh - 2 * ph + dh * (kh - 1) + oh + 1
        wo = (w - 1) * sw - 2 * pw + dw * (kw - 1) + ow + 1
        if n * ho * wo > SMALL_OUTPUT:
            return super().forward(x)
        cols = self.weight.reshape(c_in, -1).t() @ x.transpose(0, 1).reshape(c_in, -1)
        cols = cols.reshape(-1, n, h * w).transpose(0, 1)
        out = F.fold(cols, (ho + 2 * ph, wo + 2 * pw), (kh, kw), dilation=(dh, dw),
                     stride=(sh, sw))[..., ph : ph + ho, pw : pw + wo]
        return out if self.bias is None else out + self.bias.reshape(1, -1, 1, 1)


def _patches(
    x: torch.Tensor,
    kernel: tuple[int, int],
    dilation: tuple[int, int],
    padding: tuple[int, int],
    stride: tuple[int, int],
) -> torch.Tensor:
    """The patch columns of `x` (N, C, H, W): (C * kh * kw, N * H_out * W_out), ordered as
    ``F.unfold(x).transpose(0, 1)``, but built from views and one copy: im2col loops over
    the samples (and under vmap over the chips), which cost ResNet-20 8x8 40 % of its time."""
    (kh, kw), (dh, dw), (ph, pw), (sh, sw) = kernel, dilation, padding, stride
    c = x.shape[1]
    padded = F.pad(x, (pw, pw, ph, ph))
    windows = padded.unfold(2, dh * (kh - 1) + 1, sh).unfold(3, dw * (kw - 1) + 1, sw)
    windows = windows[..., ::dh, ::dw]  # (N, C, H_out, W_out, kh, kw)
    return windows.permute(1, 4, 5, 0, 2, 3).reshape(c * kh * kw, -1)


def _with_patch_matmuls(module: nn.Module) -> nn.Module:
    """A copy of `module` whose plain (transposed) convolutions run as patch matmuls (same
    parameters)."""
    module = copy.deepcopy(module)
    patched = {nn.Conv2d: _PatchMatmulConv2d, nn.ConvTranspose2d: _PatchMatmulConvTranspose2d}
    for layer in module.modules():
        if type(layer) in patched and layer.groups == 1 and layer.padding_mode == "zeros" \
                and not isinstance(layer.padding, str):
            layer.__class__ = patched[type(layer)]
    return module


class BatchedForward:
    """Evaluate many chips at once: ``(B, P)`` flat chip weights × inputs → ``(B, N, *out)``.

    Only the mapped weights differ between chips; biases, normalisation and every other
    parameter come from the ideal chip. The batched weights go through
    `torch.func.functional_call` under `torch.func.vmap`, which turns each convolution into
    one grouped convolution over the chunk (no Python loop over chips, no model copies).
    """

    def __init__(self, mapped: MappedModel, periphery: Periphery | None = None) -> None:
        self.mapped = mapped
        self.periphery = periphery or Periphery()
        self.module = self._module()
        self._local = threading.local()
        self._macs: dict[tuple[int, ...], int] = {}
        _warn_unless_reproducible()

    def __getstate__(self) -> dict:
        """Pickled (to Dask workers) without the threads' module copies, made again there."""
        state = self.__dict__.copy()
        del state["_local"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    def _module(self) -> nn.Module:
        """The ideal chip as the batched forward runs it: patch matmuls, the periphery."""
        module = _with_patch_matmuls(self.mapped.ideal)
        install(module, self.mapped, self.periphery)
        return module

    def dense(self, x_shape: tuple[int, ...]) -> bool:
        """Whether chips run on inputs of shape `x_shape` (N, *input_shape) as dense
        forwards, one chip after another per thread: from `DENSE_INPUTS` inputs or
        `DENSE_WORK` multiply-accumulates per chip; below, as one vmap call."""
        n, shape = x_shape[0], tuple(x_shape[1:])
        if shape not in self._macs:
            self._macs[shape] = input_macs(self.mapped.ideal, shape)
        return n >= DENSE_INPUTS or n * self._macs[shape] >= DENSE_WORK

    def _call(self, weights: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.module, weights, (x,))

    def _own_call(self, weights: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """`_call` on this thread's own copy of the module: `functional_call` swaps a
        module's parameters in place, so threads must not share one."""
        module = getattr(self._local, "module", None)
        if module is None:
            module = self._local.module = self._module()
        return functional_call(module, weights, (x,))

    @torch.no_grad()
    def __call__(self, flat: torch.Tensor, x: torch.Tensor, *, per_chip_input: bool = False,
                 noise: dict[str, torch.Tensor] | None = None):
        """Forward chip weights `flat` (float32, (B, P)) on `x`.

        `noise`: the periphery's output noise of each chip by buffer name, (B, N, *out) per
        mapped layer (`cimtest.engine.periphery.draw_noise`); none without output noise.

        `x` is (N, *input_shape), shared by every chip, or with ``per_chip_input`` (B, N,
        *input_shape). Returns float32 of shape (B, N, *output_shape). Under vmap, MKL runs
        each product on one thread (`mkl_single_threaded`): the chips' small products would
        otherwise round differently with the thread count on AMD CPUs; the chips are spread
        over torch's threads instead, one group (a multiple of `MICRO_BATCH`) per thread
        (`parallel_map`). Chips run as dense forwards (`dense`) one per thread too: a dense
        product of a few inputs also rounds differently with the thread count (VGG-16 at 4
        inputs, 1 against 2 threads), and two chips at once outrun one chip on two threads.
        """
        n_chips = flat.shape[0]
        noise = noise or {}
        if not per_chip_input and self.dense(tuple(x.shape)):
            weights = {**self.mapped.layer_weights(flat), **noise}

            def chip(i: int) -> torch.Tensor:
                """Chip `i`'s dense forward, on one thread."""
                with mkl_single_threaded():
                    return self._own_call({name: w[i] for name, w in weights.items()}, x)

            return torch.stack(parallel_map(chip, range(n_chips), pooled=True))
        pad = -n_chips % MICRO_BATCH
        if pad:
            flat = torch.cat([flat, flat[-1:].expand(pad, -1)])
            noise = {k: torch.cat([v, v[-1:].expand(pad, *v.shape[1:])]) for k, v in noise.items()}
            if per_chip_input:
                x = torch.cat([x, x[-1:].expand(pad, *x.shape[1:])])
        in_dims = (0, 0 if per_chip_input else None)
        step = MICRO_BATCH * -(-flat.shape[0] // (MICRO_BATCH * torch.get_num_threads()))

        def run(lo: int) -> torch.Tensor:
            """Chips ``lo:lo + step`` (a multiple of `MICRO_BATCH`) on one thread."""
            part = {**self.mapped.layer_weights(flat[lo : lo + step]),
                    **{k: v[lo : lo + step] for k, v in noise.items()}}
            with mkl_single_threaded():
                return vmap(self._own_call, in_dims=in_dims)(
                    part, x[lo : lo + step] if per_chip_input else x)

        groups = range(0, flat.shape[0], step)
        return torch.cat(parallel_map(run, groups, pooled=True))[:n_chips]


@functools.cache
def _warn_unless_reproducible() -> None:
    held = not portable() or torch.backends.cpu.get_cpu_capability() != "AVX512"
    if mkl_strict() is False or not held:
        _logger.warning(
            "torch's math libraries were set up before cimtest was imported (or MKL_CBWR, "
            "ATEN_CPU_CAPABILITY is set otherwise): chips may differ in their last bits between "
            "chunk sizes, thread counts and CPUs; import cimtest before running torch, or set "
            "%s", " ".join(f"{k}={v}" for k, v in PORTABLE.items()))


@torch.no_grad()
def input_macs(module: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one forward of one input (torch's FLOP counter, halved)."""
    device = next(module.parameters(), torch.empty(0)).device
    with FlopCounterMode(display=False) as counter:
        module(torch.zeros(1, *input_shape, device=device))
    return counter.get_total_flops() // 2


LIVE_ACTIVATIONS = 6
"""Working set of a forward, in units of its largest intermediate output (input, output,
a residual branch, and the convolution's scratch space), for chunk sizing."""


@torch.no_grad()
def activation_bytes(module: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Estimated peak working set of one forward of one input, in bytes (for chunk sizing)."""
    largest = 0

    def hook(_module, _inputs, output):
        nonlocal largest
        if isinstance(output, torch.Tensor):
            largest = max(largest, output.numel() * output.element_size())

    device = next(module.parameters(), torch.empty(0)).device
    handles = [m.register_forward_hook(hook) for m in module.modules() if m is not module]
    try:
        module(torch.zeros(1, *input_shape, device=device))
    finally:
        for handle in handles:
            handle.remove()
    return LIVE_ACTIVATIONS * max(largest, 4)
