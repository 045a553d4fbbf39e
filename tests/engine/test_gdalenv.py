"""The worker's GDAL block cache is the size it names (rasterio counts an integer in bytes)."""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from dlstudio_qgis.engine.gdalenv import MB, block_cache_env
from dlstudio_qgis.engine.infer import command as infer_command
from dlstudio_qgis.engine.infer import raster as infer_raster


def gdal_cache_max() -> int:
    """GDALGetCacheMax64() of the GDAL that rasterio loaded (the library is already mapped)."""
    libs = Path(rasterio.__file__).parent.parent / "rasterio.libs"
    found = sorted(libs.glob("libgdal*.so*"))
    assert found, f"rasterio's bundled GDAL not found in {libs}"
    lib = ctypes.CDLL(str(found[0]))
    lib.GDALGetCacheMax64.restype = ctypes.c_int64
    return lib.GDALGetCacheMax64()


def test_block_cache_env_sets_megabytes_not_bytes():
    with block_cache_env(96):
        assert gdal_cache_max() == 96 * MB
    with block_cache_env(7, CHECK_DISK_FREE_SPACE=False) as env:
        assert gdal_cache_max() == 7 * MB
        assert env.options["CHECK_DISK_FREE_SPACE"] is False


def test_a_bare_integer_would_have_been_bytes():
    """Why block_cache_env exists: if rasterio ever reads the integer as megabytes, this
    fails and the helper can go."""
    with rasterio.Env(GDAL_CACHEMAX=96):
        assert gdal_cache_max() == 96


class _Opened(Exception):
    pass


def test_inference_reads_under_the_bounded_cache(tmp_path, monkeypatch):
    tif = tmp_path / "r.tif"
    profile = {"driver": "GTiff", "width": 8, "height": 8, "count": 1, "dtype": "uint8",
               "crs": "EPSG:32633", "transform": from_origin(0, 8, 1, 1)}  # fmt: skip
    with rasterio.open(tif, "w", **profile) as ds:
        ds.write(np.zeros((1, 8, 8), np.uint8))
    seen = []

    def opened(path):
        seen.append(gdal_cache_max())
        raise _Opened

    monkeypatch.setattr(infer_raster, "open_raster", opened)
    job = {"tool": "classify_pixels", "raster": str(tif), "model": str(tif),
           "output": str(tmp_path / "out.tif")}  # fmt: skip
    with pytest.raises(_Opened):
        infer_command.run(job, reporter=None)
    assert seen == [infer_command.GDAL_CACHE_MB * MB]
