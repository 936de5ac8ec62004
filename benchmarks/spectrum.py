"""Correlated-field spectrum: the axes' test against transforming every torus, side by side.

    python benchmarks/spectrum.py [--json] [--rows 4608] [--cols 512] [--lam 0.001]

Each way runs in a fresh process (the spectrum is cached per process) on one torch thread;
the rows are its seconds and peak memory (VmHWM) and their ratios. The default array is
VGG-16's largest layer at 8x8 inputs, one array per layer, at the presets' λ.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from machine import cpu_model

_SETUP = ("import time, torch; torch.set_num_threads(1); "
          "from cimtest.faults import field; ")
_AXES = "start = time.perf_counter(); field._sqrt_spectrum({r}, {c}, {lam}); "
_FULL = ("field._axes_indefinite = lambda *args: False; "  # every torus gets its 2-D FFT
         "start = time.perf_counter(); field._sqrt_spectrum({r}, {c}, {lam}); ")
_REPORT = ("print(time.perf_counter() - start, [l.split()[1] for l in open('/proc/self/status') "
           "if l.startswith('VmHWM')][0])")


def run(body: str) -> tuple[float, float]:
    """Seconds and peak GB of `body` in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", _SETUP + body + _REPORT], capture_output=True,
                         text=True, check=True)
    seconds, kib = out.stdout.split()
    return float(seconds), int(kib) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--rows", type=int, default=4608)
    parser.add_argument("--cols", type=int, default=512)
    parser.add_argument("--lam", type=float, default=0.001)
    args = parser.parse_args()
    shape = {"r": args.rows, "c": args.cols, "lam": args.lam}
    axes_s, axes_gb = run(_AXES.format(**shape))
    full_s, full_gb = run(_FULL.format(**shape))
    result = {"cpu": cpu_model(), "array": [args.rows, args.cols], "lam": args.lam,
              "axes_s": axes_s, "axes_gb": axes_gb, "full_s": full_s, "full_gb": full_gb,
              "speedup": full_s / axes_s, "memory_ratio": full_gb / axes_gb}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{result['cpu']}: {args.rows}x{args.cols} array, lambda = {args.lam:g}")
    print(f"axes' test   {axes_s:7.1f} s  {axes_gb:5.2f} GB")
    print(f"full FFTs    {full_s:7.1f} s  {full_gb:5.2f} GB")
    print(f"speedup {result['speedup']:.1f}x, memory {result['memory_ratio']:.1f}x less")


if __name__ == "__main__":
    main()
