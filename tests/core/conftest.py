"""Fixtures for the core tests: real GeoPackage project files in a temporary folder."""

from __future__ import annotations

import sqlite3

import pytest

from dlstudio_qgis.core import Imagery, Project, parse_classes

# A real CRS definition, as QGIS would hand it over (UTM 11N, Las Vegas).
UTM11_WKT = (
    'PROJCS["WGS 84 / UTM zone 11N",GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",'
    '6378137,298.257223563]],PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]],'
    'PROJECTION["Transverse_Mercator"],PARAMETER["latitude_of_origin",0],'
    'PARAMETER["central_meridian",-117],PARAMETER["scale_factor",0.9996],'
    'PARAMETER["false_easting",500000],PARAMETER["false_northing",0],UNIT["metre",1],'
    'AUTHORITY["EPSG","32611"]]'
)
ORIGIN = (600000.0, 4000000.0)


def imagery(size_px: int = 400, pixel: float = 0.5) -> Imagery:
    x0, y0 = ORIGIN
    return Imagery(
        "/data/scene.tif", (x0, y0, x0 + size_px * pixel, y0 + size_px * pixel),
        size_px, size_px, UTM11_WKT, "EPSG:32611",
    )  # fmt: skip


def make_project(path, tool="DETECT_OBJECTS", owner="olivia", **kw) -> Project:
    return Project.create(
        path, name="Vegas buildings", inference_tool=tool,
        classes=parse_classes("1:building:#ff0000,2:road:#0000ff"), imagery=imagery(),
        user=owner, **kw,
    )  # fmt: skip


def box(cx: float, cy: float, half: float = 2.0):
    """A rectangle around a point given relative to the imagery's lower-left corner."""
    from dlstudio_qgis.core import rectangle

    x, y = ORIGIN[0] + cx, ORIGIN[1] + cy
    return rectangle(x - half, y - half, x + half, y + half)


def dump(path) -> list[str]:
    """The database content as SQL (WAL included), to prove a failed call changed nothing."""
    con = sqlite3.connect(path)
    try:
        return list(con.iterdump())
    finally:
        con.close()


@pytest.fixture
def project(tmp_path) -> Project:
    """Owner olivia, analyst adam, collectors carla and colin; a 2x2 grid of 100 m units."""
    p = make_project(tmp_path / "project.gpkg")
    p.add_member("adam", "analyst")
    p.add_member("carla", "collector")
    p.add_member("colin", "collector")
    p.create_grid_work_units(100)
    return p


def as_user(project: Project, user: str) -> Project:
    return Project.open(project.path, user)
