"""What a model is on a chip: its mapped layers and cells, its float and ideal-chip accuracy."""

from __future__ import annotations

import torch

from cimtest.data import Dataset
from cimtest.engine import Population, chip_accuracies
from cimtest.hardware import cells_per_weight
from cimtest.loading import LoadedModel

__all__ = ["float_accuracy", "model_report"]


def float_accuracy(loaded: LoadedModel, dataset: Dataset) -> float:
    """The float model's accuracy (percent; mean IoU for segmentation) on `dataset`."""
    with torch.no_grad():
        out = torch.cat([loaded.module(x) for x in dataset.x.split(512)])
    return chip_accuracies(out.unsqueeze(0), dataset.y, loaded.task)[0].item()


def model_report(
    loaded: LoadedModel,
    data: Dataset | None,
    array_size: tuple[int, int] | None,
    bits_per_cell: int,
) -> dict:
    """A model's layers, crossbar arrays and cells, and its float and ideal-chip accuracy on
    `data` (None: not measured), as one JSON-safe dict (what ``cimtest info`` prints)."""
    population = Population(loaded.module, "none", n=1, array_size=array_size,
                            bits_per_cell=bits_per_cell)
    per_weight = cells_per_weight(bits_per_cell)
    layers = [
        {
            "name": layer.name,
            "kind": layer.geometry.kind,
            "weight_shape": list(layer.geometry.weight_shape),
            "weights": layer.numel,
            "rows": layer.geometry.rows,
            "cols": layer.geometry.cols,
            "arrays": layer.geometry.arrays,
            "cells": layer.numel * per_weight,
            "scale": layer.scale,
        }
        for layer in population.mapped.layers
    ]
    report = {
        "float_accuracy": None,
        "ideal_accuracy": None,
        "data": None,
        "name": loaded.name,
        "task": loaded.task,
        "input_shape": list(loaded.input_shape),
        "output_shape": list(loaded.output_shape),
        "fingerprint": loaded.fingerprint,
        "params": sum(p.numel() for p in loaded.module.parameters()),
        "mapped_weights": sum(r["weights"] for r in layers),
        "cells": sum(r["cells"] for r in layers),
        "arrays": sum(r["arrays"] for r in layers),
        "bits_per_cell": bits_per_cell,
        "layers": layers,
    }
    if data is not None:
        report["float_accuracy"] = float_accuracy(loaded, data)
        report["ideal_accuracy"] = population.accuracy(data.x, data.y, task=loaded.task)[0].item()
        report["data"] = data.name
    return report
