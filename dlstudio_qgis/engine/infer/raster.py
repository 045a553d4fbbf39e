"""Reading the raster for inference: the processing region, the chip grid and padded chips.

The raster is never held whole: chips are read one window at a time (the part of a chip
outside the raster is filled with the band means, so it normalises to zero). On a GPU a
reader thread prepares the next batches while the device runs the current one; on the CPU
the model already keeps every core busy, so the chips are read in turn (`read_ahead`).
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from ..protocol import InputError

PREFETCH = 3  # batches read ahead


@dataclass(frozen=True)
class Region:
    """Pixel window (col0, row0, width, height) of the raster to process."""

    col0: int
    row0: int
    width: int
    height: int


def open_raster(path: str):
    """The dataset, or InputError saying why it cannot be used."""
    import rasterio

    try:
        ds = rasterio.open(path)
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(f"Cannot read the raster '{path}': {exc}.") from None
    if ds.crs is None:
        ds.close()
        raise InputError(
            f"The raster '{path}' has no coordinate reference system; assign one (Raster > "
            "Projections > Assign Projection) and run again."
        )
    return ds


def region_of(ds, extent: list | None) -> Region:
    """The pixels of `ds` inside `extent` (raster CRS), or the whole raster."""
    if not extent:
        return Region(0, 0, ds.width, ds.height)
    from rasterio.windows import from_bounds

    xmin, ymin, xmax, ymax = (float(v) for v in extent)
    win = from_bounds(xmin, ymin, xmax, ymax, transform=ds.transform)
    c0 = max(0, math.floor(win.col_off + 1e-6))
    r0 = max(0, math.floor(win.row_off + 1e-6))
    c1 = min(ds.width, math.ceil(win.col_off + win.width - 1e-6))
    r1 = min(ds.height, math.ceil(win.row_off + win.height - 1e-6))
    if c1 <= c0 or r1 <= r0:
        b = ds.bounds
        raise InputError(
            f"The extent [{xmin:g}, {ymin:g}, {xmax:g}, {ymax:g}] misses the raster, which "
            f"covers [{b.left:g}, {b.bottom:g}, {b.right:g}, {b.top:g}] in its CRS. Choose an "
            "extent over the raster, or none for the whole raster."
        )
    return Region(c0, r0, c1 - c0, r1 - r0)


def padding_of(arguments: dict, chip: int) -> int:
    pad = arguments.get("padding")
    pad = chip // 4 if pad is None else int(pad)
    if 2 * pad >= chip:
        raise InputError(
            f"The padding ({pad} px) must be less than half the model's chip size ({chip} px); "
            f"use at most {(chip - 1) // 2}."
        )
    return pad


def grid(region: Region, chip: int, pad: int) -> tuple[list[int], list[int]]:
    """Core origins (cols, rows): cores of chip - 2 * pad pixels tile the region exactly."""
    step = chip - 2 * pad
    cols = list(range(region.col0, region.col0 + region.width, step))
    rows = list(range(region.row0, region.row0 + region.height, step))
    return cols, rows


class ChipReader:
    """Reads square chips of `size` with their validity masks, padded outside the raster."""

    def __init__(self, ds, bands: list[int], size: int, fill: np.ndarray) -> None:
        self.ds, self.bands, self.size = ds, bands, size
        self.fill = fill.astype(np.float32).reshape(-1, 1, 1)
        nodata = ds.nodatavals
        self.nodata = [nodata[b - 1] for b in bands]
        self.has_nodata = any(v is not None for v in self.nodata)
        from rasterio.enums import MaskFlags

        flags = ds.mask_flag_enums[bands[0] - 1]
        self.has_mask = not self.has_nodata and bool(
            {MaskFlags.per_dataset, MaskFlags.alpha} & set(flags)
        )

    def read(self, col: int, row: int) -> tuple[np.ndarray, np.ndarray]:
        """(bands, size, size) float32 and a (size, size) bool mask of valid pixels."""
        from rasterio.windows import Window

        s = self.size
        c0, r0 = max(col, 0), max(row, 0)
        c1, r1 = min(col + s, self.ds.width), min(row + s, self.ds.height)
        out = np.empty((len(self.bands), s, s), np.float32)
        out[:] = self.fill
        valid = np.zeros((s, s), bool)
        if c1 <= c0 or r1 <= r0:
            return out, valid
        win = Window(c0, r0, c1 - c0, r1 - r0)
        data = self.ds.read(self.bands, window=win)
        ys, xs = slice(r0 - row, r1 - row), slice(c0 - col, c1 - col)
        ok = np.ones(data.shape[1:], bool)
        if self.has_nodata:
            bad = np.ones(data.shape[1:], bool)
            for i, v in enumerate(self.nodata):
                if v is None:
                    bad &= False
                elif isinstance(v, float) and math.isnan(v):
                    bad &= np.isnan(data[i])
                else:
                    bad &= data[i] == v
            ok = ~bad
        elif self.has_mask:
            ok = self.ds.read_masks(self.bands[0], window=win) > 0
        block = data.astype(np.float32, copy=False)
        if not ok.all():
            block = np.where(ok[None], block, self.fill)
        out[:, ys, xs] = block
        valid[ys, xs] = ok
        return out, valid


@dataclass
class Batch:
    """Chips read together: their origins, pixels and validity masks."""

    origins: list[tuple[int, int]]  # (col, row) of each chip's top-left pixel
    pixels: np.ndarray  # (N, bands, size, size) float32, raw values
    valid: np.ndarray  # (N, size, size) bool
    tag: object = None  # what the producer attached (e.g. the chip row)


def batches(
    reader: ChipReader, origins: Iterable[tuple[int, int, object]], batch_size: int
) -> Iterator[Batch]:
    """Batches of chips at (col, row, tag) origins; a batch never mixes tags."""
    pending: list = []

    def flush():
        pix = np.stack([p for _, p, _ in pending])
        val = np.stack([v for _, _, v in pending])
        tag = pending[0][0][2]
        out = Batch([(c, r) for (c, r, _), _, _ in pending], pix, val, tag)
        pending.clear()
        return out

    for col, row, tag in origins:
        if pending and pending[0][0][2] != tag:
            yield flush()
        pixels, valid = reader.read(col, row)
        pending.append(((col, row, tag), pixels, valid))
        if len(pending) >= batch_size:
            yield flush()
    if pending:
        yield flush()


def read_ahead(items: Iterator, device) -> Iterator:
    """`items` read in a background thread on a GPU, in turn on the CPU.

    On the CPU torch's threads already use every core; a reader thread beside them only makes
    the cores take turns (and torch's threads wait for it), which measured slower than reading
    in turn (reading a chip costs about 0.1 ms against 30-75 ms for the model).
    """
    return prefetch(items) if getattr(device, "type", "cpu") != "cpu" else iter(items)


def prefetch(items: Iterator, depth: int = PREFETCH) -> Iterator:
    """`items` produced in a background thread, `depth` ahead (reading overlaps compute).

    An exception in the producer is raised in the consumer; the thread is a daemon and stops
    when the consumer stops taking.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce():
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(("item", item), timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(("end", done))
        except BaseException as exc:  # handed to the consumer
            q.put(("error", exc))

    thread = threading.Thread(target=produce, name="dls-reader", daemon=True)
    thread.start()
    try:
        while True:
            kind, item = q.get()
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()
