"""`cimtest reproduce btv|egis|comparison|all`: rerun the documented experiments from scratch
and rewrite the measured tables of ``docs/results-btv.md``, ``docs/results-egis.md`` and
``docs/comparison.md``.

Each experiment is the list of `cimtest ... --json` commands its document shows, run in
order as subprocesses in a scratch folder (later commands take levels from earlier ones);
their JSON turns into markdown tables that replace the text between the document's
``<!-- reproduce:NAME -->`` and ``<!-- /reproduce:NAME -->`` markers. The prose around the
markers is not touched. Everything is seeded, so the same machine and torch build give the
same tables. Budget: about 15 (btv), 25 (egis) and 45 (comparison) minutes on 2 cores.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import typer

from cimtest._atomic import atomic_file
from cimtest.cli.common import emit_json, handle_errors, stderr, stdout
from cimtest.exceptions import ArtifactError, CimtestError, ConfigError

__all__ = ["EXPERIMENTS", "Experiment", "replace_block", "reproduce", "run_experiment"]

Results = dict[str, object]
"""Parsed JSON of the steps run so far, by step name."""


@dataclass(frozen=True)
class Experiment:
    """A documented experiment: its document, its commands and how its tables are made."""

    doc: str
    steps: tuple[tuple[str, Callable[[Results, Path], list[str]]], ...]
    render: Callable[[Results], dict[str, str]]
    """Results → markdown by block name."""


def run_experiment(experiment: Experiment, workdir: Path) -> Results:
    """Run the steps of `experiment` in `workdir`; return every step's JSON by name."""
    results: Results = {}
    for name, argv in experiment.steps:
        args = [str(a) for a in argv(results, workdir)]
        stderr.print(f"reproduce: cimtest {' '.join(args)}", markup=False)
        done = subprocess.run([sys.executable, "-m", "cimtest", "-q", *args, "--json"],
                              cwd=workdir, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise CimtestError(f"step '{name}' failed: {done.stderr.strip().splitlines()[-1:]}")
        results[name] = json.loads(done.stdout)
    return results


def replace_block(text: str, name: str, body: str) -> str:
    """`text` with the lines between the markers of block `name` replaced by `body`."""
    pattern = re.compile(rf"(<!-- reproduce:{re.escape(name)} -->\n).*?(<!-- /reproduce:"
                         rf"{re.escape(name)} -->)", re.DOTALL)
    if not pattern.search(text):
        raise ArtifactError(f"no '<!-- reproduce:{name} -->' ... '<!-- /reproduce:{name} -->' "
                            "block in the document")
    return pattern.sub(lambda m: m.group(1) + body.rstrip("\n") + "\n" + m.group(2), text)


def write_blocks(path: Path, blocks: dict[str, str]) -> None:
    """Replace `blocks` in the document at `path` atomically."""
    text = path.read_text()
    for name, body in blocks.items():
        text = replace_block(text, name, body)
    with atomic_file(path) as tmp:
        tmp.write_text(text)


def _level(results: Results, step: str, index: int = 0) -> float:
    return float(results[step][index]["level"])


def _pct(row: dict, key: str) -> str:
    value = row.get(key)
    if value is None:
        return "-"
    low, high = row.get(f"{key}_low"), row.get(f"{key}_high")
    band = "" if low is None else f" [{100 * low:.1f}, {100 * high:.1f}]"
    return f"{100 * value:.1f}{band}"


# --- btv: paper 1's coverage table, scaled (docs/results-btv.md) -----------------------------

_BTV_CAL = ["--drop", "1,2,5", "--chips", 32, "--test-images", 200, "--iterations", 10]


def _btv_evaluate(results: Results, workdir: Path) -> list:
    faults = []
    for kind, step in (("mult:eta", "cal-mult"), ("bitflip:p", "cal-bitflip")):
        faults += [x for i in range(3) for x in ("--fault", f"{kind}={_level(results, step, i):.4g}")]
    return ["btv", "evaluate", workdir / "r20.safetensors", "--model", "resnet20-8", *faults,
            "--chips", 200, "--offsets", "0,0.05,0.1"]


def _render_btv(results: Results) -> dict[str, str]:
    lines = [("| level | rule | coverage (eq. 6) | coverage, dropped chips | verifiable (eq. 7) | "
             "FA ideal | FA no-drop | AUC | dropped | mean acc. |"),
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in results["evaluate"]:
        auc = "-" if row["auc"] is None else f"{row['auc']:.3f}"
        lines.append(f"| {row['level']} | {row['rule']} | {_pct(row, 'coverage')} | "
                     f"{_pct(row, 'coverage_dropped')} | {_pct(row, 'verifiable_coverage')} | "
                     f"{_pct(row, 'false_alarm_ideal')} | {_pct(row, 'false_alarm_nodrop')} | "
                     f"{auc} | {100 * row['dropped']:.1f} | {row['accuracy_mean']:.2f} |")
    fit = results["fit"]
    lines += ["", (f"Fit: σ_y of the ideal chip {fit['sigma_ideal']:.4f}, false-alarm "
              f"threshold {fit['threshold_false_alarm']:.4f}.")]
    return {"btv-table": "\n".join(lines)}


# --- egis: the scaled EGIS runs (docs/results-egis.md) ---------------------------------------

_EGIS_FIT = ["--chips", 200, "--images", 128, "--steps", 100, "--seed", 0]
_EGIS_TESTS = (("A50", 2), ("A50", 4), ("A70", 4))


def _egis_fit(cutoff: str, k: int) -> Callable[[Results, Path], list]:
    return lambda results, workdir: ["egis", "fit", "resnet20-8", "--fault",
                                     "egis-typical:sigma=0.0566", *_EGIS_FIT, "--k", k,
                                     "--cutoff", cutoff, "-o", workdir / f"t-{cutoff}-k{k}"]


def _render_egis(results: Results) -> dict[str, str]:
    lines = ["| cutoff | A_cutoff | K | TA | TE | YL | CTE | BTE | truly pass |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in results["evaluate"]:
        lines.append(f"| {row['cutoff']} | {row['cutoff_accuracy']:.2f} | {row['k']} | "
                     + " | ".join(f"{row[key]:.1f}" for key in
                                  ("ta", "te", "yl", "cte", "bte", "truly_pass")) + " |")
    return {"egis-table": "\n".join(lines)}


# --- comparison: every method on the same chips (docs/comparison.md) -------------------------

_COMPARISONS = (
    ("r20-typical", "resnet20-8", "egis-typical:sigma", "cal-r20-typical", 1000, 2048),
    ("r20-bitflip", "resnet20-8", "bitflip:p", "cal-r20-bitflip", 1000, 2048),
    ("vgg-typical", "vgg16-8", "egis-typical:sigma", "cal-vgg-typical", 300, 512),
    ("vgg-bitflip", "vgg16-8", "bitflip:p", "cal-vgg-bitflip", 300, 512),
)


def _calibrate(model: str, kind: str, chips: int) -> Callable[[Results, Path], list]:
    return lambda results, workdir: ["calibrate", model, "--fault", kind, "--drop", 2,
                                     "--chips", chips, "--iterations", 10]


def _compare(model: str, spec: str, cal: str, chips: int, images: int):
    return lambda results, workdir: ["compare", model, "--fault",
                                     f"{spec}={_level(results, cal):.4g}", "--chips", chips,
                                     "--images", images]


def _render_comparison(results: Results) -> dict[str, str]:
    blocks = {}
    for name, *_ in _COMPARISONS:
        lines = [("| method | TA | TE | YL | CTE | BTE | coverage | false alarm | AUC | "
                 "test bytes | forwards | needs | fit s |"), "|" + "---|" * 13]
        for r in results[name]:
            lines.append(f"| {r['method']} | " + " | ".join(f"{r[k]:.1f}" for k in (
                "ta", "te", "yl", "cte", "bte", "coverage", "false_alarm")) +
                f" | {r['auc']:.3f} | {r['test_bytes']:,} | {r['forward_passes']} | "
                f"{', '.join(r['needs'][1:]) or 'model only'} | {r['fit_s']:.1f} |")
        blocks[name] = "\n".join(lines)
    levels = [f"`{name}`: {_level(results, 'cal-' + name):.4g}" for name, *_ in _COMPARISONS]
    blocks["levels"] = "Calibrated levels (2-point mean drop): " + ", ".join(levels) + "."
    return blocks


EXPERIMENTS: dict[str, Experiment] = {
    "btv": Experiment(
        "results-btv.md",
        (("cal-mult", lambda r, w: ["calibrate", "resnet20-8", "--fault", "mult", *_BTV_CAL]),
         ("cal-bitflip", lambda r, w: ["calibrate", "resnet20-8", "--fault", "bitflip",
                                       *_BTV_CAL]),
         ("fit", lambda r, w: ["btv", "fit", "resnet20-8", "-o", w / "r20.safetensors",
                               "--alpha", 0.01, "--steps", 300, "--false-alarm", 0.01]),
         ("evaluate", _btv_evaluate)),
        _render_btv),
    "egis": Experiment(
        "results-egis.md",
        tuple((f"fit-{c}-{k}", _egis_fit(c, k)) for c, k in _EGIS_TESTS) + (
            ("evaluate", lambda r, w: ["egis", "evaluate",
                                       *(w / f"t-{c}-k{k}" for c, k in _EGIS_TESTS),
                                       "--model", "resnet20-8", "--chips", 300, "--seed", 1]),),
        _render_egis),
    "comparison": Experiment(
        "comparison.md",
        tuple((cal, _calibrate(model, spec.split(":")[0], 64 if chips > 300 else 32))
              for _, model, spec, cal, chips, _ in _COMPARISONS) +
        tuple((name, _compare(model, spec, cal, chips, images))
              for name, model, spec, cal, chips, images in _COMPARISONS),
        _render_comparison),
}


@handle_errors
def reproduce(
    target: str = typer.Argument(..., help="btv, egis, comparison or all."),
    docs: str = typer.Option("docs", "--docs", help="Folder of the documents to update."),
    json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> None:
    """Rerun the documented experiments from scratch and rewrite their tables in docs/."""
    names = list(EXPERIMENTS) if target == "all" else [target]
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        raise ConfigError(f"reproduce takes {', '.join(EXPERIMENTS)} or all; got '{target}'")
    folder = Path(docs)
    for name in names:
        if not (folder / EXPERIMENTS[name].doc).is_file():
            raise ArtifactError(f"'{folder / EXPERIMENTS[name].doc}' does not exist")
    written = {}
    for name in names:
        experiment = EXPERIMENTS[name]
        with tempfile.TemporaryDirectory(prefix=f"cimtest-reproduce-{name}-") as workdir:
            results = run_experiment(experiment, Path(workdir))
        path = folder / experiment.doc
        blocks = experiment.render(results)
        write_blocks(path, blocks)
        written[name] = {"doc": str(path), "blocks": sorted(blocks), "results": results}
    if json:
        emit_json(written)
        return
    for name, info in written.items():
        stdout.print(f"{name}: rewrote {', '.join(info['blocks'])} in {info['doc']}")
