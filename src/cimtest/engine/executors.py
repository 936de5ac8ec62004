"""Executors: where a campaign's chunks are evaluated, in this process or on a Dask cluster.

An executor maps a `ChunkTask` over chip ranges and yields one `ChunkResult` per range, in
any order; the campaign merges them by chip index and is the only one writing the store.
Chip ``i`` depends only on (seed, i), so every executor gives bit-identical results.
"""

from __future__ import annotations

import itertools
import logging
import os
import pickle
import socket
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Self
from urllib.parse import urlsplit

import torch

from cimtest.engine.population import Population, chip_accuracies
from cimtest.engine.store import ChunkResult
from cimtest.exceptions import ConfigError
from cimtest.tasks import ScoredTask

__all__ = ["ChunkTask", "DaskExecutor", "Executor", "InProcessExecutor"]

_logger = logging.getLogger(__name__)

Range = tuple[int, int]

CONNECT_TIMEOUT = 5.0
"""Seconds to reach a Dask scheduler: the TCP probe made when a `DaskExecutor` is built
(nothing listening is refused at once; an unreachable host takes this long), then the
client's handshake."""


@dataclass(frozen=True, eq=False)
class ChunkTask:
    """Everything a worker needs to evaluate chips: the population and the labelled inputs.

    Attributes
    ----------
    population : Population
        The chips (model, non-idealities, seed, n).
    x : torch.Tensor
        float32 test inputs (n_inputs, *input_shape).
    y : torch.Tensor
        int64 labels: (n_inputs,) for classification, (n_inputs, H, W) for segmentation.
    task : str
        ``"classification"`` or ``"segmentation"`` (see `chip_accuracies`).
    keep_outputs : bool
        Return each chip's outputs too, not only its accuracy.
    """

    population: Population
    x: torch.Tensor
    y: torch.Tensor
    task: ScoredTask
    keep_outputs: bool = False
    _scratch: list[torch.Tensor] = field(default_factory=list, init=False, repr=False)
    """The chunk weight buffer, reused from chunk to chunk (empty until the first call)."""

    def __call__(self, start: int, stop: int) -> ChunkResult:
        """Evaluate chips ``start .. stop - 1`` on every input."""
        started = time.time()
        if not self._scratch or self._scratch[0].shape[0] < stop - start:
            numel = self.population.mapped.reference.numel()
            self._scratch[:] = [torch.empty(stop - start, numel,
                                            device=self.population.device)]
        outputs = self.population.forward(range(start, stop), self.x, scratch=self._scratch[0])
        accuracy = chip_accuracies(outputs, self.y, self.task).cpu().numpy()
        return ChunkResult(start, stop, accuracy, started, time.time(),
                           outputs if self.keep_outputs else None)


class Executor(ABC):
    """Evaluates chunk tasks over chip ranges; used as a context manager to release workers."""

    name: str = "executor"
    """Short description stored with each run, e.g. ``"in-process"``."""

    @property
    def slots(self) -> int:
        """Chunks evaluated at the same time (1 in this process); campaigns cut work finer
        for more slots so that every worker gets some."""
        return 1

    @abstractmethod
    def map(self, task: ChunkTask, ranges: Sequence[Range]) -> Iterator[ChunkResult]:
        """Yield the result of `task` on each chip range, in completion order."""

    def close(self) -> None:
        """Release workers (a no-op in this process)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class InProcessExecutor(Executor):
    """Evaluate chunks one after the other in this process (the default)."""

    name = "in-process"

    def map(self, task: ChunkTask, ranges: Sequence[Range]) -> Iterator[ChunkResult]:
        """Yield results in range order."""
        for start, stop in ranges:
            yield task(start, stop)


class DaskExecutor(Executor):
    """Evaluate chunks on a Dask distributed cluster; results come back to this process.

    Parameters
    ----------
    cluster : str or distributed.Client
        ``"local"`` (a LocalCluster of one worker process per core), ``"local:WORKERS"``,
        a scheduler address such as ``"tcp://HOST:8786"`` (a cluster started by hand or by
        dask-jobqueue), or a connected `distributed.Client` (left open on `close`). A
        ``tcp://`` or ``tls://`` address is probed at once (a plain TCP connection, at most
        `CONNECT_TIMEOUT` s), so an unreachable scheduler fails before any work.

    Notes
    -----
    The task (population and inputs) is pickled once here (cloudpickle, so a model class
    defined in a script travels too) and sent to every worker; each worker thread
    unpickles its own copy. Only cimtest's own objects travel this way, never a user's
    file. Workers must import cimtest (and the model's module, when it is importable
    here). Each worker thread runs one chunk at a time with one torch thread, so a
    worker's memory is its threads x (one copy of the model + one chunk's working set).
    """

    def __init__(self, cluster: Any = "local") -> None:
        self.cluster = cluster
        self._client: Any = None
        self._local: Any = None
        if isinstance(cluster, str):
            self.name = f"dask {cluster}"
            self._workers = _parse_cluster(cluster)
            if self._workers is None:
                _probe(cluster)
        else:
            self.name = "dask client"
            self._client = cluster

    @property
    def client(self) -> Any:
        """The `distributed.Client`, connecting (or starting the LocalCluster) on first use."""
        if self._client is None:
            self._client = self._connect()
        return self._client

    @property
    def slots(self) -> int:
        """Worker threads of the cluster now (at least 1)."""
        workers = self.client.scheduler_info()["workers"].values()
        return max(1, sum(w.get("nthreads", 1) for w in workers))

    def map(self, task: ChunkTask, ranges: Sequence[Range]) -> Iterator[ChunkResult]:
        """Send `task` to every worker once, then keep about two chunks per slot in flight.

        Bounding the chunks in flight bounds the results waiting in this process; the
        futures left are cancelled if the consumer stops early.
        """
        import cloudpickle
        from distributed import as_completed

        client = self.client
        try:
            payload = cloudpickle.dumps(task)
        except Exception as exc:  # pickling a user's model can fail in many ways
            raise ConfigError(f"cannot send the population to the Dask workers: {exc}") from exc
        shared = client.scatter(payload, broadcast=True, hash=False)
        token = uuid.uuid4().hex
        todo = iter(ranges)

        def submit(chips: Range) -> Any:
            return client.submit(_evaluate, shared, token, *chips, pure=False)

        live = {submit(r) for r in itertools.islice(todo, 2 * self.slots)}
        pending = as_completed(live)
        try:
            for future in pending:
                result = future.result()
                live.discard(future)
                following = next(todo, None)
                if following is not None:
                    another = submit(following)
                    live.add(another)
                    pending.add(another)
                yield result
        finally:
            pending.clear()
            client.cancel(list(live))
            shared.release()

    def close(self) -> None:
        """Close the client and the LocalCluster this executor started (not a given client)."""
        if self._local is not None:
            self._client.close()
            self._local.close()
            self._client = self._local = None
        elif isinstance(self.cluster, str) and self._client is not None:
            self._client.close()
            self._client = None

    def _connect(self) -> Any:
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:
            raise ConfigError("--dask needs dask[distributed]: pip install 'cimtest[dask]'"
                              ) from exc
        if self._workers is not None:
            _logger.info("starting a LocalCluster of %d workers", self._workers)
            self._local = LocalCluster(
                n_workers=self._workers, threads_per_worker=1, processes=True,
                dashboard_address=None,  # and its HTTP routes on a free port of localhost:
                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            )
            return Client(self._local)
        try:
            return Client(self.cluster, timeout=f"{CONNECT_TIMEOUT:g}s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise ConfigError(f"cannot reach the Dask scheduler at {self.cluster}: {exc}; "
                              "start one there (`dask scheduler`) or check --dask") from exc
        except Exception as exc:  # something answers, but not as a scheduler: any error type
            raise ConfigError(f"{self.cluster} answers but not as a Dask scheduler "
                              f"({type(exc).__name__}); check --dask") from exc


_WORKER = threading.local()
"""Per worker thread: the (token, task) it last unpickled."""


def _evaluate(payload: bytes, token: str, start: int, stop: int) -> ChunkResult:
    """Run on a worker: evaluate chips ``start .. stop - 1`` with one torch thread.

    The task travels as bytes and each worker thread unpickles its own copy once per
    campaign (`token`): a forward swaps batched weights into the model's modules, so one
    copy must never be shared by two threads, nor serialised while a forward runs.
    """
    torch.set_num_threads(1)
    if getattr(_WORKER, "token", None) != token:
        # The payload is the client's own cloudpickled task (never a user's file).
        _WORKER.token, _WORKER.task = token, pickle.loads(payload)
    return _WORKER.task(start, stop)


def _parse_cluster(text: str) -> int | None:
    """Workers of a ``local[:WORKERS]`` cluster, or None for a scheduler address."""
    if "://" in text:
        return None
    kind, _, workers = text.partition(":")
    if kind != "local":
        raise ConfigError(f"--dask must be local, local:WORKERS or a scheduler address such "
                          f"as tcp://HOST:8786; got {text!r}")
    if not workers:
        return os.cpu_count() or 1
    if not workers.isdigit() or int(workers) < 1:
        raise ConfigError(f"--dask local:WORKERS needs a positive number of workers; "
                          f"got {text!r}")
    return int(workers)


def _probe(address: str) -> None:
    """Raise `ConfigError` at once if nothing accepts a TCP connection at a ``tcp://`` or
    ``tls://`` scheduler address (other protocols are left to the client)."""
    parts = urlsplit(address)
    if parts.scheme not in ("tcp", "tls"):
        return
    try:
        host, port = parts.hostname, parts.port or 8786
    except ValueError as exc:  # a port that is not a number
        raise ConfigError(f"--dask: bad scheduler address {address!r} ({exc})") from None
    if not host:
        raise ConfigError(f"--dask: a scheduler address looks like tcp://HOST:8786; got "
                          f"{address!r}")
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        if isinstance(exc, TimeoutError):
            reason = f"no answer in {CONNECT_TIMEOUT:g} s"
        raise ConfigError(f"cannot reach the Dask scheduler at {address}: {reason}; start one "
                          "there (`dask scheduler`) or check --dask") from None
