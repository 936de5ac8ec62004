"""The spec language, TOML files, presets and FaultStack."""

from __future__ import annotations

import pytest
from conftest import ALL_FAULTS, ALL_PRESETS, toy_layout

from cimtest.exceptions import ConfigError
from cimtest.faults import (
    EGIS_EXTREME,
    EGIS_TYPICAL,
    GRAMMAR,
    PRESETS,
    AdditiveVariation,
    BitFlip,
    FaultStack,
    LevelFlip,
    MultiplicativeVariation,
    RRAMVariation,
    Scope,
    StuckAt,
    dump_toml,
    load_toml,
    parse_spec,
)
from cimtest.faults import presets as presets_module

EXAMPLES = {
    "none": (),
    "mult:eta=0.05": (MultiplicativeVariation(0.05),),
    "add:eta=0.02": (AdditiveVariation(0.02),),
    "bitflip:p=1e-4@layers=0.3": (BitFlip(1e-4, scope=Scope(fraction=0.3)),),
    "levelflip:p=1e-4,bits=2": (LevelFlip(1e-4, bits=2),),
    "stuck:p=1e-3,high=0.5": (StuckAt(1e-3, high=0.5),),
    "rram:sigma=0.1,sys=0.25,cor=0.25,lambda=0.5": (RRAMVariation(0.1, 0.25, 0.25, 0.5),),
    "mult:eta=0.02+bitflip:p=1e-5": (MultiplicativeVariation(0.02), BitFlip(1e-5)),
    "egis-typical:sigma=0.15": (EGIS_TYPICAL,),
    "egis-typical:sigma=0.3": (RRAMVariation(0.3, 0.25, 0.25, 0.001),),
    "egis-extreme": (RRAMVariation(0.15, 0.5, 0.0, 0.001),),
    "mult:eta=0.05@per-read": (MultiplicativeVariation(0.05, per_read=True),),
    "bitflip:p=1e-4@layers=conv1,layer1.0.conv2": (
        BitFlip(1e-4, scope=Scope(layers=("conv1", "layer1.0.conv2"))),
    ),
    " mult : eta = 1e+0 + bitflip:p=1E-4 @ per-read @ layers=fc ": (
        MultiplicativeVariation(1.0),
        BitFlip(1e-4, scope=Scope(layers=("fc",)), per_read=True),
    ),
    "mult:eta=0.1@layers=1": (MultiplicativeVariation(0.1, scope=Scope(layers=("1",))),),
    "stuck:p=0.5": (StuckAt(0.5),),
}


@pytest.mark.parametrize("text", EXAMPLES)
def test_examples_parse_and_round_trip(text):
    stack = parse_spec(text)
    assert stack == FaultStack(EXAMPLES[text])
    assert parse_spec(stack.spec()) == stack


BAD = {
    "": "empty term",
    "mult:eta=0.1+": "empty term",
    "mult:eta=0.1++add:eta=0.1": "empty term",
    "foo:p=0.1": "unknown fault 'foo'; fault kinds: bitflip, levelflip, stuck, mult, add, rram, "
    "drift, retention, aihwkit-pcm, aihwkit-reram, aihwkit-reram-cmo; presets: "
    "egis-typical, egis-extreme",
    "mult:p=0.1": "unknown key 'p' for 'mult'; its keys: eta",
    "egis-typical:eta=0.1": "unknown key 'eta' for 'egis-typical'",
    "mult": "needs its level 'eta'",
    "rram:sys=0.5": "needs its level 'sigma'",
    "bitflip:p=1.5": r"'p' parameter of fault 'bitflip' must be in \[0, 1\]",
    "stuck:p=0.1,high=-0.1": r"'high' parameter",
    "mult:eta=-0.1": r"'eta' parameter of fault 'mult' must be in \[0, inf\)",
    "add:eta=1..2": "'eta' must be a number",
    "mult:eta=nan": "'eta' must be a number",
    "levelflip:p=0.1,bits=2.5": "'bits' must be an integer",
    "levelflip:p=0.1,bits=3": "'bits' parameter",
    "rram:sigma=0.1,sys=0.7,cor=0.7": r"'sys \+ cor' parameter",
    "rram:sigma=0.1,lambda=0": r"'lambda' parameter .* \(0, inf\)",
    "mult:": "expected key=value",
    "mult:eta": "expected key=value",
    "mult:eta=0.1,eta=0.2": "given twice",
    "mult:eta=0.1@layers=0.0": r"fraction.*\(0, 1\]",
    "mult:eta=0.1@layers=": "empty layer name",
    "mult:eta=0.1@layers=a,,b": "empty layer name",
    "mult:eta=0.1@per_read": "unknown modifier",
    "mult:eta=0.1@per-read@per-read": "given twice",
    "mult:eta=0.1@layers=0.5@layers=a": "given twice",
    "none+mult:eta=0.1": "unknown fault 'none'",
}


@pytest.mark.parametrize("text", BAD)
def test_bad_specs_raise_config_error_pointing_to_the_help(text):
    with pytest.raises(ConfigError, match=BAD[text]) as info:
        parse_spec(text)
    assert GRAMMAR not in str(info.value) and "cimtest help faults" in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_level_for_calibrate():
    assert parse_spec("mult", allow_missing_level=True) == FaultStack(
        (MultiplicativeVariation(0.0),)
    )
    stack = parse_spec("bitflip@layers=0.5", allow_missing_level=True)
    assert stack.with_level(1e-3) == parse_spec("bitflip:p=1e-3@layers=0.5")
    assert parse_spec("egis-typical", allow_missing_level=True).faults[0].sigma == 0.15


def test_toml_round_trip(tmp_path):
    stack = FaultStack(tuple(ALL_FAULTS) + (LevelFlip(0.0),))
    path = tmp_path / "faults.toml"
    path.write_text(dump_toml(stack))
    assert load_toml(path) == stack
    path.write_text(dump_toml(FaultStack(())))
    assert load_toml(path) == FaultStack(())


def test_toml_file(tmp_path):
    path = tmp_path / "chip.toml"
    path.write_text(
        "[[fault]]\n"
        'kind = "mult"\n'
        "eta = 0.05\n"
        "layers = 0.3\n"
        "\n"
        "[[fault]]\n"
        'kind = "egis-typical"\n'
        "sigma = 0.3\n"
        'layers = ["conv1", "fc"]\n'
        "per_read = true\n"
        "\n"
        "[[fault]]\n"
        'kind = "levelflip"\n'
        "p = 0\n"
        "bits = 4\n"
    )
    assert load_toml(path) == parse_spec(
        "mult:eta=0.05@layers=0.3+egis-typical:sigma=0.3@layers=conv1,fc@per-read"
        "+levelflip:p=0,bits=4"
    )


@pytest.mark.parametrize(
    "text, message",
    [
        ("[[faults]]\nkind = 'mult'\neta = 0.1\n", "only \\[\\[fault\\]\\] tables"),
        ("fault = 3\n", "only \\[\\[fault\\]\\] tables"),
        ("[[fault]]\neta = 0.1\n", "#1: 'kind' must be"),
        ("[[fault]]\nkind = 'mult'\neta = '0.1'\n", "'eta' must be a number"),
        ("[[fault]]\nkind = 'mult'\neta = true\n", "'eta' must be a number"),
        ("[[fault]]\nkind = 'levelflip'\np = 0.1\nbits = 2.0\n", "'bits' must be an integer"),
        ("[[fault]]\nkind = 'mult'\neta = 0.1\ncolor = 1\n", "unknown key 'color'"),
        ("[[fault]]\nkind = 'mult'\neta = 0.1\nlayers = 'conv1'\n", "'layers' must be"),
        ("[[fault]]\nkind = 'mult'\neta = 0.1\nper_read = 1\n", "'per_read' must be"),
        ("[[fault]]\nkind = 'mult'\n", "needs its level"),
        ("[[fault]]\nkind = 'mult'\neta = 0.1\n[[fault]]\nkind = 'x'\n", "#2: unknown fault"),
        ("[[fault]\n", "not valid TOML"),
    ],
)
def test_bad_toml(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_toml(path)


def test_missing_toml_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_toml(tmp_path / "missing.toml")


@pytest.mark.parametrize("name", ALL_PRESETS)
def test_presets(name):
    stack = PRESETS[name]
    assert parse_spec(name) == stack
    assert parse_spec(f"{name}:sigma=0.3") == stack.with_level(0.3)
    fault = stack.faults[0]
    assert (fault.sigma, fault.lam) == (0.15, 0.001)
    assert fault.sys + fault.cor == 0.5  # the random share is the other half


def test_preset_values_and_sources():
    assert (EGIS_TYPICAL.sys, EGIS_TYPICAL.cor) == (0.25, 0.25)
    assert (EGIS_EXTREME.sys, EGIS_EXTREME.cor) == (0.5, 0.0)
    source = presets_module.__file__
    with open(source) as handle:
        assert handle.read().count("EGIS §VII-A") >= 2


def test_fault_stack():
    ideal = FaultStack(())
    assert ideal.spec() == "none" and not ideal.per_read
    stack = parse_spec("mult:eta=0.1@per-read+bitflip:p=0.01+add:eta=0.1@per-read")
    assert stack.per_read
    static, per_read = stack.split_time()
    assert static == parse_spec("bitflip:p=0.01")
    assert per_read == parse_spec("mult:eta=0.1@per-read+add:eta=0.1@per-read")
    with pytest.raises(ConfigError, match="single-fault"):
        stack.with_level(0.2)
    with pytest.raises(ConfigError, match="Fault instances"):
        FaultStack(("mult:eta=0.1",))
    with pytest.raises(ConfigError, match="unknown layer 'x'"):
        parse_spec("mult:eta=0.1@layers=x").check_layout(toy_layout())
    parse_spec("mult:eta=0.1@layers=fc,conv1").check_layout(toy_layout())


def test_a_spec_is_parsed_and_a_bad_one_refused_without_importing_torch():
    """`--fault` is checked before any work: the grammar, the kinds, their keys and the
    presets need no torch, so a fresh interpreter parses good specs and refuses bad ones with
    torch (and numpy) never imported. The CLI path is timed by benchmarks/cli.py."""
    import subprocess
    import sys

    code = """if True:
        import sys
        from cimtest.exceptions import ConfigError
        from cimtest.faults import parse_spec
        parse_spec("mult:eta=0.02+bitflip:p=1e-5@layers=0.3")
        parse_spec("egis-typical:sigma=0.3")
        for bad in ("bogus:x=1", "mult:eat=0.1", "stuck:p=x"):
            try:
                parse_spec(bad)
            except ConfigError:
                pass
            else:
                raise SystemExit(bad + " was accepted")
        print(sorted(m for m in ("torch", "numpy") if m in sys.modules))
    """
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"
    cli = subprocess.run([sys.executable, "-X", "importtime", "-m", "cimtest", "campaign",
                          "resnet20-8", "--fault", "bogus:x=1"], capture_output=True, text=True,
                         check=False)
    assert cli.returncode == 2 and "unknown fault 'bogus'" in cli.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in cli.stderr.splitlines()
                if line.startswith("import time:")}
    assert "cimtest.faults.spec" in imported and "torch" not in imported
