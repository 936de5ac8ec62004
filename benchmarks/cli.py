"""CLI start-up benchmark: `cimtest --help` and two rejected bad fault specs, each timed in
fresh processes, against their targets (1 s, 0.5 s and 0.5 s on a quiet 2-core machine).

    python benchmarks/cli.py [--json] [--runs N]

Each command runs once untimed (to warm the file cache), then N times (default 7); a row is
the median wall time of the N runs, from start to exit of the `cimtest` script next to this
Python (as a user types it). The bad specs (`campaign resnet20-8 --fault mult:eat=0.1`, a
misspelt key, and `--fault bogus:x=1`, an unknown kind) must exit with code 2 and one line on
stderr; they are refused before torch is imported (`import torch` alone takes seconds). The
CPU model, the date and the load average at the start are reported beside the figures:
start-up time depends on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from machine import cpu_model

COMMANDS = {
    "help": (["--help"], 0),
    "bad_fault_spec": (["campaign", "resnet20-8", "--fault", "mult:eat=0.1"], 2),
    "unknown_fault_kind": (["campaign", "resnet20-8", "--fault", "bogus:x=1"], 2),
}
"""Measured commands by name: their arguments and the exit code they must end with."""

TARGETS_S = {"help": 1.0, "bad_fault_spec": 0.5, "unknown_fault_kind": 0.5}


def cimtest_command() -> list[str]:
    """The `cimtest` script of this environment, else ``python -m cimtest``."""
    script = Path(sys.executable).with_name("cimtest")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "cimtest"]


def timed_run(argv: list[str], exit_code: int) -> float:
    """Wall time of one run of `argv`; fails unless it exits with `exit_code` and, for an
    error, prints exactly one line on stderr."""
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != exit_code:
        raise SystemExit(f"{argv} exited with {done.returncode}, not {exit_code}: "
                         f"{done.stderr.strip()}")
    if exit_code == 2 and len(done.stderr.strip().splitlines()) != 1:
        raise SystemExit(f"{argv} printed more than one line on stderr: {done.stderr}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    base = cimtest_command()
    load = os.getloadavg()[0]
    details = {}
    for name, (argv, exit_code) in COMMANDS.items():
        timed_run(base + argv, exit_code)  # warm the file cache
        runs = [timed_run(base + argv, exit_code) for _ in range(args.runs)]
        details[name] = {"median_s": statistics.median(runs), "min_s": min(runs),
                         "max_s": max(runs), "runs_s": runs, "command": " ".join(argv)}
    result = {
        "help_s": details["help"]["median_s"],
        "bad_fault_spec_s": details["bad_fault_spec"]["median_s"],
        "unknown_fault_kind_s": details["unknown_fault_kind"]["median_s"],
        "targets_met": all(details[n]["median_s"] <= t for n, t in TARGETS_S.items()),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "date": datetime.date.today().isoformat(),
        "load_average_1min": load,
        "details": details,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{result['cpu']}, {result['cores']} cores, {result['date']}, load average "
          f"{load:.2f}; median of {args.runs} fresh processes")
    print(f"{'command':50s} {'median':>7s} {'range':>12s}  target")
    for name, target in TARGETS_S.items():
        row = details[name]
        print(f"{'cimtest ' + row['command']:50s} {row['median_s']:6.2f}s "
              f"{row['min_s']:5.2f}-{row['max_s']:.2f} s  <= {target:g} s")


if __name__ == "__main__":
    main()
