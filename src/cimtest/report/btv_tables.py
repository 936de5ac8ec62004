"""Paper 1's table layouts (Tables II-VI) built from the rows of `cimtest btv evaluate`.

Each row of the evaluation is one (fault spec, layer fraction, threshold rule). The paper
lays them out as fault kind x level (coverage, verifiable coverage), level x layer
fraction (layer-wise) and level x threshold offset; cimtest adds one table the paper does
not have, on whether σ_y separates chips that lost accuracy from chips that did not.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

__all__ = ["TITLES", "paper_tables"]

TITLES = {
    "coverage": "Tables II-III: coverage (eq. 6, %) per fault kind and level",
    "verifiable": "Table IV: verifiable coverage (eq. 7, %) per fault kind and level",
    "layers": "Table V: coverage (%) with the faults on a random fraction of the layers",
    "offsets": "Table VI: coverage (%) against the threshold offset",
    "harm": "Harmful or not: coverage, false alarms on chips that did not drop and AUC, "
    "beside a real image (point estimate)",
}
"""Title of each table `paper_tables` can return, by name."""

_HARM_COLUMNS = {
    "level": "spec",
    "accuracy_mean": "mean acc.",
    "dropped": "dropped %",
    "coverage": "coverage",
    "coverage_dropped": "cov. dropped",
    "false_alarm_nodrop": "FA no-drop",
    "auc": "AUC",
    "coverage_point": "point cov.",
    "false_alarm_nodrop_point": "point FA no-drop",
    "auc_point": "point AUC",
}


def paper_tables(rows: Sequence[dict[str, object]], rule: str) -> dict[str, pd.DataFrame]:
    """The tables of `TITLES` that `rows` can fill, in that order (rates in percent).

    Parameters
    ----------
    rows : sequence of dict
        Rows of `cimtest btv evaluate` with the keys ``fault``, ``level``, ``level_index``,
        ``base_level``, ``layers`` (None = every layer), ``rule`` and the metrics of
        `cimtest.methods.btv.summarise`.
    rule : str
        The threshold rule of the coverage tables, e.g. ``"offset=0"``.

    Returns
    -------
    dict of str to pandas.DataFrame
        ``coverage`` and ``verifiable`` (index: fault kind, columns: level number 1..n),
        ``layers`` (index: fault kind and level number, columns: ``all`` and each
        fraction), ``offsets`` (same index, columns: each offset), ``harm`` (same index).
        A table is left out when no row has its metric.
    """
    frame = pd.DataFrame(list(rows))
    if frame.empty:
        return {}
    frame = frame.assign(layers=frame["layers"].astype(object).where(frame["layers"].notna(),
                                                                     "all"))
    whole = frame[(frame["layers"] == "all")]
    base = whole[whole["rule"] == rule]
    tables: dict[str, pd.DataFrame] = {}
    for name, metric in (("coverage", "coverage"), ("verifiable", "verifiable_coverage")):
        if base[metric].notna().any():
            tables[name] = _percent(base.pivot_table(
                index="fault", columns="level_index", values=metric, sort=False,
                dropna=False))
    layered = frame[frame["rule"] == rule]
    if (layered["layers"] != "all").any():
        layered = layered.assign(layers=layered["layers"].map(_fraction_label))
        tables["layers"] = _percent(layered.pivot_table(
            index=["fault", "level_index"], columns="layers", values="coverage",
            sort=False))
    offsets = whole[whole["rule"].str.startswith("offset=")]
    if offsets["rule"].nunique() > 1:
        offsets = offsets.assign(offset=offsets["rule"].str.removeprefix("offset="))
        tables["offsets"] = _percent(offsets.pivot_table(
            index=["fault", "level_index"], columns="offset", values="coverage", sort=False))
    if base["auc"].notna().any():
        harm = base.set_index(["fault", "level_index"])
        harm = harm[[c for c in _HARM_COLUMNS if c in harm]]
        rates = [c for c in harm.columns if c not in ("level", "accuracy_mean")
                 and not c.startswith("auc")]
        harm = harm.astype({c: float for c in harm.columns if c != "level"})
        harm.index.names = ["fault", "level"]
        harm[rates] = harm[rates] * 100
        tables["harm"] = harm.rename(columns=_HARM_COLUMNS)
    return tables


def _percent(table: pd.DataFrame) -> pd.DataFrame:
    table = table.astype(float) * 100
    table.columns = [str(c) for c in table.columns]
    table.index.names = ["fault", "level"][: table.index.nlevels]
    return table


def _fraction_label(layers: object) -> str:
    return "all" if layers == "all" else f"{100 * float(layers):g}%"
