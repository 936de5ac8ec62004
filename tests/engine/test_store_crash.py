"""Crash safety: a campaign SIGKILLed at random points and resumed ends bit-identical."""

import importlib.util
import itertools
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from cimtest.engine import Campaign, SQLiteStore
from cimtest.exceptions import StoreError

CHILD = '''
"""A campaign run through the public API: 2,000 chips of a small MLP, chunks of 8 chips."""
import sys

import torch
from torch import nn

from cimtest.data import digits
from cimtest.engine import Campaign, Population, SQLiteStore


def build(memory):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).eval()
    test = digits(size=8).test
    population = Population(model, "mult:eta=0.2", seed=42, n=2000, memory=memory)
    return population, test.x[:64], test.y[:64]


if __name__ == "__main__":
    population, x, y = build(memory=1)
    Campaign(population, x, y, store=SQLiteStore(sys.argv[1]), keep_outputs=True).run()
'''

KILLS = 5
MAX_STEP = 300
"""Chips a child may commit before it is killed; 5 x 300 < 2,000 so every kill is mid-run."""


def chips_done(path) -> int:
    try:
        with SQLiteStore(path, read_only=True) as store:
            return store.status().chips_done
    except StoreError:  # not created yet
        return 0


def start_child(script, path):
    return subprocess.Popen([sys.executable, str(script), str(path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.timeout(240)
def test_sigkill_at_random_points_then_resume_is_bit_identical(tmp_path):
    script = tmp_path / "crash_child.py"
    script.write_text(CHILD)
    path = tmp_path / "runs" / "crash.db"
    rng = random.Random(20240605)
    kills = 0
    while kills < KILLS:
        target = chips_done(path) + rng.randint(1, MAX_STEP)
        child = start_child(script, path)
        deadline = time.monotonic() + 120
        while child.poll() is None and chips_done(path) < target:
            assert time.monotonic() < deadline, "the child campaign makes no progress"
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.03))  # land anywhere in a chunk: compute, file, commit
        assert child.poll() is None, child.stderr.read().decode()
        child.send_signal(signal.SIGKILL)
        child.wait()
        kills += 1
    assert 0 < chips_done(path) < 2000
    final = start_child(script, path)
    assert final.wait(timeout=120) == 0, final.stderr.read().decode()

    spec = importlib.util.spec_from_file_location("crash_child", script)
    child_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(child_module)
    reference = Campaign(*child_module.build(memory="1GB"), keep_outputs=True)
    expected = reference.run()

    store = SQLiteStore(path, read_only=True)
    frame = store.frame()
    assert frame.equals(expected)  # bit-identical accuracies, every chip once
    assert torch.equal(store.outputs(), reference.store.outputs())
    chunks = store.get_chunks()
    np.testing.assert_array_equal(store.get_chips().chip, np.arange(2000))
    assert sum(c.n_chips for c in chunks) == 2000
    assert all(a.stop == b.start for a, b in itertools.pairwise(chunks))
    assert len(store.get_runs()) == KILLS + 1
    on_disk = sorted(p.name for p in store.side_dir.iterdir())
    assert on_disk == sorted(c.side_file for c in chunks)  # no orphan, no partial file
    assert not list(path.parent.glob(".crash.db.*"))
