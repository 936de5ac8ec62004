"""zoo/: the papers' architectures at digits sizes, their training recipes and trained cache.

Names carry the input size: ``resnet20`` (3x32x32, the papers' size), ``resnet20-16``
(3x16x16), ``resnet20-8`` (1x8x8, native digits). `load_trained` returns a cached trained
model, training it on the embedded digits the first time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cimtest._lazy import lazy_names

if TYPE_CHECKING:
    from cimtest.zoo.cache import (
        SHIPPED,
        cache_dir,
        is_trained,
        load_trained,
        model_paths,
        save_trained,
    )
    from cimtest.zoo.registry import ZooEntry, get_entry, list_models
    from cimtest.zoo.repvgg import reparameterise
    from cimtest.zoo.training import RECIPES, Recipe, TrainResult, train, train_group

_HOMES = {
    "cache": ("SHIPPED", "cache_dir", "is_trained", "load_trained", "model_paths",
              "save_trained"),
    "registry": ("ZooEntry", "get_entry", "list_models"),
    "repvgg": ("reparameterise",),
    "training": ("RECIPES", "Recipe", "TrainResult", "train", "train_group"),
}
"""Where each public name lives: imported on first use, so that reading the catalogue
(`list_models`, `is_trained`) imports no torch."""

__all__ = [
    "RECIPES",
    "SHIPPED",
    "Recipe",
    "TrainResult",
    "ZooEntry",
    "cache_dir",
    "get_entry",
    "is_trained",
    "list_models",
    "load_trained",
    "model_paths",
    "reparameterise",
    "save_trained",
    "train",
    "train_group",
]


__getattr__, __dir__ = lazy_names(__name__, _HOMES, __all__)
