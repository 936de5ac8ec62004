"""Training recipes for the zoo and the deterministic training loop on the built-in data.

`RECIPES` holds one recipe per architecture. Training is bit-reproducible for a seed: the
initialisation uses ``torch.manual_seed(seed)`` (inside a forked RNG, so the caller's global
state is untouched) and shuffling, augmentation and GAN latents draw from one
``torch.Generator`` seeded with `seed`. Classifiers use cross-entropy, segmenters per-pixel
cross-entropy, and the DCGAN pair the non-saturating GAN loss; both GAN halves train
together, so `train_group` returns both.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

import cimtest
from cimtest.data import builtin_splits, digits
from cimtest.exceptions import ConfigError
from cimtest.fingerprint import state_fingerprint
from cimtest.metrics import accuracy, mean_iou
from cimtest.tasks import ScoredTask
from cimtest.zoo.dcgan import LATENT_DIM
from cimtest.zoo.registry import ZooEntry, get_entry

if TYPE_CHECKING:
    from cimtest.data import Dataset, DataSplits

__all__ = [
    "METRICS",
    "RECIPES",
    "Progress",
    "Recipe",
    "TrainResult",
    "recipe_for",
    "train",
    "train_group",
]

logger = logging.getLogger(__name__)

Progress = Callable[[int, int, dict], None]
"""Called after each epoch as ``progress(epoch, epochs, {"loss": ..., "metric": ...})``."""

METRICS = {
    "classification": "accuracy",
    "segmentation": "mean_iou",
    "generation": "d_accuracy",
    "discrimination": "d_accuracy",
}
"""The metric each task reports on the digits test split: accuracy in percent, mean IoU in
[0, 1], and for the GAN pair the discriminator's accuracy (percent) at telling the test
images from as many generated ones."""


@dataclass(frozen=True)
class Recipe:
    """Hyper-parameters of one training run.

    Attributes
    ----------
    optimiser : str
        ``"sgd"`` (momentum 0.9, Nesterov) or ``"adam"``.
    lr : float
        Peak learning rate.
    epochs : int
        Passes over the 1,257 training images.
    batch_size : int
        Images per step.
    weight_decay : float
        L2 penalty (SGD) or Adam's coupled weight decay.
    schedule : str
        ``"cosine"``: linear warm-up over `warmup_epochs`, then cosine decay to 0, per step;
        ``"constant"``: `lr` throughout.
    warmup_epochs : int
        Epochs of linear warm-up (cosine schedule only).
    shift : float
        Augmentation: each image is translated by a random whole number of pixels, up to
        ``round(shift * side)`` in each direction, padding with background (0 = none).
    betas : tuple of float
        Adam's betas.
    """

    optimiser: str
    lr: float
    epochs: int
    batch_size: int = 64
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    warmup_epochs: int = 1
    shift: float = 0.125
    betas: tuple[float, float] = (0.9, 0.999)


_SGD = Recipe("sgd", lr=0.1, epochs=40)
_ADAM = Recipe("adam", lr=1e-3, epochs=60, weight_decay=0.0)
_GAN = Recipe(
    "adam", lr=2e-4, epochs=100, weight_decay=0.0, schedule="constant", shift=0.0,
    betas=(0.5, 0.999),
)

RECIPES: dict[str, Recipe] = {
    "resnet20": _SGD,
    "resnet56": _SGD,
    "vgg16": replace(_SGD, lr=0.05, epochs=30),
    "mobilenet-v1": replace(_SGD, lr=0.05, epochs=60),
    "mobilenet-v2": replace(_ADAM, lr=2e-3, epochs=30),
    "repvgg-a0": replace(_SGD, lr=0.05, epochs=60),
    "lenet5": replace(_ADAM, lr=3e-3, batch_size=32),
    "mlp": replace(_ADAM, lr=3e-3, batch_size=32),
    "unet": replace(_ADAM, epochs=40),
    "fcn": _ADAM,
    "dcgan-g": _GAN,
    "dcgan-d": _GAN,
    "cnn": replace(_ADAM, lr=5e-3, epochs=30, batch_size=100, shift=0.0),
    "mlp1d": replace(_ADAM, lr=5e-3, epochs=30, batch_size=100, shift=0.0),
}
"""The recipe of each architecture (a key with a size suffix, e.g. ``"vgg16-8"``, would
override its architecture's recipe for that entry alone)."""


def recipe_for(entry: ZooEntry) -> Recipe:
    """Return the recipe of `entry`: its own if `RECIPES` names it, else its architecture's."""
    return RECIPES.get(entry.name, RECIPES[entry.arch])


@dataclass(frozen=True)
class TrainResult:
    """A trained zoo model and what describes its training.

    Attributes
    ----------
    model : torch.nn.Module
        The trained model in deployment form and eval mode.
    metadata : dict
        JSON-safe: ``name``, ``arch``, ``task``, ``input_shape``, ``output_shape``,
        ``data`` (dataset name), ``train_size``, ``recipe`` (`Recipe` as a dict), ``seed``,
        ``epochs``, ``metric`` (see `METRICS`), ``value`` (its value on the test split),
        ``train_seconds``, ``torch``, ``cimtest`` (versions) and ``fingerprint``
        (`cimtest.fingerprint.state_fingerprint` of the model).
    """

    model: nn.Module
    metadata: dict


def train(
    name: str,
    *,
    seed: int = 0,
    progress: Progress | None = None,
    epochs: int | None = None,
    train_subset: int | None = None,
) -> TrainResult:
    """Train the zoo model `name` on its built-in data set with its recipe.

    Parameters
    ----------
    name : str
        A zoo name (see `cimtest.zoo.list_models`).
    seed : int
        Seed of initialisation, shuffling and augmentation; equal seeds give bit-identical
        weights (on the same machine and torch build).
    progress : callable, optional
        ``progress(epoch, epochs, {"loss": ..., "metric": ...})`` after each epoch, with
        the mean training loss and the metric on the test split.
    epochs : int, optional
        Override the recipe's epochs (for quick runs and tests).
    train_subset : int, optional
        Train on the first `train_subset` training images only (for tests).

    Returns
    -------
    TrainResult
        The trained model (deployment form, eval mode) and its metadata. For ``dcgan-g`` and
        ``dcgan-d``, both halves are trained; use `train_group` to keep both.

    Raises
    ------
    ModelError
        If `name` is not in the zoo.
    ConfigError
        If `epochs` or `train_subset` is not positive.
    """
    return train_group(
        name, seed=seed, progress=progress, epochs=epochs, train_subset=train_subset
    )[name]


def train_group(
    name: str,
    *,
    seed: int = 0,
    progress: Progress | None = None,
    epochs: int | None = None,
    train_subset: int | None = None,
) -> dict[str, TrainResult]:
    """Train `name` and every zoo model trained together with it; return them by name.

    One model for most names; the generator and discriminator of the same size for
    ``dcgan-g*`` and ``dcgan-d*``. Parameters and errors are those of `train`.
    """
    entry = get_entry(name)
    for key, value in (("epochs", epochs), ("train_subset", train_subset)):
        if value is not None and (isinstance(value, bool) or value < 1):
            raise ConfigError(f"The '{key}' parameter of train must be >= 1; got {value!r}.")
    recipe = recipe_for(entry)
    if epochs is not None:
        recipe = replace(recipe, epochs=epochs)
    task = "classification" if entry.task in ("generation", "discrimination") else entry.task
    data = (digits(entry.data_size, task) if entry.dataset == "digits"
            else builtin_splits(entry.dataset, entry.input_shape, task))
    train_set = data.train if train_subset is None else data.train.subset(
        min(train_subset, len(data.train))
    )
    rng = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if entry.task in ("generation", "discrimination"):
            models, value = _train_gan(entry, data, train_set.x, recipe, seed, rng, progress)
        else:
            model = entry.build(seed=seed, deploy=False)
            _train_supervised(model, entry.task, data, train_set, recipe, rng, progress)
            models = {entry.name: entry.deploy(model)}
            value = _evaluate(models[entry.name], entry.task, data.test)
    seconds = time.perf_counter() - start
    results = {}
    for model_name, model in models.items():
        member = get_entry(model_name)
        metadata = {
            "name": member.name,
            "arch": member.arch,
            "task": member.task,
            "input_shape": list(member.input_shape),
            "output_shape": list(member.output_shape),
            "data": train_set.name,
            "train_size": len(train_set),
            "recipe": json.loads(json.dumps(asdict(recipe))),
            "seed": seed,
            "epochs": recipe.epochs,
            "metric": METRICS[member.task],
            "value": value,
            "train_seconds": round(seconds, 2),
            "torch": torch.__version__,
            "cimtest": cimtest.__version__,
            "fingerprint": state_fingerprint(model),
        }
        results[model_name] = TrainResult(model.eval(), metadata)
    logger.info("trained %s: %s = %.4g in %.1f s", name, METRICS[entry.task], value, seconds)
    return results


def _train_supervised(
    model: nn.Module,
    task: ScoredTask,
    data: DataSplits,
    train_set: Dataset,
    recipe: Recipe,
    rng: torch.Generator,
    progress: Progress | None,
) -> None:
    """Fit `model` with (per-pixel) cross-entropy, reporting the test metric each epoch."""
    optimiser, scheduler = _optimiser(model.parameters(), recipe, len(train_set))
    background = _background(data)
    for epoch in range(1, recipe.epochs + 1):
        model.train()
        total, seen = 0.0, 0
        for index in _batches(len(train_set), recipe.batch_size, rng):
            x, y = _shift(train_set.x[index], train_set.y[index], recipe.shift, background, rng)
            loss = F.cross_entropy(model(x), y)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            scheduler.step()
            total += loss.item() * len(index)
            seen += len(index)
        value = _evaluate(model, task, data.test)
        _report(progress, epoch, recipe.epochs, {"loss": total / seen, "metric": value})


def _train_gan(
    entry: ZooEntry,
    data: DataSplits,
    images: torch.Tensor,
    recipe: Recipe,
    seed: int,
    rng: torch.Generator,
    progress: Progress | None,
) -> tuple[dict[str, nn.Module], float]:
    """Train the DCGAN pair of `entry`'s size on `images`; return both and the D accuracy.

    Per batch: one discriminator step (real targets smoothed to 0.9, fakes 0), then one
    generator step with the non-saturating loss; the generator's output range is set to
    the data's `input_range` first.
    """
    suffix = entry.name[len(entry.arch):]
    g_entry, d_entry = get_entry("dcgan-g" + suffix), get_entry("dcgan-d" + suffix)
    generator, discriminator = g_entry.build(seed=seed), d_entry.build(seed=seed + 1)
    generator.to_range.set_range(*data.input_range)
    g_opt, g_sched = _optimiser(generator.parameters(), recipe, len(images))
    d_opt, d_sched = _optimiser(discriminator.parameters(), recipe, len(images))
    for epoch in range(1, recipe.epochs + 1):
        generator.train()
        discriminator.train()
        g_total = d_total = 0.0
        steps = 0
        for index in _batches(len(images), recipe.batch_size, rng):
            real = images[index]
            n = real.shape[0]
            fake = generator(torch.randn(n, LATENT_DIM, generator=rng))
            d_real, d_fake = discriminator(real), discriminator(fake.detach())
            d_loss = F.binary_cross_entropy_with_logits(
                d_real, torch.full_like(d_real, 0.9)
            ) + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
            d_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            d_opt.step()
            d_sched.step()
            d_out = discriminator(fake)
            g_loss = F.binary_cross_entropy_with_logits(d_out, torch.ones_like(d_out))
            g_opt.zero_grad(set_to_none=True)
            g_loss.backward()
            g_opt.step()
            g_sched.step()
            g_total += g_loss.item()
            d_total += d_loss.item()
            steps += 1
        value = _d_accuracy(generator, discriminator, data.test.x, seed)
        _report(
            progress,
            epoch,
            recipe.epochs,
            {"loss": g_total / steps, "d_loss": d_total / steps, "metric": value},
        )
    _precise_bn(generator, rng)
    value = _d_accuracy(generator, discriminator, data.test.x, seed)
    return {g_entry.name: generator.eval(), d_entry.name: discriminator.eval()}, value


def _d_accuracy(
    generator: nn.Module, discriminator: nn.Module, real: torch.Tensor, seed: int
) -> float:
    """Percent of `real` images and as many fakes (fixed latents) the discriminator gets right."""
    generator.eval()
    discriminator.eval()
    latents = torch.randn(len(real), LATENT_DIM, generator=torch.Generator().manual_seed(seed))
    with torch.inference_mode():
        fake = generator(latents)
        correct = (discriminator(real) > 0).sum() + (discriminator(fake) <= 0).sum()
    return 100.0 * correct.item() / (2 * len(real))


@torch.no_grad()
def _precise_bn(generator: nn.Module, rng: torch.Generator, batches: int = 32) -> None:
    """Replace the generator's BN running statistics by exact averages over fresh latents.

    The running averages drift with the weights during GAN training; recomputing them with
    the final weights makes eval-mode samples match train-mode ones.
    """
    norms = [m for m in generator.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    generator.train()
    for _ in range(batches):
        generator(torch.randn(64, LATENT_DIM, generator=rng))
    for m in norms:
        m.momentum = 0.1
    generator.eval()


def _evaluate(model: nn.Module, task: ScoredTask, test: Dataset) -> float:
    """Return the task's metric of `model` (put in eval mode) on the dataset `test`."""
    model.eval()
    with torch.inference_mode():
        logits = torch.cat([model(x) for x in test.x.split(256)])
    if task == "segmentation":
        return mean_iou(logits, test.y, test.num_classes)
    return accuracy(logits, test.y)


def _optimiser(
    params: Iterator[nn.Parameter], recipe: Recipe, n: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """Return the recipe's optimiser and its per-step learning-rate schedule for `n` images."""
    if recipe.optimiser == "sgd":
        optimiser: torch.optim.Optimizer = torch.optim.SGD(
            params, lr=recipe.lr, momentum=0.9, nesterov=True, weight_decay=recipe.weight_decay
        )
    elif recipe.optimiser == "adam":
        optimiser = torch.optim.Adam(
            params, lr=recipe.lr, betas=recipe.betas, weight_decay=recipe.weight_decay
        )
    else:
        raise ConfigError(f"Unknown optimiser {recipe.optimiser!r}; use 'sgd' or 'adam'.")
    per_epoch = len(_sizes(n, recipe.batch_size))
    total = max(1, per_epoch * recipe.epochs)
    warmup = min(per_epoch * recipe.warmup_epochs, total // 2)

    def factor(step: int) -> float:
        if recipe.schedule == "constant":
            return 1.0
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    return optimiser, torch.optim.lr_scheduler.LambdaLR(optimiser, factor)


def _sizes(n: int, batch_size: int) -> list[int]:
    """Batch sizes of one epoch over `n` items; a last batch of 1 is dropped (BN needs 2)."""
    sizes = [batch_size] * (n // batch_size) + ([n % batch_size] if n % batch_size else [])
    return [s for s in sizes if s > 1] or [n]


def _batches(n: int, batch_size: int, rng: torch.Generator) -> list[torch.Tensor]:
    """Index tensors of one shuffled epoch over `n` items (see `_sizes`)."""
    order = torch.randperm(n, generator=rng)
    return list(order.split(batch_size))[: len(_sizes(n, batch_size))]


def _background(data: DataSplits) -> torch.Tensor:
    """The normalised value of a blank pixel, per channel: shape (1, C, 1, 1)."""
    mean = torch.tensor(data.mean, dtype=torch.float32)
    std = torch.tensor(data.std, dtype=torch.float32)
    return (-mean / std).reshape(1, -1, 1, 1)


def _shift(
    x: torch.Tensor,
    y: torch.Tensor,
    fraction: float,
    background: torch.Tensor,
    rng: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Translate each image (and `y` with it when it is a label map) by a random offset.

    Offsets are whole pixels in ``[-s, s]`` with ``s = round(fraction * side)``; uncovered
    pixels become `background` (images) or class 0 (label maps).
    """
    if fraction == 0:  # also the sequences of MNIST-1D, which its generator translates
        return x, y
    n, _, h, w = x.shape
    s = round(fraction * h)
    if s == 0:
        return x, y
    dy = torch.randint(-s, s + 1, (n, 1), generator=rng)
    dx = torch.randint(-s, s + 1, (n, 1), generator=rng)
    rows = (torch.arange(h) + s + dy)[:, :, None]
    cols = (torch.arange(w) + s + dx)[:, None, :]
    batch = torch.arange(n)[:, None, None]
    padded = F.pad(x - background, (s, s, s, s))
    x = padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2) + background
    if y.dim() == 3:
        y = F.pad(y, (s, s, s, s))[batch, rows, cols]
    return x.contiguous(), y


def _report(progress: Progress | None, epoch: int, epochs: int, stats: dict) -> None:
    logger.info("epoch %d/%d: %s", epoch, epochs, stats)
    if progress is not None:
        progress(epoch, epochs, stats)
