"""RepVGG-A0 (Ding et al. 2021): multi-branch blocks for training, one 3x3 conv for deployment.

A training-time block sums a 3x3 conv+BN, a 1x1 conv+BN and (when the shape is kept) an
identity BN, then applies ReLU. Because every branch is linear in eval mode, `fuse` folds
them into a single 3x3 conv with bias (the paper's structural re-parameterisation); the
deployed model is a plain stack of 3x3 convs and ReLUs, which is what a chip maps.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["RepVGG", "RepVGGBlock", "reparameterise", "repvgg_a0"]


class RepVGGBlock(nn.Module):
    """One RepVGG block, in its training form until `fuse` turns it into one conv.

    Parameters
    ----------
    cin, cout, stride : int
        Input and output channels and stride.
    """

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.cin, self.cout, self.stride = cin, cout, stride
        self.conv3 = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        )
        self.conv1 = nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
        )
        self.identity = nn.BatchNorm2d(cin) if cin == cout and stride == 1 else None
        self.fused: nn.Conv2d | None = None
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return relu(sum of the branches), or relu(fused(x)) once fused."""
        if self.fused is not None:
            return self.relu(self.fused(x))
        out = self.conv3(x) + self.conv1(x)
        if self.identity is not None:
            out = out + self.identity(x)
        return self.relu(out)

    @torch.no_grad()
    def fuse(self) -> None:
        """Replace the branches by one 3x3 conv with bias that computes the same in eval mode.

        Each branch becomes a 3x3 kernel (the 1x1 kernel zero-padded, the identity an
        one-hot centre kernel) scaled by its BN, ``gamma / sqrt(var + eps)``, with bias
        ``beta - mean * gamma / sqrt(var + eps)``; kernels and biases add up. Idempotent;
        draws no random numbers.
        """
        if self.fused is not None:
            return
        kernel, bias = _fold(self.conv3[0].weight, self.conv3[1])
        k1, b1 = _fold(F.pad(self.conv1[0].weight, [1, 1, 1, 1]), self.conv1[1])
        kernel, bias = kernel + k1, bias + b1
        if self.identity is not None:
            eye = torch.zeros_like(kernel)
            eye[torch.arange(self.cout), torch.arange(self.cin), 1, 1] = 1.0
            ki, bi = _fold(eye, self.identity)
            kernel, bias = kernel + ki, bias + bi
        fused = nn.utils.skip_init(nn.Conv2d, self.cin, self.cout, 3, self.stride, 1)
        fused.weight.copy_(kernel)
        fused.bias.copy_(bias)
        self.fused = fused
        del self.conv3, self.conv1, self.identity
        self.identity = None


def _fold(kernel: torch.Tensor, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold eval-mode `bn` into a conv `kernel`: return the scaled kernel and the bias."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return kernel * scale.reshape(-1, 1, 1, 1), bn.bias - bn.running_mean * scale


class RepVGG(nn.Module):
    """A RepVGG network: 5 stages of `RepVGGBlock`, global average pool, linear.

    Parameters
    ----------
    in_channels, num_classes : int
        Input channels and number of logits.
    depths : tuple of int
        Blocks per stage (the first block of each stage has stride 2, except in stage 0).
    widths : tuple of int
        Output channels per stage.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        depths: tuple[int, ...],
        widths: tuple[int, ...],
    ) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        cin = in_channels
        for stage, (depth, width) in enumerate(zip(depths, widths)):
            for i in range(depth):
                stride = 2 if i == 0 and stage > 0 else 1
                blocks.append(RepVGGBlock(cin, width, stride))
                cin = width
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map images (N, C, H, W) to logits (N, num_classes)."""
        return self.fc(torch.flatten(self.pool(self.blocks(x)), 1))

    def fuse(self) -> RepVGG:
        """Fuse every block in place (see `RepVGGBlock.fuse`) and return the model."""
        for block in self.blocks:
            block.fuse()
        return self


def repvgg_a0(in_channels: int, image_size: int, num_classes: int) -> RepVGG:
    """RepVGG-A0 (a = 0.75, b = 2.5): depths 1-2-4-14-1, widths 48-48-96-192-1280.

    CIFAR form: stage 0 keeps stride 1 (32x32 ends at 2x2); `image_size` is accepted for a
    uniform factory call. Returned in training form; see `reparameterise`.
    """
    del image_size
    return RepVGG(in_channels, num_classes, (1, 2, 4, 14, 1), (48, 48, 96, 192, 1280))


def reparameterise(model: nn.Module) -> nn.Module:
    """Return an eval-mode copy of `model` with every `RepVGGBlock` fused into one conv.

    The input is left untouched; in eval mode the copy computes the same function (to
    float rounding) with a plain conv per block.
    """
    fused = copy.deepcopy(model).eval()
    for module in fused.modules():
        if isinstance(module, RepVGGBlock):
            module.fuse()
    return fused
