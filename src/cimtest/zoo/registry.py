"""The zoo's catalogue: every architecture at the input sizes it supports, by name.

A digits model's name is the architecture alone for 32x32 RGB inputs (the papers' CIFAR
size), or with a ``-16`` (3x16x16) or ``-8`` (1x8x8, the native digits) suffix: ``resnet20``,
``resnet20-16``, ``resnet20-8``. Models of the other built-in data sets carry the set's name:
``lenet5-mnist`` and ``resnet20-mnist`` (1x28x28), ``cnn-mnist1d`` (1x40) and ``mlp-mnist1d``
(40). Entries build untrained models; `cimtest.zoo.training` trains them on their data set.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cimtest.exceptions import ModelError
from cimtest.tasks import TASKS, Task

if TYPE_CHECKING:
    from torch import nn

__all__ = ["LATENT_DIM", "NUM_CLASSES", "SIZES", "TASKS", "ZooEntry", "get_entry",
           "list_models"]

# The catalogue imports no torch: `cimtest zoo list` reads it (names, shapes and the recorded
# parameter counts) in well under a second; the architectures are imported by `build`.

SIZES: tuple[int, ...] = (32, 16, 8)
"""Image sides the zoo offers: 32 and 16 with 3 channels, 8 with 1 channel."""

NUM_CLASSES = {"classification": 10, "segmentation": 11}
"""Outputs per image (or per pixel) of the digits tasks: 10 digits; background + 10 digits."""

LATENT_DIM = 100
"""Length of the DCGAN generator's latent vector (its input shape in the catalogue)."""

Factory = Callable[[int, int, int], "nn.Module"]


def _load(path: str) -> Callable:
    """The object at ``"module:name"`` under ``cimtest.zoo`` (imported on first use)."""
    module, name = path.split(":")
    return getattr(importlib.import_module(f"cimtest.zoo.{module}"), name)


@dataclass(frozen=True)
class _Arch:
    """How to build one architecture: (in_channels, image_size, outputs) → training form.

    `factory` and `deploy` are ``"module:name"`` paths under ``cimtest.zoo``, imported when a
    model is built, so that reading the catalogue imports no torch.
    """

    task: Task
    factory: str
    deploy: str | None = None


def _generator(in_channels: int, image_size: int, outputs: int) -> nn.Module:
    del outputs
    return _load("dcgan:DCGANGenerator")(in_channels, image_size, LATENT_DIM)


def _discriminator(in_channels: int, image_size: int, outputs: int) -> nn.Module:
    del outputs
    return _load("dcgan:DCGANDiscriminator")(in_channels, image_size)


_ARCHS: dict[str, _Arch] = {
    "resnet20": _Arch("classification", "resnet:resnet20"),
    "resnet56": _Arch("classification", "resnet:resnet56"),
    "vgg16": _Arch("classification", "vgg:VGG16"),
    "mobilenet-v1": _Arch("classification", "mobilenet:MobileNetV1"),
    "mobilenet-v2": _Arch("classification", "mobilenet:MobileNetV2"),
    "repvgg-a0": _Arch("classification", "repvgg:repvgg_a0", "repvgg:reparameterise"),
    "lenet5": _Arch("classification", "small:LeNet5"),
    "mlp": _Arch("classification", "small:MLP"),
    "unet": _Arch("segmentation", "segmentation:UNet"),
    "fcn": _Arch("segmentation", "segmentation:FCN"),
    "dcgan-g": _Arch("generation", "registry:_generator"),
    "dcgan-d": _Arch("discrimination", "registry:_discriminator"),
    "cnn": _Arch("classification", "sequence:ConvNet1D"),
    "mlp1d": _Arch("classification", "sequence:MLP1D"),
}

_PARAMS: dict[str, int] = {
    "resnet20": 272_474,
    "resnet20-16": 272_474,
    "resnet20-8": 272_186,
    "resnet56": 855_770,
    "resnet56-16": 855_770,
    "resnet56-8": 855_482,
    "vgg16": 14_724_042,
    "vgg16-16": 14_724_042,
    "vgg16-8": 14_722_890,
    "mobilenet-v1": 3_217_226,
    "mobilenet-v1-16": 3_217_226,
    "mobilenet-v1-8": 3_216_650,
    "mobilenet-v2": 2_236_682,
    "mobilenet-v2-16": 2_236_682,
    "mobilenet-v2-8": 2_236_106,
    "repvgg-a0": 7_041_194,
    "repvgg-a0-16": 7_041_194,
    "repvgg-a0-8": 7_040_330,
    "lenet5": 62_006,
    "lenet5-16": 21_686,
    "lenet5-8": 21_386,
    "mlp": 820_874,
    "mlp-16": 231_050,
    "mlp-8": 50_826,
    "unet": 117_531,
    "unet-16": 117_531,
    "unet-8": 117_243,
    "fcn": 295_761,
    "fcn-16": 295_761,
    "fcn-8": 295_185,
    "dcgan-g": 1_068_928,
    "dcgan-g-16": 339_328,
    "dcgan-g-8": 183_680,
    "dcgan-d": 663_296,
    "dcgan-d-16": 136_448,
    "dcgan-d-8": 132_864,
    "lenet5-mnist": 61_706,
    "resnet20-mnist": 272_186,
    "cnn-mnist1d": 5_210,
    "mlp-mnist1d": 15_210,
}
"""Parameters of each entry's deployment form (weights, biases, BN affine), recorded so that
listing the zoo builds no model. `tests/zoo/test_zoo_registry.py` builds every entry and
checks its count here; after changing an architecture, update its rows from the failure."""


@dataclass(frozen=True)
class ZooEntry:
    """One zoo model: an architecture at one input size, trained on the digits of that size.

    Attributes
    ----------
    name : str
        ``"resnet20"`` (3x32x32), ``"resnet20-16"`` (3x16x16), ``"resnet20-8"`` (1x8x8).
    arch : str
        Architecture, e.g. ``"resnet20"``.
    task : str
        One of `TASKS`.
    input_shape : tuple of int
        Shape of one input without the batch dimension: (C, H, W), or (100,) for the
        generator's latent vector.
    output_shape : tuple of int
        Shape of one output: (10,) logits, (11, H, W) per-pixel logits, (C, H, W) image,
        or (1,) real/fake logit.
    data_size : int
        Side of the images (32, 16 or 8 for the digits, 28 for MNIST) or length of the
        sequences (40 for MNIST-1D) this entry trains on.
    dataset : str
        The built-in data set it trains on: ``"digits"``, ``"mnist"`` or ``"mnist1d"``.
    """

    name: str
    arch: str
    task: Task
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    data_size: int
    dataset: str = "digits"

    def build(self, *, seed: int = 0, deploy: bool = True) -> nn.Module:
        """Return the untrained model in eval mode, initialised from `seed` (global RNG untouched).

        Parameters
        ----------
        seed : int
            Seed of the weight initialisation; the same seed gives the same weights.
        deploy : bool
            The deployment form (default), which a chip maps and the cache stores. False
            gives the training form; they differ only for RepVGG, whose training form has
            multi-branch blocks (see `cimtest.zoo.repvgg.reparameterise`).
        """
        import torch

        factory = _load(_ARCHS[self.arch].factory)
        channels = 3 if self.dataset == "digits" and self.data_size != 8 else 1
        outputs = NUM_CLASSES.get(self.task, 1)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = factory(channels, self.data_size, outputs)
        return self.deploy(model) if deploy else model.eval()

    def deploy(self, model: nn.Module) -> nn.Module:
        """Return a training-form `model` of this entry in deployment form, in eval mode.

        The identity for every architecture but RepVGG, whose blocks are fused (a copy).
        """
        transform = _ARCHS[self.arch].deploy
        return (model if transform is None else _load(transform)(model)).eval()

    @property
    def params(self) -> int:
        """Number of parameters of the deployment form (weights, biases, BN affine), as
        recorded in the catalogue (no model is built)."""
        return _PARAMS[self.name]


def _entry(arch: str, size: int) -> ZooEntry:
    task = _ARCHS[arch].task
    name = arch if size == 32 else f"{arch}-{size}"
    image = (1 if size == 8 else 3, size, size)
    input_shape = (LATENT_DIM,) if task == "generation" else image
    output_shape = {
        "classification": (NUM_CLASSES["classification"],),
        "segmentation": (NUM_CLASSES["segmentation"], size, size),
        "generation": image,
        "discrimination": (1,),
    }[task]
    return ZooEntry(name, arch, task, input_shape, output_shape, size)


_OTHER_DATA = (
    ZooEntry("lenet5-mnist", "lenet5", "classification", (1, 28, 28), (10,), 28, "mnist"),
    ZooEntry("resnet20-mnist", "resnet20", "classification", (1, 28, 28), (10,), 28, "mnist"),
    ZooEntry("cnn-mnist1d", "cnn", "classification", (1, 40), (10,), 40, "mnist1d"),
    ZooEntry("mlp-mnist1d", "mlp1d", "classification", (40,), (10,), 40, "mnist1d"),
)
"""The models of MNIST (1x28x28) and MNIST-1D (1x40 for the CNN, 40 for the MLP)."""

_ENTRIES: dict[str, ZooEntry] = {
    e.name: e for e in (_entry(arch, size) for arch in _ARCHS if arch not in ("cnn", "mlp1d")
                        for size in SIZES)
} | {e.name: e for e in _OTHER_DATA}


def list_models() -> list[ZooEntry]:
    """Return every zoo entry: the digits architectures in catalogue order, each at sizes
    32, 16, 8, then the MNIST and MNIST-1D models."""
    return list(_ENTRIES.values())


def get_entry(name: str) -> ZooEntry:
    """Return the entry called `name`; raise `ModelError` listing the known names if unknown."""
    try:
        return _ENTRIES[name]
    except (KeyError, TypeError):
        close = difflib.get_close_matches(str(name), list(_ENTRIES), n=3, cutoff=0.6)
        names = f"{', '.join(close[:-1])} or {close[-1]}" if len(close) > 1 else "".join(close)
        hint = f" (did you mean {names}?)" if close else ""
        raise ModelError(f"unknown zoo model {name!r}{hint}; `cimtest zoo list` shows all "
                         f"{len(_ENTRIES)}, or give package.module:factory or a .pt2 "
                         "archive") from None
