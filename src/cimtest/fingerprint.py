"""The model fingerprint: sha256 of a state dict's canonical bytes, stable across save/load."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import torch

__all__ = ["state_fingerprint"]


def state_fingerprint(state: torch.nn.Module | Mapping[str, torch.Tensor]) -> str:
    """Return the hex sha256 of `state` (a module or a state dict) in canonical form.

    Canonical form: keys sorted; for each, the key, dtype, shape and the tensor's
    contiguous little-endian CPU bytes. Buffers such as BN running stats are included,
    since they change what the model computes.
    """
    if isinstance(state, torch.nn.Module):
        state = state.state_dict()
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().to("cpu").contiguous()
        digest.update(key.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(repr(tuple(tensor.shape)).encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
