"""The Bayesian test vector: eq. 4 by hand, eq. 5 statistics, thresholds, every model kind."""

import math

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from cimtest.artifacts import load_artifact
from cimtest.engine import Population
from cimtest.evaluation import ChipResults, chip_results, summarise
from cimtest.exceptions import ArtifactError, ConfigError, NotFittedError
from cimtest.fingerprint import state_fingerprint
from cimtest.methods import (
    BayesianTestVector,
    EntropyImageTest,
    TestMethod,
    default_samples,
    kl_divergence,
)
from cimtest.methods.btv import _quantile_threshold, spread


def tiny_linear() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3)).eval()
    model.input_shape = (4,)
    return model


def tiny_mlp() -> nn.Module:
    """An untrained 8x8 classifier: the test needs nothing but the weights."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).eval()
    model.input_shape = (1, 8, 8)
    return model


def test_constructor_stores_arguments_only():
    kwargs = {"alpha": 3.0, "steps": 7, "lr": 0.2, "n_samples": 2, "prior": 0.5, "kl": "sum",
              "batch": 3, "offset": 0.1, "false_alarm": 0.05, "far_draws": 11, "rule": "false_alarm",
              "read_noise": "mult:eta=0.1@per-read", "seed": 4}
    test = BayesianTestVector(**kwargs)
    assert test.get_params() == kwargs
    assert set(vars(test)) == set(kwargs)
    assert "alpha=3.0" in repr(test) and "seed" in repr(test)
    BayesianTestVector(alpha=-1.0)  # no checking in __init__
    with pytest.raises(ConfigError, match="'alpha' parameter"):
        BayesianTestVector(alpha=-1.0).fit(tiny_linear())


def test_use_before_fit_raises(tmp_path):
    test = BayesianTestVector()
    for call in (lambda: test.decide(np.zeros(2)), lambda: test.respond(torch.zeros(2, 1, 3)),
                 lambda: test.save(tmp_path / "t.safetensors"), lambda: test.sample_,
                 lambda: test.draw(1, torch.Generator())):
        with pytest.raises(NotFittedError):
            call()
    assert not (tmp_path / "t.safetensors").exists()


def test_first_loss_matches_hand_computation():
    """Step 0 of eq. 4, recomputed from the same seed with explicit sums."""
    model = tiny_linear()
    alpha, prior, batch = 0.7, 1.5, 4
    test = BayesianTestVector(alpha=alpha, prior=prior, batch=batch, steps=1, seed=3)
    test.fit(model)
    ideal = Population(model, "none").mapped.ideal
    w, b = ideal[0].weight.detach().double(), ideal[0].bias.detach().double()
    gen = torch.Generator().manual_seed(3)
    mean = torch.randn(4, generator=gen).double() * prior
    eps = torch.randn((batch, 4), generator=gen).double()
    rms = 0.0
    for k in range(batch):
        y = w @ (eps[k] * prior + mean) + b
        rms += math.sqrt(sum((y[c] - y.mean()) ** 2 for c in range(3)) / 3) / batch
    s2 = prior**2  # log_var starts at log(prior^2): only the mean term of the KL is left
    kl = sum(0.5 * (s2 / prior**2 + mean[i] ** 2 / prior**2 - 1 - math.log(s2 / prior**2))
             for i in range(4)) / 4
    assert test.loss_curve_[0] == pytest.approx(rms + alpha * kl.item(), rel=1e-5)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_kl_matches_torch_distributions(reduction):
    gen = torch.Generator().manual_seed(0)
    mean, log_var = torch.randn(5, generator=gen), torch.randn(5, generator=gen)
    q = torch.distributions.Normal(mean, torch.exp(0.5 * log_var))
    p = torch.distributions.Normal(torch.zeros(5), torch.full((5,), 2.0))
    expected = torch.distributions.kl_divergence(q, p)
    expected = expected.mean() if reduction == "mean" else expected.sum()
    assert kl_divergence(mean, log_var, 2.0, reduction).item() == pytest.approx(expected.item())


def test_sampling_statistics_of_eq5():
    reports = []
    test = BayesianTestVector(steps=20, n_samples=2).fit(
        tiny_linear(), progress=lambda done, total, stage=None: reports.append((done, total,
                                                                                stage)))
    assert reports == [(step, 20, "btv") for step in range(1, 21)]  # after each Adam step
    samples = test.draw(20000, torch.Generator().manual_seed(1)).reshape(-1, 4)
    std = torch.exp(0.5 * test.log_var_)
    assert torch.allclose(samples.mean(0), test.mean_, atol=4 * std.max().item() / 200)
    assert torch.allclose(samples.var(0), std**2, rtol=0.05)
    assert test.sample_.shape == (2, 4)
    assert test.sample_ is test.inputs_  # the stored sample is the test's inputs
    with pytest.raises(AttributeError):
        test.sample_ = torch.zeros(2, 4)  # read-only: set inputs_


def test_fit_lowers_the_loss_and_sets_thresholds():
    test = BayesianTestVector(steps=150, false_alarm=0.05, far_draws=200).fit(tiny_mlp())
    curve = test.loss_curve_
    assert curve.shape == (150,) and curve[-20:].mean() < 0.5 * curve[:5].mean()
    assert test.threshold_ == test.sigma_ideal_ and test.threshold_far_ is not None
    ideal = Population(tiny_mlp(), "none").mapped.ideal
    fresh = test.fresh_responses(ideal, 500, seed=9)
    # The threshold is the 95th percentile of 200 draws: the true rate it gives has sd
    # sqrt(.05 * .95 / 201) = 0.015 around 5 %, and 500 fresh draws add a binomial sd of
    # 0.010; 0.05 + 3.5 * 0.018 = 0.113 (measured: 0.074).
    far = BayesianTestVector(steps=150, false_alarm=0.05, far_draws=200, rule="false_alarm")
    far.fit(tiny_mlp())
    assert far.threshold_ == far.threshold_far_ == test.threshold_far_  # the rule sets it
    assert fresh.shape == (500,) and far.decide(fresh).mean() < 0.113
    assert far.describe()["rule"] == "false_alarm"
    with pytest.raises(ConfigError, match="false_alarm"):
        BayesianTestVector(steps=2, rule="false_alarm").fit(tiny_mlp())


def test_false_alarm_rule_by_hand():
    """At most floor(false_alarm * n) of the n draws may flag (σ > t), and t is the smallest
    draw that allows it: a tie at the boundary is never split, so fewer may flag."""
    sigmas = np.array([0.5, 0.1, 0.3, 0.3, 0.3, 0.2, 0.4])  # sorted: .1 .2 .3 .3 .3 .4 .5
    assert _quantile_threshold(sigmas, 0.3) == 0.3  # floor(2.1) = 2 may flag: .4 and .5
    assert _quantile_threshold(sigmas, 0.5) == 0.3  # 3 may, but above .2 all three .3 would
    assert _quantile_threshold(sigmas, 0.1) == 0.5  # floor(0.7) = 0: none
    assert _quantile_threshold(sigmas, 0.99) == 0.1  # 6 of 7: all but the smallest


def _flagging_threshold(sigmas: np.ndarray, false_alarm: float) -> float:
    """The rule by counting, slowly: the smallest draw t with at most floor(rate * n) above."""
    allowed = math.floor(false_alarm * len(sigmas))
    return min(float(t) for t in sigmas if (sigmas > t).sum() <= allowed)


@pytest.mark.parametrize(("n", "rate", "flagged"), [(9, 1 / 3, 3), (45, 13 / 45, 12),
                                                     (20, 0.95, 19), (20, 0.05, 1)])
def test_false_alarm_rule_where_numpy_rounds_otherwise(n, rate, flagged):
    """The cases where np.quantile(..., 1 - rate, method="inverted_cdf") takes another draw
    (btv.py says why the rule is by hand): n * (1 - rate) lands above an integer for the first
    and third (2 and 18 would flag), exactly on one below the rule's for the second (13);
    the fourth, where both agree, is the control."""
    sigmas = np.random.default_rng(n).permutation(np.arange(n, dtype=np.float64))
    assert (sigmas > _quantile_threshold(sigmas, rate)).sum() == flagged


def test_false_alarm_rule_matches_counting_on_random_draws():
    """3,000 random (n, rate), half with rate * n an exact integer (k / n), draws with ties."""
    rng = np.random.default_rng(0)
    for trial in range(3000):
        n = int(rng.integers(1, 80))
        rate = int(rng.integers(1, n)) / n if trial % 2 and n > 1 else float(rng.uniform(0, 1))
        sigmas = rng.integers(0, max(2, n // 2), size=n).astype(np.float64) / 7
        assert _quantile_threshold(sigmas, rate) == _flagging_threshold(sigmas, rate), (n, rate)


def test_false_alarm_threshold_flags_the_target_fraction_of_fresh_tests():
    """Fresh tests drawn independently of the fit's flag the ideal chip at the target rate.

    The threshold is the draw above which 30 = floor(0.1 * 300) of the fit's 300 draws lie:
    the rate it gives on new draws is that of the 31st largest of 300 uniforms, Beta(31, 270),
    mean 31 / 301 = 0.103 and sd 0.0175; 3,000 fresh tests add a binomial sd of 0.0055.
    3.29 sd of both (a correct rule misses 1 time in 1,000): 0.060.
    """
    test = BayesianTestVector(steps=30, false_alarm=0.1, far_draws=300, seed=2)
    test.fit(tiny_mlp())
    ideal = Population(tiny_mlp(), "none").mapped.ideal
    fresh = test.fresh_responses(ideal, 3000, seed=11)
    rate = float((fresh > test.threshold_far_).mean())
    mean, sd = 31 / 301, math.sqrt(31 * 270 / (301**2 * 302) + 0.103 * 0.897 / 3000)
    assert abs(rate - mean) < 3.29 * sd, rate


def test_thresholds_reproduce_exactly_from_a_seed():
    kwargs = {"steps": 40, "false_alarm": 0.05, "far_draws": 100, "seed": 5, "offset": 0.01}
    a = BayesianTestVector(**kwargs).fit(tiny_mlp())
    b = BayesianTestVector(**kwargs).fit(tiny_mlp())
    c = BayesianTestVector(**{**kwargs, "seed": 6}).fit(tiny_mlp())
    assert a.threshold_ == b.threshold_ and a.threshold_far_ == b.threshold_far_
    assert torch.equal(a.sample_, b.sample_) and np.array_equal(a.loss_curve_, b.loss_curve_)
    assert a.threshold_ == pytest.approx(a.sigma_ideal_ + 0.01)
    assert a.threshold_ != c.threshold_


def test_sigma_rises_with_eta():
    model = tiny_mlp()
    test = BayesianTestVector(steps=80).fit(model)
    pop = Population(model, "none", seed=0, n=48)
    means = [test.respond(pop.with_faults(f"mult:eta={eta}").outputs(test.sample_)).mean()
             for eta in (0.02, 0.1, 0.3)]
    assert test.sigma_ideal_ < means[0] < means[1] < means[2]
    ideal_sigma = test.respond(pop.with_faults("none", n=1).outputs(test.sample_))
    assert ideal_sigma[0] == test.sigma_ideal_
    assert not test.decide(ideal_sigma)[0]  # strict: the ideal chip passes at offset 0


def test_artifact_round_trip_and_fingerprint_refusal(tmp_path):
    model = tiny_mlp()
    test = BayesianTestVector(steps=30, false_alarm=0.1, far_draws=50).fit(model)
    path = test.save(tmp_path / "t.safetensors", info={"note": "by hand"})
    assert path == tmp_path / "t.safetensors"
    back = BayesianTestVector.load(path, test.fingerprint_)
    assert back.get_params() == test.get_params()
    assert back.threshold_ == test.threshold_ and back.threshold_far_ == test.threshold_far_
    assert back.sigma_ideal_ == test.sigma_ideal_ and back.output_shape_ == test.output_shape_
    assert torch.equal(back.sample_, test.sample_) and torch.equal(back.mean_, test.mean_)
    assert torch.equal(back.log_var_, test.log_var_)
    np.testing.assert_array_equal(back.loss_curve_, test.loss_curve_)
    assert back.saved_info_ == {"note": "by hand"}
    outputs = Population(model, "mult:eta=0.1", n=8).outputs(test.sample_)
    assert np.array_equal(back.decide(back.respond(outputs)), test.decide(test.respond(outputs)))
    art = load_artifact(path)
    assert art.method == "btv" and art.thresholds == {"threshold": test.threshold_}
    assert art.tensors["mean_"].numel() * 2 * 4 == 2 * 64 * 4  # mean + log-var, float32
    assert art.tensors["mean_"].dtype == art.tensors["log_var_"].dtype == torch.float32
    assert art.tensors["loss_curve_"].dtype == torch.float64  # tensors keep their dtype
    assert back.test_bytes() == test.test_bytes() == 2 * 64 * 4
    # any class loads it through the base; another method's class refuses it
    assert isinstance(TestMethod.load(path), BayesianTestVector)
    with pytest.raises(ArtifactError, match="btv"):
        EntropyImageTest.load(path)
    other = tiny_mlp()
    with torch.no_grad():
        other[1].weight[0, 0] += 1.0
    with pytest.raises(ArtifactError, match="--force"):
        BayesianTestVector.load(path, state_fingerprint(other))
    with pytest.raises(ArtifactError, match="--force"):
        load_artifact(path, state_fingerprint(other))
    forced = BayesianTestVector.load(path, state_fingerprint(other), force=True)
    assert forced.threshold_ == test.threshold_


def test_edited_or_old_artifacts_are_refused(tmp_path):
    test = BayesianTestVector(steps=5).fit(tiny_mlp())
    path = test.save(tmp_path / "t.safetensors")
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    # one byte of the stored sample edited in place: refused by the digest, forced or not
    data = bytearray(path.read_bytes())
    sample = tensors["inputs_"].numpy().tobytes()
    at = bytes(data).index(sample)
    data[at] ^= 0x01
    edited = tmp_path / "edited.safetensors"
    edited.write_bytes(bytes(data))
    for force in (False, True):
        with pytest.raises(ArtifactError, match="digest"):
            BayesianTestVector.load(edited, test.fingerprint_, force=force)
    # an artefact of an older format version (before the one method layout): refit
    old = tmp_path / "old.safetensors"
    save_file(tensors, str(old), metadata={**metadata, "format_version": "2"})
    with pytest.raises(ArtifactError, match="refit"):
        BayesianTestVector.load(old)
    with pytest.raises(ArtifactError, match="does not exist"):
        BayesianTestVector.load(tmp_path / "absent.safetensors")


def test_segmentation_generator_and_discriminator():
    torch.manual_seed(0)
    seg = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1)).eval()
    seg.input_shape = (1, 8, 8)
    test = BayesianTestVector(steps=20).fit(seg)
    assert test.output_shape_ == (3, 8, 8) and test.sample_.shape == (1, 1, 8, 8)
    gen = nn.Sequential(nn.Linear(100, 48), nn.Unflatten(1, (3, 4, 4)), nn.Tanh()).eval()
    gen.input_shape = (100,)
    test = BayesianTestVector(steps=20).fit(gen)
    assert test.output_shape_ == (3, 4, 4) and test.sample_.shape == (1, 100)
    disc = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 1)).eval()
    assert default_samples((1,)) > 1 and default_samples((10,)) == 1
    with pytest.raises(ConfigError, match="input_shape"):
        BayesianTestVector(steps=5).fit(disc)  # a bare module must say its input shape
    disc.input_shape = (16,)
    with pytest.raises(ConfigError, match="n_samples > 1"):
        BayesianTestVector(steps=5).fit(disc)
    test = BayesianTestVector(steps=20, n_samples=8).fit(disc)
    outputs = Population(disc, "mult:eta=0.2", n=4).outputs(test.sample_)
    assert outputs.shape == (4, 8, 1) and (test.respond(outputs) > 0).all()


def test_summarise_by_hand():
    results = ChipResults(sigma_y=np.array([0.2, 0.6, 0.7, 0.3]),
                          accuracy=np.array([90.0, 99.5, 95.0, 98.0]))
    fresh = np.array([0.1, 0.2, 0.45, 0.6])
    (row,) = summarise(results, {"t": 0.5}, ideal_accuracy=99.0, fresh_sigma=fresh, drop=1.0)
    # damaged (drop >= 1): chips 0, 2, 3; flagged (> 0.5): chips 1, 2
    assert row["coverage"] == 0.5 and row["coverage_dropped"] == pytest.approx(1 / 3)
    assert row["verifiable_coverage"] == 0.25  # chip 2 only, over all 4 chips
    assert row["false_alarm_nodrop"] == 1.0 and row["false_alarm_ideal"] == 0.25
    assert row["auc"] == pytest.approx(1 / 3) and row["dropped"] == 0.75
    (bare,) = summarise(ChipResults(results.sigma_y, None), {"t": 0.5})
    assert bare["coverage"] == 0.5 and bare["auc"] is None and bare["coverage_dropped"] is None


def test_summarise_point_columns_by_hand():
    results = ChipResults(sigma_y=np.array([0.2, 0.6, 0.7, 0.3]),
                          accuracy=np.array([90.0, 99.5, 95.0, 98.0]),
                          sigma_point=np.array([5.0, 7.0, 4.0, 6.5]))
    (row,) = summarise(results, {"t": 0.5}, ideal_accuracy=99.0, point_threshold=6.0)
    # point flags (> 6): chips 1, 3; damaged: chips 0, 2, 3; undamaged: chip 1
    assert row["coverage_point"] == 0.5 and row["false_alarm_nodrop_point"] == 1.0
    # damaged scores 5, 4, 6.5 against the undamaged 7: no damaged chip ranks above it
    assert row["auc_point"] == 0.0
    with pytest.raises(ConfigError, match="real images"):
        summarise(ChipResults(results.sigma_y, results.accuracy), {"t": 0.5},
                  ideal_accuracy=99.0, point_threshold=6.0)


def test_chip_results_match_population():
    model = tiny_mlp()
    test = BayesianTestVector(steps=10).fit(model)
    pop = Population(model, "mult:eta=0.2", seed=3, n=8)
    x, y = torch.randn(5, 1, 8, 8), torch.arange(5)
    res = chip_results(test, pop, x, y)
    # equal up to float32 rounding: the engine batches the sample with the data here
    assert np.allclose(res.sigma_y, test.respond(pop.outputs(test.sample_)), rtol=1e-5)
    assert np.allclose(res.accuracy, pop.accuracy(x, y).numpy())
    assert chip_results(test, pop).accuracy is None
    fresh = test.draw(3, torch.Generator().manual_seed(0))
    with_fresh = chip_results(test, pop, x, y, fresh=fresh)
    assert with_fresh.sigma_fresh.shape == (8, 3)
    assert np.allclose(with_fresh.accuracy, res.accuracy)
    assert np.allclose(with_fresh.sigma_fresh[:, 1],
                       test.respond(pop.outputs(fresh[1])), rtol=1e-5)
    point = x[:2]
    with_point = chip_results(test, pop, x, y, fresh=fresh, point=point)
    assert np.allclose(with_point.accuracy, res.accuracy)
    assert np.allclose(with_point.sigma_point, spread(pop.outputs(point).double()).numpy(),
                       rtol=1e-5)
    rows = summarise(with_fresh, {"offset=0": test.threshold_}, ideal_accuracy=50.0,
                     far_threshold=0.1)
    assert [r["rule"] for r in rows] == ["offset=0", "false_alarm"] and rows[1]["chips"] == 24


def test_read_noise_raises_the_false_alarm_threshold():
    model = tiny_mlp()
    kwargs = {"steps": 30, "false_alarm": 0.05, "far_draws": 100, "seed": 1}
    quiet = BayesianTestVector(**kwargs).fit(model)
    noisy = BayesianTestVector(**kwargs, read_noise="mult:eta=0.3@per-read").fit(model)
    assert noisy.threshold_ == quiet.threshold_  # the offset rule ignores read noise
    assert noisy.threshold_far_ > quiet.threshold_far_
    with pytest.raises(ConfigError, match="per-read"):
        BayesianTestVector(read_noise="mult:eta=0.3").fit(model)


def test_chip_results_segmentation():
    torch.manual_seed(0)
    seg = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1)).eval()
    seg.input_shape = (1, 8, 8)
    test = BayesianTestVector(steps=5).fit(seg)
    pop = Population(seg, "mult:eta=0.1", n=4)
    x, y = torch.randn(3, 1, 8, 8), torch.randint(0, 3, (3, 8, 8))
    res = chip_results(test, pop, x, y, task="segmentation")
    assert res.sigma_y.shape == (4,) and res.accuracy.shape == (4,)
    assert np.allclose(res.accuracy, pop.accuracy(x, y, task="segmentation").numpy())
