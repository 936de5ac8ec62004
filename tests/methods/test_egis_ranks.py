"""EGIS on inputs of every rank: the generator's (F), (C, L) and (C, H, W) outputs, its images
path unchanged, and the entropy training and the test on user-style 1-D models."""

import hashlib
import math

import numpy as np
import pytest
import torch
from torch import nn

from cimtest.engine import Population
from cimtest.methods import (
    BayesianTestVector,
    ChipOutcomes,
    HybridTest,
    LearnedTest,
    RandomSyntheticTest,
    TestMethod,
)
from cimtest.methods.egis import EntropyImageTest
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


# ---- the generator at every rank -----------------------------------------------------------


@pytest.mark.parametrize("shape", [(40,), (5,), (1, 37), (2, 5), (1, 1), (3, 20, 12)])
def test_generator_makes_inputs_of_every_rank(shape):
    g = EGISGenerator(shape, (-0.5, 2.0))
    with torch.no_grad():
        x = g(torch.randn(4, 100))
    assert tuple(x.shape) == (4, *shape) and g.input_shape == shape
    assert x.min() >= -0.5 and x.max() <= 2.0
    assert x.std() > 0  # not a constant
    one_d = len(shape) < 3
    kinds = {type(m) for m in g.net if not isinstance(m, nn.ReLU | nn.Tanh)}
    assert kinds == ({nn.ConvTranspose1d, nn.BatchNorm1d} if one_d
                     else {nn.ConvTranspose2d, nn.BatchNorm2d})


def _plan(g):
    return [(type(m).__name__[-2:], m.in_channels, m.out_channels, m.kernel_size[0],
             m.stride[0], m.padding[0]) if hasattr(m, "kernel_size") else type(m).__name__[:9]
            for m in g.net]


@pytest.mark.parametrize("length", [2, 8, 37, 64, 128])
def test_a_sequence_gets_the_image_plan_in_one_dimension(length):
    """(C, L) has the layers of (C, L, L) in one dimension: Table I's widths and kernels,
    doubling to S = 2^ceil(log2 L) and keeping it, 32-channel layers beyond 32."""
    seq, image = _plan(EGISGenerator((3, length))), _plan(EGISGenerator((3, length, length)))
    assert [r[1:] if isinstance(r, tuple) else r for r in seq] == [
        r[1:] if isinstance(r, tuple) else r for r in image]
    assert {r[0] for r in seq if isinstance(r, tuple)} == {"1d"}
    side = 1 << math.ceil(math.log2(max(length, 2)))
    g = EGISGenerator((3, length))
    with torch.no_grad():
        raw = g.net(torch.randn(2, 100, 1))
    assert tuple(raw.shape) == (2, 3, side)
    if length == 128:  # Table I, then two extra 32-channel doublings (32 -> 64 -> 128)
        convs = [r[1:4] for r in seq if isinstance(r, tuple)]
        assert convs == [(100, 256, 2), (256, 128, 4), (128, 64, 4), (64, 32, 4), (32, 32, 4),
                         (32, 32, 4), (32, 3, 4)]


def test_features_come_from_the_one_channel_sequence_generator():
    features, sequence = _seeded((40,)), _seeded((1, 40))
    assert _plan(features) == _plan(sequence)
    for (name, a), (_, b) in zip(features.state_dict().items(),
                                 sequence.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    z = torch.randn(4, 100, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.equal(features(z), sequence(z).reshape(4, 40))


# ---- user-style 1-D models -----------------------------------------------------------------

LEVELS = {"seq": "mult:eta=2", "mlp": "mult:eta=1"}
"""A level per model at which chips spread over pass and fail."""


def _data(name, n, seed):
    """`n` labelled inputs in [0, 1]: a bump at one of 4 places on (1, 40) noise, or one of
    3 blobs in 40 dimensions."""
    gen = torch.Generator().manual_seed(seed)
    if name == "seq":
        y = torch.arange(n) % 4
        x = 0.3 * torch.rand(n, 1, 40, generator=gen)
        for i, label in enumerate(y.tolist()):
            x[i, 0, 10 * label + 2: 10 * label + 8] += 0.7
    else:
        y = torch.arange(n) % 3
        centres = torch.rand(3, 40, generator=torch.Generator().manual_seed(99))
        x = (centres[y] + 0.08 * torch.randn(n, 40, generator=gen)).clamp(0, 1)
    return x, y


@pytest.fixture(scope="module")
def users():
    """A Conv1d + BatchNorm1d classifier on (1, 40) sequences and a Linear-only MLP on (40,)
    features (no normalisation), each trained 60 Adam steps as a user would, with an
    ``input_shape`` attribute (the API's way to give it), and 120 labelled test inputs."""
    built = {}
    for name in LEVELS:
        torch.manual_seed(0)
        if name == "seq":
            model = nn.Sequential(
                nn.Conv1d(1, 8, 5, padding=2), nn.BatchNorm1d(8), nn.ReLU(),
                nn.Conv1d(8, 8, 3, stride=2, padding=1), nn.ReLU(),
                nn.AdaptiveAvgPool1d(4), nn.Flatten(), nn.Linear(32, 4))
        else:
            model = nn.Sequential(nn.Linear(40, 16), nn.ReLU(), nn.Linear(16, 3))
        x, y = _data(name, 256, seed=1)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(60):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        model.eval()
        model.input_shape = tuple(x.shape[1:])
        built[name] = (model, *_data(name, 120, seed=2))
    return built


@pytest.mark.parametrize("name", list(LEVELS))
def test_entropy_training_works_on_a_1d_model(users, name):
    """Paper 2's Fig. 3 on sequences and features: H_c falls towards 0, H_s rises towards
    log M (measured, step 0 -> mean of the last 5 steps: H_c 1.10 -> 0.19 and H_s 1.17 ->
    1.33 of log 4 = 1.39 on the Conv1d model, H_c 0.92 -> 0.36 and H_s 0.93 -> 1.09 of
    log 3 = 1.10 on the MLP)."""
    model, x, _ = users[name]
    test = EntropyImageTest(sid_size=16, steps=40, batch=32, input_range=(0.0, 1.0))
    sid = test.propose(model)
    assert tuple(sid.shape) == (16, *x.shape[1:])
    assert sid.min() >= 0.0 and sid.max() <= 1.0
    curve = test.entropy_curve_
    h_c, h_s = curve[-5:].mean(axis=0)
    classes = int(model(x[:1]).shape[1])
    assert h_c < 0.5 * curve[0, 0]
    assert h_s > curve[0, 1] and h_s > 0.9 * math.log(classes)
    assert -math.exp(h_s - h_c) < -math.exp(curve[0, 1] - curve[0, 0])  # the loss fell


@pytest.mark.parametrize("name", list(LEVELS))
def test_egis_fit_decide_on_a_1d_model(users, name, tmp_path):
    model, x, y = users[name]
    chips = Population(model, LEVELS[name], 0, 32)
    accuracy = chips.accuracy(x, y)
    outcomes = ChipOutcomes(accuracy > accuracy.median(), cutoff="A50")
    test = EntropyImageTest(k=2, sid_size=32, steps=20, batch=16, rho=0.8, splits=2,
                            reward_estimators=10, detector_estimators=20,
                            input_range=(0.0, 1.0)).fit(model, chips, outcomes)
    assert tuple(test.images_.shape) == (2, *x.shape[1:])
    assert test.input_shape_ == tuple(x.shape[1:])
    fresh = Population(model, LEVELS[name], 1, 16)
    signatures = test.respond(fresh.outputs(test.images_))
    classes = int(model(x[:1]).shape[1])
    assert signatures.shape == (16, 2 * classes)
    verdicts = test.decide(signatures)
    assert verdicts.shape == (16,) and verdicts.dtype == np.bool_
    again = TestMethod.load(test.save(tmp_path / "egis.safetensors"), test.fingerprint_)
    np.testing.assert_array_equal(again.decide(signatures), verdicts)
    assert torch.equal(again.images_, test.images_)


def test_the_methods_built_on_egis_run_on_features(users):
    """random-synthetic+detector, the hybrid and the learned test (synthetic start) on the
    MLP: their inputs come from the 1-D generator's synthetic set."""
    model, x, y = users["mlp"]
    chips = Population(model, LEVELS["mlp"], 0, 32)
    accuracy = chips.accuracy(x, y).numpy()
    cutoff = float(np.median(accuracy))
    outcomes = ChipOutcomes(accuracy > cutoff, cutoff, accuracy, "A50")
    egis = EntropyImageTest(k=2, sid_size=16, steps=5, batch=8, rho=0.5, splits=1,
                            reward_estimators=5, detector_estimators=5,
                            input_range=(0.0, 1.0)).fit(model, chips, outcomes)
    synthetic = RandomSyntheticTest(source=egis, k=2, detector_estimators=5)
    synthetic.fit(model, chips, outcomes)
    assert torch.equal(synthetic.inputs_, egis.sid_[torch.as_tensor(synthetic.chosen_)])
    vector = BayesianTestVector(steps=5).fit(model)
    hybrid = HybridTest(egis=egis, btv=vector, folds=2, detector_estimators=5)
    hybrid.fit(model, chips, outcomes)
    assert tuple(hybrid.inputs_.shape) == (2 + len(vector.sample_), 40)
    learned = LearnedTest(k=2, source=egis, init="synthetic", candidates=8, steps=3, batch=8,
                          check_every=3, detector_estimators=5).fit(model, chips, outcomes)
    assert tuple(learned.inputs_.shape) == (2, 40)
    assert (learned.initial_inputs_[:, None] == egis.sid_[None]).all(-1).any(-1).all()
    for method in (synthetic, hybrid, learned):
        verdicts = method.decide(method.respond(chips.outputs(method.inputs_)))
        assert verdicts.shape == (32,)
