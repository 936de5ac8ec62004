"""Dask executor: a 2-worker LocalCluster gives bit-identical results to this process."""

import pytest
import torch
from torch import nn

from cimtest.data import digits
from cimtest.engine import Campaign, DaskExecutor, Population, SQLiteStore
from cimtest.exceptions import ConfigError

pytest.importorskip("distributed")


@pytest.mark.timeout(180)
def test_local_cluster_matches_in_process_and_any_chunk_size(tmp_path):
    torch.manual_seed(2)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).eval()
    test = digits(size=8).test
    x, y = test.x[:40], test.y[:40]
    population = Population(model, "mult:eta=0.2+bitflip:p=0.001", seed=9, n=32)
    in_process = Campaign(population, x, y, keep_outputs=True)
    expected = in_process.run()
    small_chunks = Campaign(Population(model, "mult:eta=0.2+bitflip:p=0.001", seed=9, n=32,
                                       memory=1), x, y, keep_outputs=True)
    assert small_chunks.run().equals(expected)
    store = SQLiteStore(tmp_path / "x.db")
    with DaskExecutor("local:2") as executor:
        assert executor.slots == 2
        on_dask = Campaign(population, x, y, store=store, keep_outputs=True)
        frame = on_dask.run(executor=executor)
    assert frame.equals(expected)
    assert torch.equal(store.outputs(), in_process.store.outputs())
    assert len(store.get_chunks()) == 4  # cut finer so both workers get chips
    assert store.get_runs()[0].executor == "dask local:2"


@pytest.mark.timeout(120)
def test_threads_of_one_worker_do_not_share_a_model(tmp_path):
    """A forward swaps batched weights into the model: each thread needs its own copy."""
    from distributed import Client, LocalCluster

    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(8 * 8 * 8, 10)).eval()
    test = digits(size=8).test
    population = Population(model, "mult:eta=0.2", seed=4, n=96, memory=1)
    expected = Campaign(population, test.x[:30], test.y[:30]).run()
    threads = torch.get_num_threads()
    try:
        with LocalCluster(n_workers=1, threads_per_worker=3, processes=False,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            executor = DaskExecutor(client)
            assert executor.slots == 3
            frame = Campaign(population, test.x[:30], test.y[:30]).run(executor=executor)
            executor.close()
            assert client.status == "running"  # a given client is left open
    finally:
        torch.set_num_threads(threads)
    assert frame.equals(expected)


@pytest.mark.parametrize("text", ["locale", "local:0", "local:x", "cluster"])
def test_bad_cluster_specs_are_refused_before_any_work(text):
    with pytest.raises(ConfigError, match="--dask"):
        DaskExecutor(text)


def test_an_unreachable_scheduler_is_refused_at_once():
    """Nothing listens on port 1: refused when the executor is built, well within 5 s."""
    import time

    start = time.perf_counter()
    with pytest.raises(ConfigError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:1"):
        DaskExecutor("tcp://127.0.0.1:1")
    assert time.perf_counter() - start < 5
