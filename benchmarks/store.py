"""Store and executor benchmark: every row a ratio of two timings measured side by side here.

    python benchmarks/store.py [--json] [--quick]

resnet20 (3x32x32, untrained: timing does not depend on the weights) under multiplicative
variation, 10,000 chips x 1 input (`--quick`: 1,000).

- ``store_overhead``: a campaign into an `SQLiteStore` over the same campaign into an
  `InMemoryStore`, minus 1 (target <= 0.05). Runs alternate; the best of each is kept.
- ``store_write_share``: the share of the SQLite campaign's time spent inside store calls,
  measured directly (insensitive to the machine's noise).
- ``localcluster_over_inprocess``: throughput of a 2-worker LocalCluster (one torch thread
  per worker) over this process (2 torch threads); the cluster is started and warmed up
  before timing (``cluster_start_s`` reports its start-up).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from cimtest import zoo
from cimtest.engine import Campaign, DaskExecutor, Population, SQLiteStore


class TimedStore(SQLiteStore):
    """An `SQLiteStore` that adds up the time spent writing."""

    seconds = 0.0

    def add_chunk(self, run, result):
        start = time.perf_counter()
        try:
            return super().add_chunk(run, result)
        finally:
            self.seconds += time.perf_counter() - start

    def start(self, record, *, new=False):
        start = time.perf_counter()
        try:
            return super().start(record, new=new)
        finally:
            self.seconds += time.perf_counter() - start


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    chips = 1_000 if args.quick else 10_000
    entry = zoo.get_entry("resnet20")
    population = Population(entry.build(), "mult:eta=0.05", seed=0, n=chips)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, *entry.input_shape, generator=gen)
    y = torch.zeros(1, dtype=torch.int64)

    memory_s, sqlite_s, shares = [], [], []
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(2):
            memory_s.append(timed(Campaign(population, x, y).run))
            store = TimedStore(Path(folder) / f"bench-{repeat}.db")
            sqlite_s.append(timed(Campaign(population, x, y, store=store).run))
            shares.append(store.seconds / sqlite_s[-1])
            store.close()

    with DaskExecutor("local:2") as executor:
        start_s = timed(lambda: executor.slots)
        warm = Population(entry.build(), "mult:eta=0.05", seed=1, n=32)
        Campaign(warm, x, y).run(executor=executor)
        dask_s = min(timed(lambda: Campaign(population, x, y).run(executor=executor))
                     for _ in range(2))

    result = {
        "chips": chips,
        "inprocess_memory_s": min(memory_s),
        "inprocess_sqlite_s": min(sqlite_s),
        "store_overhead": min(sqlite_s) / min(memory_s) - 1,
        "store_write_share": min(shares),
        "localcluster_s": dask_s,
        "cluster_start_s": start_s,
        "localcluster_over_inprocess": min(memory_s) / dask_s,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"resnet20, {chips:,} chips x 1 input, mult:eta=0.05")
    print(f"  in-process, in-memory store   {result['inprocess_memory_s']:8.2f} s")
    print(f"  in-process, SQLite store      {result['inprocess_sqlite_s']:8.2f} s   "
          f"overhead {100 * result['store_overhead']:+.1f} % "
          f"(time in store calls: {100 * result['store_write_share']:.2f} %)")
    print(f"  LocalCluster, 2 workers       {dask_s:8.2f} s   "
          f"{result['localcluster_over_inprocess']:.2f}x the in-process throughput "
          f"(cluster start {start_s:.1f} s, not counted)")


if __name__ == "__main__":
    main()
