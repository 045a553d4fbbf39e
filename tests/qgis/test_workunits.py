"""dlstudio:createworkunits: grids, and polygon layers in other CRSs, invalid or multi-part."""

from __future__ import annotations

import pytest
from osgeo import ogr
from qgis.core import QgsProcessingException
from qgis_support import (
    ANALYST,
    COLLECTOR,
    ORIGIN,
    OWNER,
    Capture,
    digest,
    rect_wkt,
    run,
    unit_ids_by_name,
    wgs84_polygon_wkt,
    write_vector,
)

from dlstudio_qgis.core import Project

X0, Y1 = ORIGIN
Y0 = Y1 - 200


def units(path):
    return Project.open(path, OWNER).work_units()


def test_grid_in_map_units(make_project):
    path = make_project(grid=None)
    assert run("createworkunits", PROJECT=path, CELL_SIZE=100, USER=ANALYST) == {"COUNT": 4}
    got = {u.name: u.geometry.bounds() for u in units(path)}
    assert got["R1C1"] == pytest.approx((X0, Y1 - 100, X0 + 100, Y1))
    assert got["R2C2"] == pytest.approx((X0 + 100, Y0, X0 + 200, Y0 + 100))
    assert all(u.status.value == "queued" for u in units(path))


def test_grid_in_pixels_and_partial_cells(make_project):
    path = make_project(grid=None)
    r = run("createworkunits", PROJECT=path, CELL_SIZE=50, CELL_UNITS="PIXELS", USER=OWNER)
    assert r == {"COUNT": 16}
    r = run("createworkunits", PROJECT=path, CELL_SIZE=150, USER=OWNER)
    assert r == {"COUNT": 4}  # the last row and column are clipped to the imagery
    small = {u.name: u.geometry.bounds() for u in units(path)}["R2C2"]
    assert small == pytest.approx((X0 + 150, Y0, X0 + 200, Y0 + 50))


def test_exactly_one_of_cell_size_or_polygons(make_project, tmp_path):
    path = make_project(grid=None)
    layer = write_vector(
        tmp_path / "wu.gpkg", [(rect_wkt(X0, Y0, X0 + 50, Y0 + 50), {})], 32611, ogr.wkbPolygon
    )
    with pytest.raises(QgsProcessingException, match="exactly one of CELL_SIZE"):
        run("createworkunits", PROJECT=path, USER=OWNER)
    with pytest.raises(QgsProcessingException, match="exactly one of CELL_SIZE"):
        run("createworkunits", PROJECT=path, CELL_SIZE=10, POLYGONS=layer, USER=OWNER)
    with pytest.raises(QgsProcessingException, match="positive"):
        run("createworkunits", PROJECT=path, CELL_SIZE=0, USER=OWNER)


def test_collector_may_not_create_work_units(make_project):
    path = make_project(grid=None)
    before = digest(path)
    with pytest.raises(QgsProcessingException) as err:
        run("createworkunits", PROJECT=path, CELL_SIZE=100, USER=COLLECTOR)
    assert "is collector" in str(err.value) and "owner or analyst" in str(err.value)
    assert digest(path) == before
    assert [u.name for u in units(path)] == ["Whole extent"]


def test_polygons_reprojected_repaired_exploded_and_clipped(make_project, tmp_path):
    path = make_project(grid=None)
    west = [(X0, Y0), (X0 + 100, Y0), (X0 + 100, Y1), (X0, Y1)]  # the western half
    bowtie = (  # crosses itself at (X0+150, Y0+150): repaired into two triangles
        f"POLYGON(({X0 + 100} {Y0 + 100},{X0 + 200} {Y0 + 200},{X0 + 200} {Y0 + 100},"
        f"{X0 + 100} {Y0 + 200},{X0 + 100} {Y0 + 100}))"
    )
    multi = (  # two parts; the second sticks out of the imagery and is clipped
        f"MULTIPOLYGON((({X0 + 100} {Y0},{X0 + 150} {Y0},{X0 + 150} {Y0 + 50},{X0 + 100} "
        f"{Y0 + 50},{X0 + 100} {Y0})),(({X0 + 160} {Y0 - 50},{X0 + 250} {Y0 - 50},"
        f"{X0 + 250} {Y0 + 50},{X0 + 160} {Y0 + 50},{X0 + 160} {Y0 - 50})))"
    )
    far = rect_wkt(X0 + 5000, Y0, X0 + 5100, Y0 + 100)
    # the western half comes in EPSG:4326; the rest in UTM in a second layer
    wgs = write_vector(
        tmp_path / "west.geojson", [(wgs84_polygon_wkt(west), {})], 4326, ogr.wkbPolygon
    )
    feedback = Capture()
    r = run("createworkunits", feedback, PROJECT=path, POLYGONS=wgs, USER=OWNER)
    assert r == {"COUNT": 1}
    (unit,) = units(path)
    assert unit.geometry.bounds() == pytest.approx((X0, Y0, X0 + 100, Y1), abs=0.01)

    utm = write_vector(
        tmp_path / "east.gpkg",
        [(bowtie, {}), (multi, {}), (far, {})],
        32611,
        ogr.wkbUnknown,
        fields=(),
    )
    feedback = Capture()
    r = run("createworkunits", feedback, PROJECT=path, POLYGONS=utm, USER=OWNER)
    assert r == {"COUNT": 4}
    got = sorted(u.geometry.area() for u in units(path))
    assert got == pytest.approx([2000, 2500, 2500, 2500])
    assert "Repaired 1 invalid polygon" in feedback.text
    assert "Skipped 1 feature outside the imagery" in feedback.text
    for u in units(path):
        x0, y0, x1, y1 = u.geometry.bounds()
        assert x0 >= X0 and y0 >= Y0 and x1 <= X0 + 200 and y1 <= Y1


def test_polygons_all_outside_are_refused(make_project, tmp_path):
    path = make_project(grid=100)
    before = unit_ids_by_name(path)
    # right coordinates, wrong CRS declared: they land far away
    layer = write_vector(
        tmp_path / "wrong.gpkg", [(rect_wkt(X0, Y0, X0 + 100, Y1), {})], 3857, ogr.wkbPolygon
    )
    with pytest.raises(QgsProcessingException, match="overlaps the project imagery"):
        run("createworkunits", PROJECT=path, POLYGONS=layer, USER=OWNER)
    assert unit_ids_by_name(path) == before


def test_work_units_cannot_be_redefined_after_collection(make_project, tmp_path):
    path = make_project(grid=100)
    samples = write_vector(
        tmp_path / "s.gpkg",
        [(rect_wkt(X0 + 10, Y1 - 20, X0 + 20, Y1 - 10), {"cls": "building"})],
        32611,
        ogr.wkbPolygon,
    )
    run("importsamples", PROJECT=path, INPUT=samples, CLASS_FIELD="cls", USER=COLLECTOR)
    with pytest.raises(QgsProcessingException, match="already has 1 samples"):
        run("createworkunits", PROJECT=path, CELL_SIZE=50, USER=OWNER)
