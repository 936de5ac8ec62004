"""`cimtest zoo list` and `cimtest zoo train`."""

from __future__ import annotations

import typer
from rich.table import Table

from cimtest.cli.common import emit_json, handle_errors, progress_bar, stdout

TEST_SIZES = {"digits": 540, "mnist": 1_500, "mnist1d": 150_000}
"""`cimtest.data.builtin.default_test_size` of each built-in set, recorded here: the data
package imports torch, which `zoo list` does not need (tests/zoo checks the two agree)."""

app = typer.Typer(help="The model zoo: the papers' architectures, trained on the built-in data sets.")


@app.command("list")
@handle_errors
def list_cmd(json: bool = typer.Option(False, "--json", help="Print one JSON document.")) -> None:
    """List zoo models: name, task, parameters, input shape, data set and its default test
    size, and whether trained."""
    # Reads recorded facts only: no model is built and torch is not imported.
    from cimtest import zoo

    rows = [
        {
            "name": e.name,
            "task": e.task,
            "params": e.params,
            "input_shape": list(e.input_shape),
            "dataset": e.dataset,
            "test_size": TEST_SIZES[e.dataset],
            "trained": zoo.is_trained(e.name),
        }
        for e in zoo.list_models()
    ]
    if json:
        emit_json(rows)
        return
    table = Table("name", "task", "params", "input shape", "data", "test size", "trained")
    for r in rows:
        shape = "x".join(map(str, r["input_shape"]))
        table.add_row(r["name"], r["task"], f"{r['params']:,}", shape, r["dataset"],
                      f"{r['test_size']:,}", "yes" if r["trained"] else "")
    stdout.print(table)


@app.command("train")
@handle_errors
def train_cmd(
    name: str = typer.Argument(..., help="Zoo model name, e.g. resnet20-8."),
    seed: int = typer.Option(0, help="Training seed (training is deterministic for a seed)."),
    json: bool = typer.Option(False, "--json", help="Print the training metadata as JSON."),
) -> None:
    """Train a zoo model on its built-in data set and cache its weights."""
    from cimtest import zoo

    zoo.get_entry(name)
    with progress_bar(f"training {name}", unit="epochs") as update:
        results = zoo.train_group(name, seed=seed, progress=lambda e, n, _: update(e, n))
    for trained in results.values():
        zoo.save_trained(trained)
    result = results[name]
    if json:
        emit_json(result.metadata)
        return
    meta = result.metadata
    stdout.print(f"{name}: {meta['metric']} = {meta['value']:.2f} in {meta['train_seconds']:.0f} s")
