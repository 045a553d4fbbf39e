"""The pool's worker processes: each opens the raster once, then writes batches of tiles.

A task is a batch of consecutive tiles (so neighbouring windows share the GDAL block cache);
for each tile the window is read once, then every chip of the tile (the tile itself and its
rotations) is written with its labels. The result is small: counts and band moments.
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
    ctx: LabelContext
    parent_pid: int


@dataclass
class Batch:
    seq: int
    tiles: list[TilePlan]
    covered: int  # tiles looked at that this batch accounts for (kept and skipped), progress


@dataclass
class BatchResult:
    seq: int
    chips: int
    moments: Any  # (bands, 5) numpy array or None
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

    env = rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB, CHECK_DISK_FREE_SPACE=False)
    env.__enter__()  # for the life of the process
    _state.update(
        config=config, env=env, ds=rasterio.open(config.info.path),
        crs=CRS.from_wkt(config.info.crs_wkt),
    )  # fmt: skip


def run_batch(batch: Batch) -> BatchResult:
    import numpy as np
    from affine import Affine

    from .chips import band_moments, chip_pixels, read_window, write_raster
    from .labels import write_labels
    from .stats import merge_moments

    config: WorkerConfig = _state["config"]
    info, ctx, ds, crs = config.info, config.ctx, _state["ds"], _state["crs"]
    nodata = info.nodata
    fill = 0 if nodata is None else nodata
    src_transform = Affine(*info.transform)
    images = ctx.root / "images"
    moments = pixels = None
    chips = 0
    for tile in batch.tiles:
        data, valid = read_window(ds, info.bands, tile.window, fill)
        if str(data.dtype) != info.dtype:
            data = data.astype(info.dtype)
        box = (tile.col, tile.row, ctx.width, ctx.height)
        for chip in tile.chips:
            arr, chip_valid = chip_pixels(
                data, valid, tile.window, box, chip.to_raster, chip.angle, info.transform,
                crs, nodata,
            )  # fmt: skip
            transform = src_transform * Affine(*chip.to_raster)
            path = images / f"{chip.name}.{ctx.image_ext}"
            write_raster(path, arr, transform, crs, nodata, rgb=True)
            moments = merge_moments(moments, band_moments(arr, chip_valid, nodata))
            counts = write_labels(chip, ctx, transform, crs)
            if counts is not None:
                pixels = counts if pixels is None else pixels + counts
            chips += 1
    if pixels is not None:
        pixels = np.asarray(pixels, dtype=np.int64)
    return BatchResult(batch.seq, chips, moments, pixels)
