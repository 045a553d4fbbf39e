"""Real QGIS, offscreen: one QgsApplication for the session, Processing, our provider."""

from __future__ import annotations

import pytest
from qgis_support import ANALYST, COLLECTOR, OWNER, make_raster, run, start_qgis


@pytest.fixture(scope="session", autouse=True)
def qgis_app():
    return start_qgis()


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def raster(data_dir):
    return make_raster(data_dir / "scene_32611.tif")


@pytest.fixture(scope="session")
def raster_nocrs(data_dir):
    return make_raster(data_dir / "scene_nocrs.tif", epsg=None)


@pytest.fixture
def make_project(tmp_path, raster):
    """Factory: a project owned by OWNER with ANALYST and COLLECTOR, optionally a grid."""
    counter = iter(range(1000))

    def make(tool="CLASSIFY_PIXELS", geometry="POLYGON", grid: float | None = 100.0, name=None):
        path = tmp_path / f"project{next(counter)}.gpkg"
        run(
            "createproject",
            NAME=name or f"Test {tool.lower()}",
            INPUT_RASTER=raster,
            INFERENCE_TOOL=tool,
            CLASSES="1:building:#ff0000,2:road:#0000ff",
            SAMPLE_GEOMETRY=geometry,
            OUTPUT=str(path),
            USER=OWNER,
        )
        run("addmember", PROJECT=str(path), MEMBER=ANALYST, ROLE="analyst", USER=OWNER)
        run("addmember", PROJECT=str(path), MEMBER=COLLECTOR, ROLE="collector", USER=OWNER)
        if grid:
            run("createworkunits", PROJECT=str(path), CELL_SIZE=grid, USER=OWNER)
        return str(path)

    return make
