"""Bench benchmark: `cimtest decide` on a lot's recorded responses, against its 5 s target.

    python benchmarks/tester.py [--chips 100000] [--json]

Fits a small EGIS test (K = 4, the detector on 64 simulated chips) on an untrained MNIST-1D
CNN, exports it, writes CHIPS chips' responses as .npy, .csv and .parquet, and times the
whole command (`cimtest decide DIR --responses FILE -o verdicts.csv --stdf lot.stdf -q`) in a
fresh process for each file, the import of cimtest included: what a test engineer waits for.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

TARGET_S = 5.0


def _fit_and_export(folder: Path) -> Path:
    """An exported EGIS-style test (noise images + the EGIS detector: fast to fit)."""
    from cimtest.engine import Population
    from cimtest.methods import ChipOutcomes, NoiseImagesTest
    from cimtest.tester.exported import prepare_export, write_export
    from cimtest.zoo.sequence import ConvNet1D

    torch.manual_seed(0)
    model = ConvNet1D(1, 40, 10).eval()
    model.input_shape = (1, 40)
    chips = Population(model, "mult:eta=0.2", seed=0, n=64)
    x = torch.randn(256, 1, 40)
    accuracy = chips.accuracy(x, model(x).argmax(1)).numpy()
    cutoff = float(np.median(accuracy))
    outcomes = ChipOutcomes(accuracy > cutoff, cutoff, accuracy, "A50")
    test = NoiseImagesTest(k=4, input_range=(-2.0, 2.0), seed=0).fit(model, chips, outcomes)
    return write_export(prepare_export(test, model), folder / "test", pictures=False)


def _responses(exported: Path, chips: int, folder: Path) -> dict[str, Path]:
    """CHIPS chips' responses (the ideal chip's plus noise) in the three formats."""
    manifest = json.loads((exported / "manifest.json").read_text())
    ideal = np.asarray(manifest["ideal_responses"], dtype=np.float32)
    gen = np.random.default_rng(0)
    outputs = ideal[None] + 0.05 * gen.standard_normal((chips, *ideal.shape), np.float32)
    paths = {"npy": folder / "r.npy", "csv": folder / "r.csv", "parquet": folder / "r.parquet"}
    np.save(paths["npy"], outputs)
    n, k = outputs.shape[:2]
    table = pd.DataFrame(outputs.reshape(n * k, -1),
                         columns=[f"out_{m}" for m in range(outputs[0, 0].size)])
    table.insert(0, "input", np.tile(np.arange(k), n))
    table.insert(0, "chip", np.repeat([f"die-{i}" for i in range(n)], k))
    table.to_csv(paths["csv"], index=False)
    table.to_parquet(paths["parquet"], index=False)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chips", type=int, default=100_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    cimtest = Path(sys.executable).with_name("cimtest")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        exported = _fit_and_export(folder)
        for fmt, path in _responses(exported, args.chips, folder).items():
            start = time.perf_counter()
            done = subprocess.run([str(cimtest), "decide", str(exported), "--responses",
                                   str(path), "-o", str(folder / "v.csv"), "--stdf",
                                   str(folder / "lot.stdf"), "-q"], check=False,
                                  capture_output=True)
            seconds = time.perf_counter() - start
            if done.returncode not in (0, 1):
                sys.exit(f"decide failed: {done.stderr.decode()[-300:]}")
            rows.append({"format": fmt, "chips": args.chips, "seconds": round(seconds, 2),
                         "target_s": TARGET_S, "within": seconds <= TARGET_S})
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    for row in rows:
        print(f"decide, {row['chips']:,} chips from .{row['format']}: {row['seconds']:.2f} s "
              f"(target {TARGET_S:.0f} s: {'met' if row['within'] else 'missed'})")


if __name__ == "__main__":
    main()
