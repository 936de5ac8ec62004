"""Generated data sets cached on disk: safetensors arrays with a digest checked on load."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from cimtest._atomic import atomic_file
from cimtest.fingerprint import DIGEST_KEY, content_digest
from cimtest.home import cache_dir

__all__ = ["cached_arrays"]

_logger = logging.getLogger(__name__)


def cached_arrays(key: str, make: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The arrays cached under `key` in ``<cache_dir>/data/``, else ``make()``'s, cached.

    The file carries a digest over its arrays and key; a file that fails it (edited,
    corrupted) is made anew with a warning, so a cache never changes a result.
    """
    path = cache_dir() / "data" / f"{key}.safetensors"
    if path.is_file():
        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
            tensors = load_file(str(path))
            if metadata.get(DIGEST_KEY) == content_digest({"key": key}, tensors):
                return {name: t.numpy() for name, t in tensors.items()}
        except (SafetensorError, OSError, ValueError):
            pass
        _logger.warning("the cached data %s fails its digest; generating it again", path)
    arrays = make()
    tensors = {name: torch.from_numpy(np.ascontiguousarray(a)) for name, a in arrays.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        save_file(tensors, str(tmp), metadata={DIGEST_KEY: content_digest({"key": key}, tensors)})
    return arrays
