"""Fixtures for the export tests: small rasters written once per session."""

from __future__ import annotations

import pytest
from export_support import make_raster


@pytest.fixture(scope="session")
def rasters(tmp_path_factory) -> dict:
    """300 x 260 test rasters in EPSG:32611 (0.5 m pixels): name -> (path, array)."""
    folder = tmp_path_factory.mktemp("rasters")
    return {
        "rgb": make_raster(folder / "rgb.tif"),
        "u16": make_raster(folder / "u16.tif", bands=1, dtype="uint16", seed=1),
        "f32": make_raster(folder / "f32.tif", bands=1, dtype="float32", nodata=-9999.0, seed=2),
        "nocrs": make_raster(folder / "nocrs.tif", epsg=None, seed=3),
    }
