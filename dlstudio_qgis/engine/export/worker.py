"""The pool's worker processes: each opens the raster once, then writes batches of tiles.

A task is a batch of consecutive tiles (so neighbouring windows share the block cache: GDAL's,
or the fast reader's, `tiffread.FastTiffReader`, which each process opens after the fork);
for each tile the window is read once, then every chip of the tile (the tile itself and its
rotations) is written with its labels. The result is small: counts and band statistics.
The pool starts before the samples are read, so its processes do not carry them.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from typing import Any

from .labels import LabelContext
from .plan import TilePlan
from .source import SourceInfo

GDAL_CACHE_MB = 64
_state: dict = {}


@dataclass(frozen=True)
class WorkerConfig:
    info: SourceInfo
    parent_pid: int
    fast_tiff: bool = False  # read tiles with tiffread.FastTiffReader (else GDAL)


@dataclass
class Batch:
    seq: int
    tiles: list[TilePlan]
    covered: int  # tiles looked at that this batch accounts for (kept and skipped), progress
    ctx: LabelContext | None = None  # where and how to write the chips


@dataclass
class BatchResult:
    seq: int
    chips: int
    moments: Any  # stats.ExactSums, a (bands, 5) numpy array of moments, or None
    pixels: Any  # per class value pixel counts (Classified_Tiles) or None


def _die_with_parent(parent_pid: int) -> None:
    """Linux: end this worker when the main process dies, even by SIGKILL."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # not Linux: the pool's own checks remain
        return
    if os.getppid() != parent_pid:
        os._exit(1)


def init(config: WorkerConfig) -> None:
    """Pool initializer: the main process handles Ctrl+C and SIGTERM; workers just stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _die_with_parent(config.parent_pid)
    import rasterio
    from rasterio.crs import CRS

    from ..gdalenv import block_cache_env
    from .chips import ChipWriter, open_fast_reader

    env = block_cache_env(GDAL_CACHE_MB, CHECK_DISK_FREE_SPACE=False)
    env.__enter__()  # for the life of the process
    crs = CRS.from_wkt(config.info.crs_wkt)
    info = config.info
    fast = open_fast_reader(info.path, info.bands, info.dtype)[0] if config.fast_tiff else None
    _state.update(
        config=config, env=env, ds=rasterio.open(info.path), crs=crs, fast=fast,
        writer=ChipWriter(crs, info.nodata, rgb=True),
    )  # fmt: skip


def ready() -> None:
    """A first task: submitting it starts the pool's processes."""


def run_batch(batch: Batch) -> BatchResult:
    import numpy as np
    from affine import Affine

    from .chips import band_moments, chip_pixels, read_window
    from .labels import write_labels
    from .stats import EXACT_DTYPES, ExactSums, band_sums, merge_moments

    config: WorkerConfig = _state["config"]
    info, ctx, ds, crs = config.info, batch.ctx, _state["ds"], _state["crs"]
    writer, fast = _state["writer"], _state["fast"]
    nodata = info.nodata
    fill = 0 if nodata is None else nodata
    src_transform = Affine(*info.transform)
    images = os.path.join(ctx.root, "images", "")
    exact = ExactSums(len(info.bands)) if info.dtype in EXACT_DTYPES else None
    moments = pixels = None
    chips = 0
    for tile in batch.tiles:
        data, valid = read_window(ds, info.bands, tile.window, fill, info.dtype, fast)
        box = (tile.col, tile.row, ctx.width, ctx.height)
        for chip in tile.chips:
            arr, chip_valid = chip_pixels(
                data, valid, tile.window, box, chip.to_raster, chip.angle, info.transform,
                crs, nodata,
            )  # fmt: skip
            transform = src_transform * Affine(*chip.to_raster)
            writer.write(f"{images}{chip.name}.{ctx.image_ext}", arr, transform)
            if exact is not None:
                exact.add(*band_sums(arr, chip_valid, nodata))
            else:
                moments = merge_moments(moments, band_moments(arr, chip_valid, nodata))
            counts = write_labels(chip, ctx, transform, crs)
            if counts is not None:
                pixels = counts if pixels is None else pixels + counts
            chips += 1
    if pixels is not None:
        pixels = np.asarray(pixels, dtype=np.int64)
    return BatchResult(batch.seq, chips, exact if exact is not None else moments, pixels)
