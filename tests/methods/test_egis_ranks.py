"""EGIS on inputs of every rank: the generator's (F), (C, L) and (C, H, W) outputs, its images
path unchanged, and the entropy training and the test on user-style 1-D models."""

import hashlib

import pytest
import torch

from cimtest.methods.generator import EGISGenerator

IMAGES_BEFORE = {  # made by the generator before it took (F) and (C, L) inputs
    (1, 8, 8): ("3108af49afd6b690ec54e10944b49f1b20156ab7103d5e85a843dcbf5a0c5e98",
                224.17198193073273, 207.03527248232302,
                [0.5507445335388184, 0.5387890338897705, 0.7030397653579712]),
    (3, 32, 32): ("c979f94073d47e560334caf62651bf27bfa63e7559f6e6b1fc0fb05b4cd850c7",
                  8859.069657832384, 6748.653836678279,
                  [0.7490313053131104, 0.6744050979614258, 0.7153135538101196]),
    (3, 20, 12): ("c979f94073d47e560334caf62651bf27bfa63e7559f6e6b1fc0fb05b4cd850c7",
                  2066.760405957699, 1517.9961304155947,
                  [0.7311728000640869, 0.7605228424072266, 0.6661403179168701]),
}
"""Per image shape: sha256 of the layers' repr and the initial parameters and buffers (the RNG's
draws, the same on every CPU), then the sum, the sum of squares and the first three values
of the train-mode output on four fixed latents (float arithmetic: compared to 1e-5)."""


def _seeded(shape, seed=7):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return EGISGenerator(shape, (-0.5, 2.0))


@pytest.mark.parametrize("shape", list(IMAGES_BEFORE))
def test_image_generator_is_unchanged(shape):
    """Same layers in the same order, same init draws, same images: tests and SIDs made
    before the generator took other ranks are made again bit for bit."""
    g = _seeded(shape)
    digest = hashlib.sha256(repr(g.net).encode())
    for name, tensor in g.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    z = torch.randn(4, 100, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        x = g.train()(z).double()
    expected, total, squares, first = IMAGES_BEFORE[shape]
    assert digest.hexdigest() == expected
    assert x.sum().item() == pytest.approx(total, rel=1e-5)
    assert (x * x).sum().item() == pytest.approx(squares, rel=1e-5)
    assert x.flatten()[:3].tolist() == pytest.approx(first, rel=1e-5)
