"""Writes test rasters with rasterio, in a subprocess: ``python raster_maker.py spec.json``.

The spec is a list of rasters: ``{"path", "array" (.npy file), "crs", "transform" (a, b, c,
d, e, f), "nodata", "block" (tile size or null for strips)}``, or ``{"path", "warp": source
path, "crs", "resolution"}`` for a nearest-neighbour reprojection of a written one. The
pytest process never imports rasterio (it may also import qgis; two GDALs do not mix).
"""

from __future__ import annotations

import json
import sys

import numpy as np
import rasterio
from affine import Affine
from rasterio.warp import Resampling, calculate_default_transform, reproject


def write(spec: dict) -> None:
    data = np.load(spec["array"])
    profile = {
        "driver": "GTiff", "width": data.shape[1], "height": data.shape[0], "count": 1,
        "dtype": str(data.dtype), "crs": spec.get("crs"),
        "transform": Affine(*spec["transform"]), "nodata": spec.get("nodata"),
    }  # fmt: skip
    if spec.get("block"):
        profile.update(tiled=True, blockxsize=spec["block"], blockysize=spec["block"])
    with rasterio.open(spec["path"], "w", **profile) as dst:
        dst.write(data, 1)


def warp(spec: dict) -> None:
    with rasterio.open(spec["warp"]) as src:
        transform, width, height = calculate_default_transform(
            src.crs, spec["crs"], src.width, src.height, *src.bounds,
            resolution=spec.get("resolution"),
        )  # fmt: skip
        out = np.zeros((height, width), dtype=src.dtypes[0])
        reproject(rasterio.band(src, 1), out, dst_transform=transform, dst_crs=spec["crs"],
                  resampling=Resampling.nearest, dst_nodata=0)  # fmt: skip
        profile = src.profile | {"crs": spec["crs"], "transform": transform, "width": width,
                                 "height": height, "nodata": 0}  # fmt: skip
        with rasterio.open(spec["path"], "w", **profile) as dst:
            dst.write(out, 1)


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as fh:
        for item in json.load(fh):
            warp(item) if "warp" in item else write(item)
