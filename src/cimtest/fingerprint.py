"""The model fingerprint (sha256 of a state dict's canonical bytes, stable across save/load) and
the content digest that makes stored artefacts tamper-evident."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

import torch

__all__ = ["DIGEST_KEY", "content_digest", "state_fingerprint"]

DIGEST_KEY = "digest"
"""Key under which an artefact stores its `content_digest` (in its metadata or its JSON)."""


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


def content_digest(
    metadata: Mapping[str, object], tensors: Mapping[str, torch.Tensor] | None = None
) -> str:
    """Return the hex sha256 of an artefact's metadata and tensors, in canonical form.

    `metadata` is any JSON document (its ``digest`` key, if present, is left out, so the
    digest can be stored beside what it covers); it enters as JSON with sorted keys and no
    spaces. `tensors` enter as their `state_fingerprint`. Editing a value, a key or a
    tensor byte changes the digest. It detects corruption and edits, not a forger who
    recomputes it: it is not a signature.
    """
    document = {key: value for key, value in metadata.items() if key != DIGEST_KEY}
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=True)
    digest = hashlib.sha256(b"cimtest-digest-1\n")
    digest.update(text.encode())
    digest.update(b"\n")
    digest.update(state_fingerprint(tensors or {}).encode())
    return digest.hexdigest()
