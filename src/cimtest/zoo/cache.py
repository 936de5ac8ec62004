"""The on-disk cache of trained zoo models: safetensors weights plus JSON metadata.

Files live in ``<cache_dir>/zoo/``: ``<name>.safetensors`` (the state dict) and
``<name>.json`` (the `TrainResult` metadata, with the weights' fingerprint). Each is written
to a temporary file in the same directory and moved into place with `os.replace`, so a
reader never sees half a file. Loading never unpickles and checks the fingerprint (the
weights) and the metadata's digest (the metadata, fingerprint included), so an edited or
corrupted entry is refused.

The default model's weights also ship with the package (``zoo/weights/``): training on
another CPU gives another model (the kernels round differently and training amplifies it),
so the demo would print another table. A model in the cache (``cimtest zoo train``) takes
precedence over the shipped one.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from cimtest.exceptions import ModelError
from cimtest.home import cache_dir
from cimtest.zoo.registry import get_entry

if TYPE_CHECKING:
    import torch

    from cimtest.zoo.training import Progress, TrainResult

# torch, safetensors and the training code are imported by the functions that read or write
# weights: `is_trained` and `model_paths` stay cheap for `cimtest zoo list`.

__all__ = ["SHIPPED", "cache_dir", "is_trained", "load_trained", "model_paths", "save_trained"]

SHIPPED = Path(__file__).parent / "weights"
"""Trained weights and metadata that ship with the package (the default model)."""

logger = logging.getLogger(__name__)


def model_paths(name: str) -> tuple[Path, Path]:
    """Return the weights (``.safetensors``) and metadata (``.json``) paths of zoo model
    `name`: the cache's when it holds both, else the shipped ones when they exist, else the
    cache's (where training writes)."""
    get_entry(name)
    cached = _paths(cache_dir() / "zoo", name)
    if _complete(cached) or not _complete(shipped := _paths(SHIPPED, name)):
        return cached
    return shipped


def is_trained(name: str) -> bool:
    """Return whether trained weights and metadata of zoo model `name` are at hand (cached
    or shipped)."""
    return _complete(model_paths(name))


def _paths(folder: Path, name: str) -> tuple[Path, Path]:
    return folder / f"{name}.safetensors", folder / f"{name}.json"


def _complete(paths: tuple[Path, Path]) -> bool:
    return all(path.is_file() for path in paths)


def save_trained(result: TrainResult) -> Path:
    """Write `result` to the cache atomically; return the weights path.

    The metadata file is written last, so `is_trained` is true only once both are complete.
    """
    from safetensors.torch import save_file

    from cimtest._atomic import atomic_file

    weights, meta = _paths(cache_dir() / "zoo", result.metadata["name"])
    weights.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in result.model.state_dict().items()}
    with atomic_file(weights) as tmp:
        save_file(state, str(tmp))
    text = metadata_text(result.metadata)
    with atomic_file(meta) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return weights


def metadata_text(metadata: dict) -> str:
    """The JSON text of a zoo entry's metadata, with its digest (`content_digest`, which
    covers the weights through the ``fingerprint`` entry)."""
    from cimtest.fingerprint import DIGEST_KEY, content_digest

    document = json.loads(json.dumps({k: v for k, v in metadata.items() if k != "source"}))
    document[DIGEST_KEY] = content_digest(document)
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def load_trained(
    name: str, *, train_if_missing: bool = True, progress: Progress | None = None
) -> tuple[torch.nn.Module, dict]:
    """Return the trained zoo model `name` (eval mode) and its metadata, training it if needed.

    The metadata's ``source`` says where the weights came from: ``"shipped"`` (the same on
    every machine) or ``"trained here"`` (numbers vary with the CPU that trained them).

    Parameters
    ----------
    name : str
        A zoo name.
    train_if_missing : bool
        When the cache lacks the model, train it with its recipe (seed 0) and cache it
        (with its GAN partner, for ``dcgan-*``); when False, raise instead.
    progress : callable, optional
        Passed to `cimtest.zoo.training.train_group` if training happens.

    Raises
    ------
    ModelError
        If `name` is unknown; if the model is not cached and `train_if_missing` is False;
        or if a cached file is corrupt (unreadable safetensors or JSON, keys or shapes not
        those of the architecture, fingerprint not that of the weights, digest not that of the
        metadata). The message names the file.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from cimtest.fingerprint import DIGEST_KEY, state_fingerprint
    from cimtest.zoo.training import train_group

    entry = get_entry(name)
    if not is_trained(name):
        if not train_if_missing:
            raise ModelError(
                f"zoo model {name!r} is not trained: no {model_paths(name)[0]}; "
                "train it with cimtest.zoo.load_trained (train_if_missing=True)"
            )
        logger.info("zoo model %s is not cached; training it", name)
        for result in train_group(name, progress=progress).values():
            save_trained(result)
    weights, meta = model_paths(name)
    try:
        metadata = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read zoo metadata {meta}: {exc}") from exc
    if not isinstance(metadata, dict) or not isinstance(metadata.get("fingerprint"), str):
        raise ModelError(f"zoo metadata {meta} has no 'fingerprint' entry")
    _check_digest(meta, weights, metadata)
    try:
        state = load_file(str(weights))
    except (OSError, SafetensorError) as exc:
        raise ModelError(f"cannot read zoo weights {weights}: {exc}") from exc
    if state_fingerprint(state) != metadata["fingerprint"]:
        raise ModelError(
            f"zoo weights {weights} do not match the fingerprint in {meta}; delete both to "
            "retrain"
        )
    model = entry.build()
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelError(f"zoo weights {weights} do not fit {entry.arch}: {exc}") from exc
    metadata.pop(DIGEST_KEY, None)
    metadata["source"] = "shipped" if weights.parent == SHIPPED else "trained here"
    return model.eval(), metadata


def _check_digest(meta: Path, weights: Path, metadata: dict) -> None:
    """Refuse metadata whose digest is not that of its content; warn when it has none (an
    entry cached before cimtest recorded digests)."""
    from cimtest.fingerprint import DIGEST_KEY, content_digest

    if DIGEST_KEY not in metadata:
        logger.warning("zoo metadata %s has no digest (cached before cimtest recorded them), so "
                       "an edit to it would go unnoticed; `cimtest zoo train %s` rewrites it",
                       meta, metadata.get("name", meta.stem))
        return
    if metadata[DIGEST_KEY] != content_digest(metadata):
        raise ModelError(f"zoo metadata {meta} fails its digest check: it was edited or "
                         f"corrupted after it was written; delete it and {weights.name} to "
                         "retrain")
