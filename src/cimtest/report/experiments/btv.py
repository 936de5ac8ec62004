"""Paper 1's experiments (docs/results-btv.md): resnet20-8 at full size and the 32x32 zoo,
their commands and their tables. Budgets on the 2-core reference machine, one torch thread:
``btv`` ~45 min, ``btv-paper`` ~6 min, ``btv-zoo`` ~115 min (plus, on first use, training:
MobileNet-v2 20 min, the DCGAN 14 min, FCN and UNet 30-60 min), ``btv-zoo-layers`` ~105 min
(plus ~55 min to train its four 32x32 models); each writes only its own blocks, so one
reruns without the others."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING

from cimtest.report.experiments.base import Experiment, Results, Step
from cimtest.report.markdown import markdown, pct, rows_table

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["EXPERIMENTS"]


# --- btv: paper 1 on resnet20-8 at full size (docs/results-btv.md) ----------------------------

_BTV_KINDS = (("mult", "mult", "eta", ""), ("add", "add", "eta", ""),
              ("bitflip", "bitflip", "p", ""), ("levelflip", "levelflip:bits=2", "p", ",bits=2"))
"""(name, --fault of calibrate, level parameter, extra parameters) per fault kind."""
_BTV_DROPS = (0.5, 1, 2, 5, 10)
_BTV_SWEEP = (
    ("default", []), ("alpha=0", ["--alpha", 0]), ("alpha=1", ["--alpha", 1]),
    ("alpha=100", ["--alpha", 100]), ("alpha=1,prior=0.3", ["--alpha", 1, "--prior", 0.3]),
    ("alpha=1,prior=3", ["--alpha", 1, "--prior", 3]), ("kl=sum", ["--kl", "sum"]),
    ("steps=30", ["--steps", 30]), ("steps=1000", ["--steps", 1000]),
    ("samples=4", ["--samples", 4]),
)
"""Fit settings compared on the same chips (`btv fit` options besides the defaults)."""


def _fault_args(results: Results, prefix: str, kinds, drops=None) -> list:
    """``--fault SPEC`` for each kind and calibrated drop, in kind order then drop order."""
    args = []
    for name, _, param, extra in kinds:
        for row in results[f"{prefix}{name}"]:
            if drops is None or row["drop"] in drops:
                args += ["--fault", f"{name}:{param}={row['level']:.6g}{extra}"]
    return args


def _btv_steps() -> tuple[Step, ...]:
    model, test = "resnet20-8", "r20-8.safetensors"
    common = ["--chips", 1000, "--test-images", 540]
    steps: list[Step] = [
        (f"cal-{name}", lambda r, w, kind=kind: [
            "calibrate", model, "--fault", kind, "--drop", ",".join(map(str, _BTV_DROPS)),
            "--chips", 64, "--iterations", 10])
        for name, kind, _, _ in _BTV_KINDS]
    steps += [
        ("fit", lambda r, w: ["btv", "fit", model, "-o", w / test, "--false-alarm", 0.01]),
        ("evaluate", lambda r, w: ["btv", "evaluate", w / test, "--model", model,
                                   *_fault_args(r, "cal-", _BTV_KINDS), *common,
                                   "--offsets", "0,0.05,0.1,0.2,0.3"]),
        ("layers", lambda r, w: ["btv", "evaluate", w / test, "--model", model,
                                 *_fault_args(r, "cal-", _BTV_KINDS, (2,)), *common,
                                 "--layers", "0.1,0.2,0.3,0.4,0.5", "--fresh-per-chip", 0]),
    ]
    for name, options in _BTV_SWEEP:
        path = f"sweep-{name}.safetensors"
        steps += [
            (f"sweep-fit-{name}", lambda r, w, p=path, o=options: [
                "btv", "fit", model, "-o", w / p, *o]),
            (f"sweep-{name}", lambda r, w, p=path: [
                "btv", "evaluate", w / p, "--model", model,
                *_fault_args(r, "cal-", _BTV_KINDS[::2], (1,)), "--chips", 300,
                "--test-images", 540, "--fresh-per-chip", 0]),
        ]
    return tuple(steps)


# --- btv-paper: resnet20-8 at the paper's own eta and P_flip (docs/results-btv.md) -------------

_PAPER_LEVELS = (("mult", "eta", (0.01, 0.05, 0.1, 0.2, 0.4), ""),
                 ("add", "eta", (0.01, 0.05, 0.1, 0.2, 0.4), ""),
                 ("bitflip", "p", (0.0002, 0.001, 0.005, 0.01, 0.018), ""),
                 ("levelflip", "p", (0.0002, 0.001, 0.005, 0.01, 0.018), ",bits=2"))
"""(kind, level parameter, levels, extra parameters): paper 1's range of eta_0 (0.01-0.4) and
P_flip (0.02-1.8 %, here as a probability) in five steps per kind."""
_PAPER_CHIPS = 300
"""Chips per level: 20 levels x 300 chips x 552 forwards, ~6 min of one core."""


def _paper_faults(levels=_PAPER_LEVELS) -> list:
    """``--fault SPEC`` for every kind and level of `levels`."""
    return [a for kind, param, values, extra in levels for v in values
            for a in ("--fault", f"{kind}:{param}={v:g}{extra}")]


def _paper_steps() -> tuple[Step, ...]:
    model, test = "resnet20-8", "r20-8.safetensors"
    return (
        ("fit", lambda r, w: ["btv", "fit", model, "-o", w / test, "--false-alarm", 0.01]),
        ("evaluate", lambda r, w: [
            "btv", "evaluate", w / test, "--model", model, *_paper_faults(),
            "--chips", _PAPER_CHIPS, "--test-images", 540, "--point", 3,
            "--plot", w / "spread.png"]),
    )


def render_paper(results: Results) -> dict[str, str]:
    """The paper-level table and fit line of resnet20-8."""
    return {"btv-paper-levels": _paper_table(results["evaluate"]) + "\n\n"
            + _fit_line(results["fit"])}


def _paper_table(rows: list[dict]) -> str:
    """Per level: accuracy, coverage (both rules), verifiable coverage, false alarms, AUC."""
    lines = [("| level | mean acc. (drop) | dropped % | coverage | verifiable | FA ideal | "
              "FA no-drop | coverage, 1 % FA rule | FA ideal, 1 % FA rule | AUC |"),
             "|---|---|---|---|---|---|---|---|---|---|"]
    rules = {(r["level"], r["rule"]): r for r in rows if r["layers"] is None}
    for (level, rule), row in rules.items():
        if rule != "offset=0":
            continue
        far = rules.get((level, "false_alarm"), {})
        drop = row["ideal_accuracy"] - row["accuracy_mean"]
        auc = "-" if row["auc"] is None else f"{row['auc']:.3f}"
        lines.append(
            f"| {level} | {row['accuracy_mean']:.2f} ({drop:.2f}) | {100 * row['dropped']:.1f} "
            f"| {pct(row, 'coverage')} | {pct(row, 'verifiable_coverage')} | "
            f"{pct(row, 'false_alarm_ideal')} | {pct(row, 'false_alarm_nodrop')} | "
            f"{pct(far, 'coverage')} | {pct(far, 'false_alarm_ideal')} | {auc} |")
    return "\n".join(lines)


# --- btv-zoo: paper 1 on the 32x32 zoo, scaled (docs/results-btv.md) --------------------------

_ZOO_CALIBRATED = (
    ("resnet20", _BTV_KINDS, 16, 100), ("fcn", _BTV_KINDS, 16, 100),
    ("unet", _BTV_KINDS, 16, 100), ("repvgg-a0", _BTV_KINDS[::2], 16, 100),
    ("resnet56", _BTV_KINDS[::2], 8, 50), ("mobilenet-v2", _BTV_KINDS[::2], 8, 50),
)
"""(model, fault kinds, chips per calibration estimate, chips per cell): the costlier models
(one forward on one core: RepVGG-A0 4 ms, ResNet-56 9 ms, MobileNet-v2 22 ms through the
engine at 100 inputs per chip) under multiplicative variation and bit-flips only, ResNet-56
and MobileNet-v2 with fewer chips."""
_ZOO_UNLABELLED = ("dcgan-g", "dcgan-d")
"""No accuracy: evaluated at resnet20's levels."""


def _zoo_steps() -> tuple[Step, ...]:
    steps: list[Step] = []
    evaluate = ["--offsets", "0,0.05,0.1,0.2,0.3", "--fresh-per-chip", 4]
    for model, kinds, cal_chips, chips in _ZOO_CALIBRATED:
        steps += [(f"cal-{model}-{name}", lambda r, w, m=model, k=kind, c=cal_chips: [
            "calibrate", m, "--fault", k, "--drop", "1,2,5", "--chips", c, "--iterations", 8,
            "--test-images", 100]) for name, kind, _, _ in kinds]
        steps += [_zoo_fit(model), (f"eval-{model}", lambda r, w, m=model, k=kinds, n=chips: [
            "btv", "evaluate", w / f"{m}.safetensors", "--model", m,
            *_fault_args(r, f"cal-{m}-", k), "--chips", n, *evaluate, "--test-images", 100])]
        if model == "resnet20":  # the unlabelled models take resnet20's levels
            for other in _ZOO_UNLABELLED:
                steps += [_zoo_fit(other), (f"eval-{other}", lambda r, w, m=other: [
                    "btv", "evaluate", w / f"{m}.safetensors", "--model", m,
                    *_fault_args(r, "cal-resnet20-", _BTV_KINDS), "--chips", 100, *evaluate])]
    return tuple(steps)


_ZOO_LAYERS = (("resnet20", 80, 100, True), ("repvgg-a0", 80, 100, True),
               ("resnet56", 40, 100, True), ("mobilenet-v2", 20, 100, False))
"""(model, chips per cell, test images, in Table VI) of Tables V and VI at 32x32: the models
of the tables that the zoo has, the costlier on fewer chips (one forward on one core:
ResNet-20 3 ms, RepVGG-A0 4 ms, ResNet-56 9 ms, MobileNet-v2 22 ms). MobileNet-v2 is in the
paper's Table V only."""
_TABLE_VI_MODELS = tuple(m for m, *_, table_vi in _ZOO_LAYERS if table_vi)
_ZOO_TABLE_V = (("mult", "eta", (0.2,), ""), ("add", "eta", (0.05,), ""),
                ("bitflip", "p", (0.005,), ""), ("levelflip", "p", (0.005,), ",bits=2"))
"""Table V's constant level per kind (paper values: eta_0 and P_flip of Tables II-III)."""
_ZOO_TABLE_VI = (("mult", "eta", (0.1, 0.2, 0.4), ""), ("bitflip", "p", (0.001, 0.005, 0.01), ""))
"""Table VI's levels (the paper: multiplicative variation at Table II's levels; bit-flips
added), also the levels of the spread figure."""
_ZOO_OFFSETS = (0, 0.25, 0.5, 1, 2, 4, 8, 16)
"""Threshold offsets of Table VI, in multiples of σ_y of the ideal chip (the paper's own
offsets are in its σ_y units, which differ per model)."""


_ZOO_RULES = (("offset=0", "the paper's rule, t = σ_y of the ideal chip"),
              ("false_alarm", "the 1 % false-alarm rule, 4 fresh samples per chip"))
"""The threshold rules of Table V, each with its name in the document."""


def _zoo_layer_steps() -> tuple[Step, ...]:
    steps: list[Step] = []
    for model, chips, images, table_vi in _ZOO_LAYERS:
        test, common = f"{model}.safetensors", ["--chips", chips, "--test-images", images]
        steps += [
            _zoo_fit(model),
            (f"layers-{model}", lambda r, w, m=model, t=test, c=common: [
                "btv", "evaluate", w / t, "--model", m, *_paper_faults(_ZOO_TABLE_V), *c,
                "--fresh-per-chip", 4, "--layers", "0.1,0.2,0.3,0.4,0.5", "--point", 0]),
        ]
        if not table_vi:
            continue
        steps += [
            (f"offsets-{model}", lambda r, w, m=model, t=test, c=common: [
                "btv", "evaluate", w / t, "--model", m, *_paper_faults(_ZOO_TABLE_VI), *c,
                "--fresh-per-chip", 0, "--offsets",
                ",".join(f"{k * r[f'fit-{m}']['sigma_ideal']:.4g}" for k in _ZOO_OFFSETS),
                "--point", 3, "--plot", w / f"spread-{m}.png"]),
        ]
    return tuple(steps)


def render_zoo_layers(results: Results, models: Sequence[str],
                      table_vi: Sequence[str]) -> dict[str, str]:
    """Table V on the 32x32 `models` and Table VI on those of them in `table_vi`."""
    from cimtest.report.btv_tables import paper_tables

    layers, offsets = [], []
    for model in models:
        rows = results[f"layers-{model}"]
        sigma = results[f"fit-{model}"]["sigma_ideal"]
        head = (f"**{model}** (σ_y of the ideal chip {sigma:.4g}, ideal accuracy "
                f"{rows[0]['ideal_accuracy']:.2f} %)")
        for rule, name in _ZOO_RULES:
            table = _named_levels(paper_tables(rows, rule)["layers"], rows)
            layers.append(f"{head}, {name} (FA ideal {_fa_ideal(rows, rule)} %):\n\n"
                          + markdown(table))
        layers.append("Mean accuracy (%) and AUC of σ_y for a 1-point drop on the same "
                      "chips:\n\n" + _layer_harm(rows))
        if model not in table_vi:
            continue
        rows = results[f"offsets-{model}"]
        table = _named_levels(paper_tables(rows, "offset=0")["offsets"], rows)
        table.loc[("FA ideal", "-"), :] = [_false_alarm_ideal(rows, f"offset={c}")
                                           for c in table.columns]
        table.columns = [f"+{float(c) / sigma:.3g} σ ({float(c):.3g})" for c in table.columns]
        offsets.append(f"**{model}** (σ_y of the ideal chip {sigma:.4g}):\n\n"
                       + markdown(table))
    return {"zoo-layers": "\n\n".join(layers), "zoo-offsets": "\n\n".join(offsets)}


def _zoo_fit(model: str) -> Step:
    return (f"fit-{model}", lambda r, w: [
        "btv", "fit", model, "-o", w / f"{model}.safetensors", "--false-alarm", 0.01])


def render_btv(results: Results, kinds: Sequence[str], sweep: Sequence[str]) -> dict[str, str]:
    """Paper 1's tables on resnet20-8 for fault `kinds` and the fit settings `sweep`."""
    from cimtest.report.btv_tables import paper_tables

    tables = paper_tables(results["evaluate"], "offset=0")
    blocks = {
        "btv-levels": _levels_table(results, kinds, "cal-"),
        "btv-coverage": markdown(tables["coverage"]),
        "btv-verifiable": markdown(tables["verifiable"]),
        "btv-offsets": markdown(tables["offsets"]),
        "btv-harm": markdown(tables["harm"].drop(columns="spec")),
        "btv-layers": markdown(_named_levels(
            paper_tables(results["layers"], "offset=0")["layers"], results["layers"]))
        + "\n\nMean accuracy (%) and AUC of σ_y for a 1-point drop on the same chips:\n\n"
        + _layer_harm(results["layers"]),
        "btv-fa": _false_alarm_rule(results["evaluate"]),
        "btv-sweep": _sweep_table(results, sweep),
        "btv-fit": _fit_line(results["fit"]),
    }
    return blocks


def _named_levels(table: pd.DataFrame, rows: list[dict]) -> pd.DataFrame:
    """`table` indexed by (fault, level number) with each level number replaced by its spec."""
    import pandas as pd

    specs = {(r["fault"], r["level_index"]): r["base_level"] for r in rows}
    table = table.copy()
    table.index = pd.MultiIndex.from_tuples([(f, specs[(f, i)]) for f, i in table.index],
                                            names=table.index.names)
    return table


def _layer_harm(rows: list[dict]) -> str:
    """Mean accuracy and AUC per fault kind and layer fraction (offset-0 rows)."""
    cells: dict[str, dict[str, str]] = {}
    for row in (r for r in rows if r["rule"] == "offset=0"):
        fraction = "all" if row["layers"] is None else f"{100 * row['layers']:g}%"
        auc = "-" if row["auc"] is None else f"{row['auc']:.2f}"
        cells.setdefault(row["fault"], {})[fraction] = f"{row['accuracy_mean']:.2f} ({auc})"
    return rows_table(cells, "fault")


def _levels_table(results: Results, names: Sequence[str], prefix: str) -> str:
    """Calibrated level (measured mean drop) per fault kind and target drop."""
    rows = {}
    for name in names:
        rows[name] = {f"{r['drop']:g} pt": f"{r['level']:.4g} ({r['measured_drop']:.2f})"
                      for r in results[f"{prefix}{name}"]}
    return rows_table(rows, "fault")


def _false_alarm_rule(rows: list[dict]) -> str:
    lines = ["| level | coverage (fresh samples) | FA ideal | FA no-drop | AUC |",
             "|---|---|---|---|---|"]
    for row in (r for r in rows if r["rule"] == "false_alarm" and r["layers"] is None):
        auc = "-" if row["auc"] is None else f"{row['auc']:.3f}"
        lines.append(f"| {row['level']} | {pct(row, 'coverage')} | "
                     f"{pct(row, 'false_alarm_ideal')} | {pct(row, 'false_alarm_nodrop')} | "
                     f"{auc} |")
    return "\n".join(lines)


def _sweep_table(results: Results, names: Sequence[str]) -> str:
    lines = [("| fit | final loss | σ_y ideal | level | coverage | FA ideal | FA no-drop | "
              "AUC | real image AUC |"), "|---|---|---|---|---|---|---|---|---|"]
    for name in names:
        fit = results[f"sweep-fit-{name}"]
        for row in (r for r in results[f"sweep-{name}"] if r["rule"] == "offset=0"):
            lines.append(f"| {name} | {fit['final_loss']:.3g} | {fit['sigma_ideal']:.3g} | "
                         f"{row['level']} | {pct(row, 'coverage')} | "
                         f"{pct(row, 'false_alarm_ideal')} | "
                         f"{pct(row, 'false_alarm_nodrop')} | {row['auc']:.3f} | "
                         f"{row['auc_point']:.3f} |")
    return "\n".join(lines)


def _fit_line(fit: dict) -> str:
    far = fit["threshold_false_alarm"]
    return (f"Fit: {fit['seconds']:.0f} s, final loss {fit['final_loss']:.4g}, σ_y of the ideal "
            f"chip {fit['sigma_ideal']:.4g} (offset-0 threshold), false-alarm threshold "
            + ("-" if far is None else f"{far:.4g}") + f", {fit['storage_bytes']:,} bytes of "
            f"mean + log-variance, N = {fit['n_samples']}.")


def render_zoo(results: Results, calibrated: Mapping[str, Sequence[str]],
               unlabelled: Sequence[str]) -> dict[str, str]:
    """Paper 1's tables on the 32x32 zoo: `calibrated` models (their fault kinds) and
    `unlabelled` ones."""
    import pandas as pd

    from cimtest.report.btv_tables import paper_tables

    coverage, verifiable, harm, far = {}, {}, [], {}
    models = [*calibrated, *unlabelled]
    for model in models:
        rows = results[f"eval-{model}"]
        tables = paper_tables(rows, "offset=0")
        coverage[model] = _flatten(tables["coverage"])
        far[model] = {f"FA ideal, {rule}": _fa_ideal(rows, rule)
                      for rule in ("offset=0", "false_alarm")}
        far[model].update(_flatten(paper_tables(rows, "false_alarm")["coverage"]))
        if "verifiable" in tables:
            verifiable[model] = _flatten(tables["verifiable"])
        if "harm" in tables:
            two = tables["harm"].xs(2, level="level")
            harm.append(two.drop(columns="spec").assign(model=model).set_index(
                "model", append=True).reorder_levels(["model", "fault"]))
    fits = {m: results[f"fit-{m}"] for m in models}
    fit_rows = pd.DataFrame({m: {"N": f["n_samples"], "σ_y ideal": f["sigma_ideal"],
                                 "fit s": f["seconds"], "test bytes": f["storage_bytes"]}
                             for m, f in fits.items()}).T.rename_axis("model")
    return {
        "zoo-levels": _zoo_levels(results, calibrated),
        "zoo-coverage": markdown(pd.DataFrame(coverage).T.rename_axis("model")),
        "zoo-verifiable": markdown(pd.DataFrame(verifiable).T.rename_axis("model")),
        "zoo-fa": markdown(pd.DataFrame(far).T.rename_axis("model")),
        "zoo-harm": markdown(pd.concat(harm)),
        "zoo-fit": markdown(fit_rows, digits=0),
    }


def _false_alarm_ideal(rows: list[dict], rule: str) -> float:
    """False alarms (percent) of `rule` on fresh samples of the vector on the ideal chip."""
    return 100 * next(r["false_alarm_ideal"] for r in rows if r["rule"] == rule)


def _fa_ideal(rows: list[dict], rule: str) -> str:
    """`_false_alarm_ideal` as a table cell."""
    return f"{_false_alarm_ideal(rows, rule):.1f}"


def _flatten(table: pd.DataFrame) -> dict[str, float]:
    """{"mult 1": 98.0, ...} from a kind x level table."""
    return {f"{kind} {level}": value for kind, row in table.iterrows()
            for level, value in row.items()}


def _zoo_levels(results: Results, calibrated: Mapping[str, Sequence[str]]) -> str:
    rows = {}
    for model, kinds in calibrated.items():
        rows[model] = {name: ", ".join(f"{r['level']:.3g}" for r in results[f"cal-{model}-{name}"])
                       for name in kinds}
    return rows_table(rows, "model")


EXPERIMENTS: dict[str, Experiment] = {
    "btv": Experiment(
        "results-btv.md", _btv_steps(),
        partial(render_btv, kinds=[n for n, *_ in _BTV_KINDS], sweep=[n for n, _ in _BTV_SWEEP]),
        blocks=("btv-levels", "btv-coverage", "btv-verifiable", "btv-offsets", "btv-harm",
                "btv-layers", "btv-fa", "btv-sweep", "btv-fit")),
    "btv-paper": Experiment(
        "results-btv.md", _paper_steps(), render_paper, blocks=("btv-paper-levels",),
        figures=(("spread.png", "img/btv-spread-r20-8.png"),)),
    "btv-zoo-layers": Experiment(
        "results-btv.md", _zoo_layer_steps(),
        partial(render_zoo_layers, models=[m for m, *_ in _ZOO_LAYERS], table_vi=_TABLE_VI_MODELS),
        blocks=("zoo-layers", "zoo-offsets"),
        figures=tuple((f"spread-{m}.png", f"img/btv-spread-{m}.png") for m in _TABLE_VI_MODELS)),
    "btv-zoo": Experiment(
        "results-btv.md", _zoo_steps(),
        partial(render_zoo, calibrated={m: [n for n, *_ in kinds] for m, kinds, *_ in
                                        _ZOO_CALIBRATED}, unlabelled=_ZOO_UNLABELLED),
        blocks=("zoo-levels", "zoo-coverage", "zoo-verifiable", "zoo-fa", "zoo-harm",
                "zoo-fit")),
}
