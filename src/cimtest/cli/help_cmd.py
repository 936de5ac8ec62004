"""`cimtest help TOPIC`: reference text that does not fit an option's help, e.g. the fault spec
language every --fault takes (errors point here instead of printing it)."""

from __future__ import annotations

import typer

from cimtest.cli.common import handle_errors, stdout
from cimtest.exceptions import ConfigError

__all__ = ["TOPICS", "faults_help", "help_topic"]


SUMMARIES = {
    "bitflip": "each of the 8 stored bits of a weight flips with probability p",
    "levelflip": "each cell moves, with probability p, to another of its 2^bits levels (bits: "
                 "bits per cell, default --bits-per-cell)",
    "stuck": "each cell is stuck, with probability p, at its highest level (probability high) "
             "or at 0",
    "mult": "W' = W (1 + e), e ~ N(0, eta^2) per weight",
    "add": "W' = W + e, e ~ N(0, (eta max|W_layer|)^2) per weight",
    "rram": "W' = W (1 + e_sys + e_cor + e_rand), total std sigma, variance shares sys and cor "
            "(e_rand the rest), correlation exp(-lambda d) between cells d apart (EGIS)",
    "drift": "W(t) = W ((t + t0)/t0)^-nu, nu = |N(nu, nu_sd^2)| drawn once per weight (aihwkit's "
             "PCM: t0 = 20 s); t seconds since programming",
    "retention": "each cell falls one level at its own failure time, exponential with mean "
                 "tau (s) at temp_ref, Arrhenius-accelerated (ea in eV) at temp; temps in degC",
    "aihwkit-pcm": "aihwkit's PCMLikeNoiseModel (Nandakumar et al. 2019): programming noise, "
                   "drift and 1/f read noise up to t seconds; g_max in uS",
    "aihwkit-reram": "aihwkit's ReRamWan2022NoiseModel (NeuRRAM, Wan et al. 2022), fitted at "
                     "t = 1, 86400 or 172800 s only; g_max in uS",
    "aihwkit-reram-cmo": "aihwkit's ReRamCMONoiseModel (CMO/HfOx ReRAM): programming noise "
                         "within acceptance_range %, relaxation and read noise up to t "
                         "seconds; g_min, g_max in uS",
}
"""One line per fault kind; docs/faults.md has the exact definitions."""


FAULTS_TEXT = """\
Fault specs (--fault): faults joined by '+', applied to each chip in the order written.

{grammar}

Kinds: KEY is required, KEY=VALUE is optional with its default, [KEY] is optional; the first
key is the level (0 = the ideal chip; `cimtest calibrate` searches it).
{kinds}

The aihwkit-* kinds program each chip with IBM aihwkit's noise models fitted to measured
devices (optional: pip install --no-deps aihwkit==1.1.0). Their level t is the time since
programming in seconds (t=0 is a freshly programmed chip, not the ideal one);
compensation=global applies aihwkit's GlobalDriftCompensation (one factor per array).

drift and retention age a chip: their level t is its age in seconds, and a chip keeps its
draws at every t. `cimtest campaign --at 1h,1d,1w,1mo,1y` (units s, min, h, d, w, mo, y)
evaluates the same chips at each age and sets t (the spec may leave it out).

Presets: a NAME like a kind; keys override the preset's values.
{presets}

Modifiers:
  @layers=0.3        a random 30 % of the mapped layers, drawn anew for each chip (a FRACTION
                     has a '.' or an exponent)
  @layers=conv1,fc   the named mapped layers (`cimtest info MODEL` lists them)
  @per-read          redrawn at every forward pass (cycle-to-cycle), not once per chip

Examples:
  none
  mult:eta=0.05
  bitflip:p=1e-4@layers=0.3
  levelflip:p=1e-3,bits=2
  egis-typical:sigma=0.3
  mult:eta=0.02+bitflip:p=1e-5@per-read
  aihwkit-pcm:t=86400,compensation=global
  egis-typical:sigma=0.05+drift:nu=0.05,t=86400
  retention:t=31557600,temp=85,bits=2

A .toml file of [[fault]] tables (kind, the keys, layers, per_read) works where a spec does
in `cimtest campaign` and `cimtest btv evaluate`. Exact definitions: docs/faults.md."""


def faults_help() -> str:
    """The fault spec language: grammar, kinds and their keys, presets, modifiers, examples."""
    import dataclasses

    from cimtest.faults import FAULT_KINDS, GRAMMAR, PRESETS

    kinds, width = [], max(map(len, FAULT_KINDS))
    for kind, cls in FAULT_KINDS.items():
        keys = []
        for key, field in cls._fields_by_key().items():
            if field.default is dataclasses.MISSING:
                keys.append(key)
            else:
                keys.append(f"[{key}]" if field.default is None else f"{key}={field.default}")
        summary = SUMMARIES.get(kind) or (cls.__doc__ or "").strip().splitlines()[0]
        kinds += [f"  {kind:<{width}} {', '.join(keys)}", f"  {'':<{width}} {summary}"]
    return FAULTS_TEXT.format(
        grammar="\n".join("  " + rule.strip() for rule in GRAMMAR.split(";")),
        kinds="\n".join(kinds),
        presets="\n".join(f"  {name:<13} = {stack.spec()}" for name, stack in PRESETS.items()))


TOPICS = {"faults": faults_help}
"""Help topics by name."""


@handle_errors
def help_topic(
    topic: str = typer.Argument(None, help=f"One of: {', '.join(TOPICS)}."),
) -> None:
    """Reference text on TOPIC: `faults` is the fault spec language of --fault."""
    if topic is None:
        stdout.print("help topics: " + ", ".join(TOPICS) + " (e.g. `cimtest help faults`)",
                     markup=False)
        return
    if topic not in TOPICS:
        raise ConfigError(f"no help topic {topic!r}; topics: {', '.join(TOPICS)}")
    stdout.print(TOPICS[topic](), markup=False)
