"""The aihwkit fault kinds: the same weight distributions as aihwkit's own inference tiles,
aging with t, global drift compensation, per-chip seeding, the spec language and the CLI.

Statistical tests use two-sample Kolmogorov-Smirnov tests at alpha = 0.001 on weight errors
of many cells (64 chips x 2,048 cells on each side). They are seeded, so they pass or fail
the same way on every run. Skipped where aihwkit is not installed (`make setup` installs it).
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys

import pytest
import torch
from conftest import crossbar_slot, generators
from scipy import stats
from typer.testing import CliRunner

from cimtest.cli.main import app
from cimtest.exceptions import ConfigError
from cimtest.faults import (
    AihwkitPCM,
    Compensation,
    FaultStack,
    WeightLayout,
    dump_toml,
    load_toml,
    parse_spec,
)
from cimtest.faults.aihwkit import INSTALL

needs_aihwkit = pytest.mark.skipif(
    importlib.util.find_spec("aihwkit") is None,
    reason=f"aihwkit is not installed ({INSTALL}; `make setup` installs it)",
)

pytestmark = pytest.mark.filterwarnings(
    # aihwkit 1.1.0's CMO read noise takes numpy's log10 of a torch tensor (numpy 2 warns)
    "ignore:__array_wrap__ must accept context:DeprecationWarning"
)

ALPHA = 0.001
"""Significance level of every Kolmogorov-Smirnov test here."""
IN, OUT = 64, 32
"""A linear layer of 64 inputs and 32 outputs: one crossbar array of 64 rows x 32 columns."""
CHIPS = 64
"""Chips drawn on each side of a statistical comparison."""

runner = CliRunner()


def layer() -> tuple[WeightLayout, torch.Tensor]:
    """One mapped layer and its weights (2,048 int8 codes times the scale, roughly normal
    with a few codes at +-127)."""
    slot = crossbar_slot("fc", 0, IN, OUT, max_abs=0.5)
    codes = torch.randn(IN * OUT, generator=torch.Generator().manual_seed(7)) * 45
    weights = codes.round().clamp(-127, 127) * slot.scale
    return WeightLayout((slot,), bits_per_cell=1), weights


def cimtest_chips(fault, chips: int = CHIPS, seed: int = 0) -> torch.Tensor:
    """(chips, 2048) weights of `chips` chips of `fault` on `layer`."""
    layout, weights = layer()
    rows = weights.expand(chips, -1).clone()
    return fault.apply(rows, layout, generators(chips, seed))


def aihwkit_chips(fault, chips: int = CHIPS) -> torch.Tensor:
    """(chips, 2048) weights of `chips` chips programmed, drifted to ``fault.t`` and read back
    by aihwkit's own pure-torch tile (`TorchInferenceRPUConfig`) with the fault's noise model,
    times the tile's drift compensation factor where the fault compensates (read exactly:
    a perfect forward, so aihwkit's reference read is the weights' own)."""
    from aihwkit.inference import GlobalDriftCompensation
    from aihwkit.nn.conversion import convert_to_analog
    from aihwkit.simulator.configs import TorchInferenceRPUConfig
    from aihwkit.simulator.parameters.io import IOParameters

    _, weights = layer()
    rows = []
    with torch.random.fork_rng():
        for chip in range(chips):
            torch.manual_seed(10_000 + chip)
            config = TorchInferenceRPUConfig()
            config.noise_model = fault.noise_model()
            config.forward = IOParameters(is_perfect=True)
            global_ = fault.compensation is Compensation.GLOBAL
            config.drift_compensation = GlobalDriftCompensation() if global_ else None
            linear = torch.nn.Linear(IN, OUT, bias=False)
            with torch.no_grad():
                linear.weight.copy_(weights.reshape(OUT, IN))
            analog = convert_to_analog(linear, config).eval()
            analog.program_analog_weights()
            analog.drift_analog_weights(fault.t)
            read = analog.get_weights()[0].reshape(-1)
            if global_:
                read = read * next(analog.analog_tiles()).alpha
            rows.append(read)
    return torch.stack(rows)


def errors(chips: torch.Tensor) -> torch.Tensor:
    """Every cell's error in units of the layer's max|W|, flattened."""
    _, weights = layer()
    return ((chips - weights) / weights.abs().max()).reshape(-1)


CASES = [
    "aihwkit-pcm:t=3600",
    "aihwkit-pcm:t=31536000,compensation=global",
    "aihwkit-pcm:t=86400,g_max=10,prog_noise_scale=2,read_noise_scale=0.5,drift_scale=1.5",
    "aihwkit-reram:t=86400",
    "aihwkit-reram:t=1,compensation=global,noise_scale=0.5",
    "aihwkit-reram-cmo:t=3600",
    "aihwkit-reram-cmo:t=86400,compensation=global,acceptance_range=2",
]
"""Every kind, with and without compensation, and the noise models' own keys."""


def fault_of(text: str):
    """The one fault of spec `text`."""
    (fault,) = parse_spec(text).faults
    return fault


@needs_aihwkit
@pytest.mark.parametrize("text", CASES)
def test_weights_are_distributed_as_aihwkits_tile(text):
    fault = fault_of(text)
    ours, theirs = errors(cimtest_chips(fault)), errors(aihwkit_chips(fault))
    result = stats.ks_2samp(ours.numpy(), theirs.numpy())
    assert result.pvalue > ALPHA, (result, ours.mean(), theirs.mean(), ours.std(), theirs.std())
    for q in (0.01, 0.5, 0.99):
        spread = theirs.std().item()
        assert abs(ours.quantile(q) - theirs.quantile(q)) < 0.05 * spread, q


@needs_aihwkit
def test_the_comparison_tells_a_wrong_time_apart():
    """The test above has the power to see a small change: an hour against two hours of
    PCM drift differ at alpha."""
    ours = errors(cimtest_chips(fault_of("aihwkit-pcm:t=7200")))
    theirs = errors(aihwkit_chips(fault_of("aihwkit-pcm:t=3600")))
    assert stats.ks_2samp(ours.numpy(), theirs.numpy()).pvalue < ALPHA


@needs_aihwkit
@pytest.mark.parametrize("kind", ["aihwkit-pcm", "aihwkit-reram-cmo"])
def test_each_chip_ages_monotonically(kind):
    """The same chip (the same draws) at later t: its mean absolute error grows."""
    times = [1.0, 60.0, 3600.0, 86400.0, 31_536_000.0]
    _, weights = layer()
    mae = torch.stack([
        (cimtest_chips(fault_of(f"{kind}:t={t}"), chips=8) - weights).abs().mean(1)
        for t in times
    ])
    assert (mae.diff(dim=0) > 0).all(), mae


@needs_aihwkit
def test_global_compensation_restores_the_programmed_mean_scale():
    """aihwkit's factor is mean|W| read at programming over mean|W| read at t, per array: a
    compensated chip has the mean|W| it was programmed with (the chip at t = 0 without read
    noise) at every t, while an uncompensated one shrinks with PCM drift. Over 64 chips the
    programmed mean|W| is that of the ideal chip within 4 standard errors of the mean ratio
    plus 2 % (programming noise on the device at 0 µS, clamped at 0, pulls every weight
    towards 0 by about 0.1 µS of 25: 1.4 % of this layer's mean|W|)."""
    _, weights = layer()
    programmed = cimtest_chips(fault_of("aihwkit-pcm:t=0,read_noise_scale=0")).abs().mean(1)
    for t in (3600, 86400, 31536000):
        none = cimtest_chips(fault_of(f"aihwkit-pcm:t={t}")).abs().mean(1)
        assert (none < programmed).all()
        compensated = cimtest_chips(fault_of(f"aihwkit-pcm:t={t},compensation=global"))
        torch.testing.assert_close(compensated.abs().mean(1), programmed, rtol=1e-5, atol=0)
    assert (none / programmed < 0.8).all()
    ratio = programmed / weights.abs().mean()
    tolerance = 4 * ratio.std().item() / math.sqrt(len(ratio)) + 0.02
    assert abs(ratio.mean().item() - 1) < tolerance, (ratio.mean(), tolerance)


@needs_aihwkit
def test_each_array_is_mapped_onto_the_conductances_on_its_own():
    """Like an aihwkit tile, each crossbar array scales its own max|W| to g_max: a layer of
    two arrays whose second holds weights 10x smaller sees the same relative noise in both."""
    slot = crossbar_slot("fc", 0, 128, 32, (64, 32), max_abs=1.0)
    layout = WeightLayout((slot,), bits_per_cell=1)
    codes = torch.randint(-127, 128, (128, 32), generator=torch.Generator().manual_seed(1))
    codes[64:] = (codes[64:] / 10).round()
    weights = (codes.float() * slot.scale).reshape(-1)
    rows = fault_of("aihwkit-pcm:t=0").apply(weights.expand(16, -1).clone(), layout,
                                             generators(16))
    error = (rows - weights).reshape(16, 128, 32)
    top = error[:, :64].std() / weights[: 64 * 32].abs().max()
    bottom = error[:, 64:].std() / weights[64 * 32 :].abs().max()
    assert 0.7 < (bottom / top).item() < 1.4


@needs_aihwkit
@pytest.mark.parametrize("text", [CASES[1], CASES[3], CASES[6]])
def test_a_chip_alone_is_the_chip_in_a_batch_on_any_thread_count(text):
    fault = fault_of(text)
    layout, weights = layer()
    batch = fault.apply(weights.expand(5, -1).clone(), layout, generators(5, seed=1))
    again = fault.apply(weights.expand(5, -1).clone(), layout, generators(5, seed=1))
    other = fault.apply(weights.expand(5, -1).clone(), layout, generators(5, seed=2))
    assert torch.equal(batch, again) and not torch.equal(batch, other)
    threads = torch.get_num_threads()
    try:
        for count in {1, 2, threads}:
            torch.set_num_threads(count)
            for chip in range(5):
                alone = fault.apply(weights[None].clone(), layout, generators(1, 1, chip))
                assert torch.equal(alone[0], batch[chip]), (count, chip)
    finally:
        torch.set_num_threads(threads)


@needs_aihwkit
def test_the_callers_global_generator_is_left_as_it_was():
    state = torch.get_rng_state()
    cimtest_chips(fault_of("aihwkit-pcm:t=3600"), chips=2)
    assert torch.equal(torch.get_rng_state(), state)


@needs_aihwkit
def test_a_population_is_reproducible_and_per_read_redraws():
    from cimtest import zoo
    from cimtest.engine import Population

    model = zoo.get_entry("lenet5-8").build()
    population = Population(model, "aihwkit-pcm:t=3600,compensation=global", seed=3, n=6)
    rows = population.weights(range(6))
    assert torch.equal(population.weights([4])[0], rows[4])
    same = Population(model, population.faults.spec(), seed=3, n=6)
    assert torch.equal(same.weights(range(6)), rows)
    assert not torch.equal(rows[0], rows[1]) and torch.isfinite(rows).all()
    x = torch.randn(1, 1, 8, 8).expand(2, -1, -1, -1)  # the same input read twice
    static = population.outputs(x, [0])
    assert torch.equal(static[:, 0], static[:, 1])
    per_read = population.with_faults("aihwkit-pcm:t=3600@per-read")
    first = per_read.outputs(x, [0])
    assert torch.equal(first, per_read.outputs(x, [0])) and not torch.equal(first[:, 0],
                                                                             first[:, 1])


@needs_aihwkit
def test_the_same_chips_age_along_one_path():
    """`Population.at(t)` and `accuracy_at` age aihwkit chips as they age drift and
    retention: the chips at each age are those of a population made at that age."""
    from cimtest import zoo
    from cimtest.engine import Population

    model = zoo.get_entry("lenet5-8").build()
    young = Population(model, "aihwkit-pcm:t=60", seed=2, n=3)
    for t in (3600.0, 86400.0):
        assert torch.equal(young.at(t).weights(range(3)),
                           Population(model, f"aihwkit-pcm:t={t}", seed=2, n=3).weights(range(3)))
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))
    aged = young.accuracy_at(x, y, [60.0, 3600.0])
    assert torch.equal(aged[1], Population(model, "aihwkit-pcm:t=3600", seed=2, n=3).accuracy(x, y))


@needs_aihwkit
@pytest.mark.parametrize("text", CASES)
def test_spec_and_toml_round_trip(text, tmp_path):
    fault = fault_of(text)
    stack = FaultStack((fault,))
    assert parse_spec(fault.spec()) == stack
    path = tmp_path / "fault.toml"
    path.write_text(dump_toml(stack))
    assert load_toml(path) == stack
    assert parse_spec(fault.spec() + "@layers=0.5@per-read").faults[0].per_read


@needs_aihwkit
def test_the_python_api_takes_the_compensation_as_a_word():
    fault = AihwkitPCM(t=60.0, compensation="global")
    assert fault.compensation is Compensation.GLOBAL
    assert fault == fault_of("aihwkit-pcm:t=60,compensation=global")
    with pytest.raises(ConfigError, match="'compensation' parameter of fault 'aihwkit-pcm'"):
        AihwkitPCM(t=60.0, compensation="local")


BAD = {
    "aihwkit-pcm:t=3600,nu=0.1": "unknown key 'nu' for 'aihwkit-pcm'",
    "aihwkit-pcm:t=-1": "'t' parameter of fault 'aihwkit-pcm' must be in [0, inf)",
    "aihwkit-pcm:t=1,compensation=local": "'compensation' must be one of none, global",
    "aihwkit-pcm:t=1,g_max=0": "'g_max' parameter of fault 'aihwkit-pcm' must be in (0, inf)",
    "aihwkit-pcm": "fault 'aihwkit-pcm' needs its level 't'",
    "aihwkit-reram:t=3600": "must be one of 1, 86400, 172800",
    "aihwkit-reram-cmo:t=1e-9": "must be 0 or at least 1e-06",
    "aihwkit-reram-cmo:t=1,acceptance_range=1": "'acceptance_range' parameter",
    "aihwkit-reram-cmo:t=1,g_min=90": "'g_min' parameter",
}


@pytest.mark.parametrize("text", BAD)
def test_bad_specs_are_one_clear_line(text):
    with pytest.raises(ConfigError) as info:
        parse_spec(text)
    assert BAD[text] in str(info.value) and "\n" not in str(info.value)


def test_bad_toml_values(tmp_path):
    path = tmp_path / "fault.toml"
    path.write_text('[[fault]]\nkind = "aihwkit-pcm"\nt = 1\ncompensation = 1\n')
    with pytest.raises(ConfigError, match="'compensation' must be one of none, global; got 1"):
        load_toml(path)
    path.write_text('[[fault]]\nkind = "aihwkit-pcm"\nt = "1"\n')
    with pytest.raises(ConfigError, match="'t' must be a number"):
        load_toml(path)


def test_without_aihwkit_a_spec_names_the_extra_and_the_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "aihwkit", None)  # what an absent package looks like
    with pytest.raises(ConfigError) as info:
        parse_spec("aihwkit-reram-cmo:t=60")
    message = str(info.value)
    assert "optional extra aihwkit" in message and INSTALL in message and "\n" not in message
    result = runner.invoke(app, ["campaign", "resnet20-8", "--fault", "aihwkit-pcm:t=60"])
    assert result.exit_code == 2 and INSTALL in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@needs_aihwkit
def test_a_broken_aihwkit_is_one_clear_line(monkeypatch):
    fault = fault_of("aihwkit-pcm:t=1")
    monkeypatch.setitem(sys.modules, "aihwkit.inference", None)
    with pytest.raises(ConfigError, match=f"cannot import aihwkit .*; install it with: {INSTALL}"):
        cimtest_chips(fault, chips=1)


@needs_aihwkit
def test_campaign_on_aihwkit_chips():
    """resnet20-8 (weights shipped) an hour after programming, without compensation: every
    chip below the ideal chip; a bad key is refused in one line, exit 2."""
    result = runner.invoke(app, ["campaign", "resnet20-8", "--fault", "aihwkit-pcm:t=3600",
                                 "--chips", "8", "--test-images", "50", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["chips"] == 8 and doc["accuracy_max"] < doc["ideal_accuracy"]
    bad = runner.invoke(app, ["campaign", "resnet20-8", "--fault", "aihwkit-pcm:t=3600,tt=1"])
    assert bad.exit_code == 2 and "unknown key 'tt'" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


@needs_aihwkit
def test_calibrate_bisects_t():
    """`calibrate` searches t (1 s to 1e9 s); --drop with t given, and aihwkit-reram, whose
    three fitted times cannot be bisected, are refused in one line."""
    result = runner.invoke(app, ["calibrate", "resnet20-8", "--fault", "aihwkit-pcm",
                                 "--drop", "5,40", "--chips", "2", "--iterations", "4",
                                 "--test-images", "30", "--json"])
    assert result.exit_code == 0, result.output
    small, large = json.loads(result.stdout)
    assert small["level"] < large["level"]  # a larger drop takes longer: t was bisected
    given = runner.invoke(app, ["compare", "resnet20-8", "--fault", "aihwkit-pcm:t=60",
                                "--drop", "2"])
    assert given.exit_code == 2 and "--drop calibrates the level" in given.stderr
    reram = runner.invoke(app, ["calibrate", "resnet20-8", "--fault", "aihwkit-reram",
                                "--drop", "5"])
    assert reram.exit_code == 2 and "cannot be calibrated" in reram.stderr
