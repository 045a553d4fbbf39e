"""Run batches on a process pool with a bounded number of tasks in flight.

The plan is a lazy iterator, so memory stays bounded whatever the raster size: at most
``2 * workers`` batches exist at once. The processes start (fork) when the pool is made, before
the samples are read. On any exception in the main process (a worker's error, or Cancelled
from SIGTERM / Ctrl+C) the pool is shut down and its processes are terminated at once.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from ..protocol import EngineError
from . import worker
from .worker import Batch, BatchResult, WorkerConfig


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _context():
    methods = multiprocessing.get_all_start_methods()
    # fork starts fast and shares the plan's modules; the main process holds no open dataset
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def _terminate(executor: ProcessPoolExecutor) -> None:
    processes = list((getattr(executor, "_processes", None) or {}).values())
    executor.shutdown(wait=False, cancel_futures=True)
    for p in processes:
        if p.is_alive():
            p.terminate()
    for p in processes:
        p.join(timeout=5)
        if p.is_alive():  # stuck (e.g. in uninterruptible I/O): no more waiting
            p.kill()
            p.join(timeout=5)


class WorkerPool:
    """The pool, started at once (before the main process reads the samples, so that forked
    processes do not carry them); ``with`` it: leaving on an exception terminates it."""

    def __init__(self, config: WorkerConfig, workers: int) -> None:
        self.workers = workers
        self.executor = ProcessPoolExecutor(
            max_workers=workers, mp_context=_context(), initializer=worker.init,
            initargs=(config,),
        )  # fmt: skip
        self.executor.submit(worker.ready)  # starts (forks) the processes now

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.executor.shutdown(wait=True)
        else:
            self.terminate()

    def terminate(self) -> None:
        """Stop the processes now (idempotent): before a failed run's files are removed, so
        no worker writes into the staging folder while it is being deleted."""
        _terminate(self.executor)

    def run(self, batches: Iterable[Batch], on_result: Callable[[BatchResult, int], None]) -> None:
        """Submit each batch, call on_result(result, covered) as they complete (any order)."""
        executor, limit = self.executor, 2 * self.workers
        pending: dict = {}

        def drain(block_until: int) -> None:
            while len(pending) > block_until:
                done, _ = wait(list(pending), timeout=1.0, return_when=FIRST_COMPLETED)
                for future in done:
                    covered = pending.pop(future)
                    on_result(future.result(), covered)

        try:
            for batch in batches:
                if not batch.tiles:  # only skipped tiles: nothing for the pool
                    on_result(BatchResult(batch.seq, 0, None, None), batch.covered)
                    continue
                pending[executor.submit(worker.run_batch, batch)] = batch.covered
                drain(limit - 1)
            drain(0)
        except BrokenProcessPool:  # leaving the `with` terminates the pool
            raise EngineError(
                "A worker process stopped unexpectedly while writing chips (out of memory, or "
                "the raster became unreadable). Lower WORKERS or the tile size and export "
                "again.",
                kind="worker",
            ) from None
