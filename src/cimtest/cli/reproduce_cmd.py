"""`cimtest reproduce EXPERIMENT|all`: rerun the documented experiments and rewrite the
measured tables of their documents in ``docs/``.

Each experiment (`cimtest.report.experiments`) is the list of `cimtest ... --json` commands its
document shows, run in order as subprocesses in a work folder (later commands take levels
from earlier ones); their JSON turns into markdown tables that replace the text between the
document's ``<!-- reproduce:NAME -->`` and ``<!-- /reproduce:NAME -->`` markers, and its
figures are copied into ``docs/img``; the block ``NAME-commands`` lists the commands run,
in the work folder (paths relative to it). The prose around the markers is not touched.
Everything is seeded, so the same machine and torch build give the same tables.

With ``--workdir DIR`` the work folder is kept: each step's JSON is saved as
``DIR/steps/NAME.json`` with the command that made it, and a step whose saved command is
the same is not run again, so a killed experiment resumes at the step it stopped in.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import typer

from cimtest._atomic import atomic_file
from cimtest.cli.common import emit_json, handle_errors, note, stdout
from cimtest.exceptions import ArtifactError, CimtestError, ConfigError
from cimtest.report.experiments import EXPERIMENTS, Experiment, Results

__all__ = ["Experiment", "replace_block", "reproduce", "run_experiment", "write_blocks"]


def run_experiment(experiment: Experiment, workdir: Path) -> tuple[Results, list[str]]:
    """Run the steps of `experiment` in `workdir`; return every step's JSON by name and the
    commands, as a shell would show them.

    A step whose ``workdir/steps/NAME.json`` holds the same command is read back, not run.
    """
    results: Results = {}
    commands = []
    saved = workdir / "steps"
    saved.mkdir(parents=True, exist_ok=True)
    for name, argv in experiment.steps:
        args = [str(a) for a in argv(results, workdir)]
        commands.append("cimtest " + " ".join(shlex.quote(a.replace(f"{workdir}/", ""))
                                              for a in args) + " --json")
        record = saved / f"{name}.json"
        if record.is_file():
            previous = json.loads(record.read_text())
            if previous.get("argv") == args:
                note(f"reproduce: {name} done before, read back")
                results[name] = previous["result"]
                continue
        note(f"reproduce: cimtest {' '.join(args)}")
        done = subprocess.run([sys.executable, "-m", "cimtest", "-q", *args, "--json"],
                              cwd=workdir, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise CimtestError(f"step '{name}' failed: {done.stderr.strip().splitlines()[-1:]}")
        results[name] = json.loads(done.stdout)
        with atomic_file(record) as tmp:
            tmp.write_text(json.dumps({"argv": args, "result": results[name]}))
    return results, commands


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


@handle_errors
def reproduce(
    target: str = typer.Argument(..., help=", ".join(EXPERIMENTS) + " or all."),
    docs: str = typer.Option("docs", "--docs", help="Folder of the documents to update."),
    workdir: str = typer.Option(None, "--workdir", help="Keep the work in this folder (one "
                                "per experiment inside it) and resume from it."),
    json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> None:
    """Rerun the documented experiments and rewrite their tables in docs/."""
    names = list(EXPERIMENTS) if target == "all" else [target]
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        raise ConfigError(f"reproduce takes {', '.join(EXPERIMENTS)} or all; got '{target}'")
    folder = Path(docs)
    for name in names:
        _check_blocks(name, folder / EXPERIMENTS[name].doc)
    written = {}
    for name in names:
        experiment = EXPERIMENTS[name]
        if workdir is None:
            with tempfile.TemporaryDirectory(prefix=f"cimtest-reproduce-{name}-") as scratch:
                results, commands = run_experiment(experiment, Path(scratch))
                _copy_figures(experiment, Path(scratch), folder)
        else:
            work = Path(workdir).resolve() / name
            results, commands = run_experiment(experiment, work)
            _copy_figures(experiment, work, folder)
        path = folder / experiment.doc
        blocks = experiment.render(results)
        blocks[f"{name}-commands"] = "```sh\n" + "\n".join(commands) + "\n```"
        write_blocks(path, blocks)
        written[name] = {"doc": str(path), "blocks": sorted(blocks), "results": results}
    if json:
        emit_json(written)
        return
    for name, info in written.items():
        stdout.print(f"{name}: rewrote {', '.join(info['blocks'])} in {info['doc']}")


def _check_blocks(name: str, path: Path) -> None:
    """Fail before any work if the document of experiment `name` lacks one of its blocks."""
    if not path.is_file():
        raise ArtifactError(f"'{path}' does not exist")
    text = path.read_text()
    for block in (*EXPERIMENTS[name].blocks, f"{name}-commands"):
        if f"<!-- reproduce:{block} -->" not in text or f"<!-- /reproduce:{block} -->" not in text:
            raise ArtifactError(f"'{path}' has no '<!-- reproduce:{block} -->' ... "
                                f"'<!-- /reproduce:{block} -->' block for experiment '{name}'")


def _copy_figures(experiment: Experiment, workdir: Path, docs: Path) -> None:
    for source, target in experiment.figures:
        destination = docs / target
        destination.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(destination) as tmp:
            tmp.write_bytes((workdir / source).read_bytes())
