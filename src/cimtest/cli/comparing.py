"""The comparison on the command line: run it with a progress bar, print it as a table.

Shared by `cimtest compare` and `cimtest demo`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from cimtest.cli.common import progress_bar, stdout

if TYPE_CHECKING:
    import torch

    from cimtest.cutoffs import Cutoff
    from cimtest.data import Dataset
    from cimtest.hardware.periphery import Periphery
    from cimtest.loading import LoadedModel
    from cimtest.report import Comparison

__all__ = ["NEEDS", "comparison_table", "print_comparison", "run_comparison"]


def run_comparison(
    loaded: LoadedModel,
    dataset: Dataset,
    real: Dataset | None,
    fault: str,
    *,
    chips: int,
    eval_chips: int,
    cutoff: Cutoff,
    k: int,
    images: int,
    steps: int,
    btv_steps: int,
    seed: int,
    eval_seed: int,
    array_size: tuple[int, int] | None,
    bits_per_cell: int,
    memory: str,
    input_range: tuple[float, float] | None = None,
    real_share: float | None = None,
    copies: int = 1,
    learned: dict | None = None,
    eval_faults: Sequence[str | None] = (None,),
    periphery: Periphery | None = None,
    device: torch.device | None = None,
) -> list[Comparison]:
    """`compare` with a progress bar per stage (shared by `compare` and `demo`); `input_range`
    of the synthetic and noise images (None: the zoo model's, else (-1, 1)); `real` None
    holds out `real_share` of `dataset` as the real-image pool (seeded); `learned` (their
    keyword arguments, ``{}`` for the defaults) adds the `optimized` and `learned` tests;
    `eval_faults` the evaluation populations' non-idealities (None: `fault`), one
    comparison each; `periphery` both populations' DAC, ADC and output noise; `device`
    where both populations' chips are drawn and evaluated."""
    from cimtest.report import compare_across, default_methods
    from cimtest.report.comparison import REAL_SHARE

    methods = default_methods(k=k, seed=seed, input_range=input_range,
                              egis={"sid_size": images, "steps": steps},
                              btv={"steps": btv_steps}, learned=learned)
    with progress_bar("compare", unit="steps") as update:
        return compare_across(loaded, fault, dataset, real=real, methods=methods,
                       train_chips=chips,
                       eval_chips=eval_chips, seed=seed, eval_seed=eval_seed, cutoff=cutoff,
                       array_size=array_size, bits_per_cell=bits_per_cell, memory=memory,
                       progress=update,
                       real_share=REAL_SHARE if real_share is None else real_share,
                       copies=copies, eval_faults=eval_faults, periphery=periphery,
                       device=device)


NEEDS = {"real images": "images", "chip labels": "labels", "chip accuracies": "accuracies"}


def comparison_table(rows: list[dict], title: str = "") -> Table:
    """The comparison as a rich table (percent, AUC, bytes, forwards, needs, seconds), TA with
    its 95 % interval, the mark of a tie with the best and the p-value against it."""
    from cimtest.report.markdown import best_method, method_cell, p_vs_best, ta_band

    best = best_method(rows)
    table = Table("method", "TA (95 % CI)", "p vs best", "TE", "YL", "CTE", "BTE", "cov.",
                  "FA", "AUC", "bytes", "fwd", "needs", "fit s", title=title or None)
    for r in rows:
        needs = "+".join(NEEDS[n] for n in r["needs"][1:]) or "model only"
        table.add_row(method_cell(r), ta_band(r), p_vs_best(r, best),
                      *(f"{r[k]:.1f}" for k in ("te", "yl", "cte", "bte", "coverage",
                                                "false_alarm")),
                      f"{r['auc']:.3f}", f"{r['test_bytes']:,}", str(r["forward_passes"]),
                      needs, f"{r['fit_s']:.1f}")
    return table


def print_comparison(result: Comparison, title: str) -> None:
    """Print the table at least 170 columns wide (it does not fit 80), then the legend."""
    from cimtest.report.markdown import row_notes, tie_note

    wide = Console(highlight=False, width=max(stdout.width, 170))  # stdout caps any width
    wide.print(comparison_table(result.rows, title))
    if footnote := tie_note(result.rows):
        stdout.print(footnote)
    for line in row_notes(result.rows):
        stdout.print(line)
    stdout.print("percent of evaluation chips: TA accuracy, TE escapes (CTE critical, BTE "
                 "benign), YL yield loss; cov. = fail chips flagged, FA = pass chips flagged; "
                 "AUC of the score for 'fails'; bytes = stored test inputs; fwd = forwards "
                 "per chip")
    stdout.print(f"ceiling {result.rows[0]['ceiling']:.1f} %: pass/fail on one half of the "
                 "images agrees this often with pass/fail on the other half; TA gaps well "
                 "below the distance to it are within the truth's noise")
