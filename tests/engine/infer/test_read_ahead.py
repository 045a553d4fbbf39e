"""Reading ahead: in a thread on a GPU (overlapping the device), in turn on the CPU."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from dlstudio_qgis.engine.infer.raster import PREFETCH, prefetch, read_ahead


def _produced_in(names: list[str], n: int = 5):
    for i in range(n):
        names.append(threading.current_thread().name)
        yield i


def test_cpu_reads_in_turn_in_the_callers_thread():
    names: list[str] = []
    assert list(read_ahead(_produced_in(names), torch.device("cpu"))) == [0, 1, 2, 3, 4]
    assert set(names) == {threading.current_thread().name}


def test_gpu_reads_ahead_in_a_reader_thread_in_order():
    names: list[str] = []
    assert list(read_ahead(_produced_in(names), torch.device("cuda"))) == [0, 1, 2, 3, 4]
    assert set(names) == {"dls-reader"}


def test_a_reading_error_reaches_the_consumer_after_what_was_read():
    def failing():
        yield 1
        yield 2
        raise ValueError("block 7 is corrupt")

    got = []
    with pytest.raises(ValueError, match="block 7 is corrupt"):
        for item in prefetch(failing()):
            got.append(item)
    assert got == [1, 2]


def test_the_reader_stops_when_the_consumer_stops():
    produced = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            yield i
            i += 1

    before = threading.active_count()
    items = prefetch(endless())
    assert next(items) == 0
    items.close()  # the consumer stops taking (a break, an error, a cancel)
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() == before
    assert len(produced) <= PREFETCH + 3  # it read a few ahead, not the whole raster
