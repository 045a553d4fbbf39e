"""dlstudio:importsamples: reprojection, repair, multi-parts, rectangles, points, all or nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from osgeo import ogr
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsPointXY,
    QgsProcessingException,
    QgsProject,
)
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


def wkt_polygon(ring) -> str:
    return "POLYGON((" + ",".join(f"{x} {y}" for x, y in [*ring, ring[0]]) + "))"


def samples(path):
    return Project.open(path, OWNER).samples()


def layer(tmp_path, features, epsg=32611, geom=ogr.wkbPolygon, name="samples.gpkg", **kw):
    return write_vector(tmp_path / name, features, epsg, geom, **kw)


def test_import_from_wgs84_lands_in_the_right_work_unit(make_project, tmp_path):
    path = make_project()
    ids = unit_ids_by_name(path)
    # a 10 m square in the south-east unit (R2C2), and one in the north-west (R1C1)
    se = [(X0 + 150, Y0 + 40), (X0 + 160, Y0 + 40), (X0 + 160, Y0 + 50), (X0 + 150, Y0 + 50)]
    nw = [(X0 + 20, Y1 - 30), (X0 + 30, Y1 - 30), (X0 + 30, Y1 - 20), (X0 + 20, Y1 - 20)]
    src = layer(
        tmp_path,
        [(wgs84_polygon_wkt(se), {"cls": "road"}), (wgs84_polygon_wkt(nw), {"cls": "1"})],
        epsg=4326,
        name="wgs84.geojson",
    )
    feedback = Capture()
    r = run("importsamples", feedback, PROJECT=path, INPUT=src, CLASS_FIELD="cls", USER=COLLECTOR)
    assert r == {"IMPORTED": 2}
    got = samples(path)
    assert [(s.work_unit, s.class_value, s.collected_by) for s in got] == [
        (ids["R2C2"], 2, COLLECTOR),
        (ids["R1C1"], 1, COLLECTOR),
    ]
    assert got[0].geometry.centroid() == pytest.approx((X0 + 155, Y0 + 45), abs=0.01)
    assert got[0].geometry.area() == pytest.approx(100, rel=1e-3)
    units = {u.fid: u.status.value for u in Project.open(path, OWNER).work_units()}
    assert units[ids["R2C2"]] == "in_progress" and units[ids["R1C1"]] == "in_progress"
    assert units[ids["R1C2"]] == "queued"
    assert "Imported 2 samples" in feedback.text


def test_integer_class_field_and_source_recorded(make_project, tmp_path):
    path = make_project()
    src = layer(
        tmp_path,
        [(rect_wkt(X0 + 10, Y0 + 10, X0 + 20, Y0 + 20), {"value": 2})],
        fields=(("value", "int"),),
    )
    r = run("importsamples", PROJECT=path, INPUT=src, CLASS_FIELD="value", USER=ANALYST)
    assert r == {"IMPORTED": 1}
    assert samples(path)[0].class_value == 2


def test_bowtie_is_repaired_and_reported(make_project, tmp_path):
    path = make_project()
    bowtie = (
        f"POLYGON(({X0 + 10} {Y0 + 10},{X0 + 30} {Y0 + 30},{X0 + 30} {Y0 + 10},"
        f"{X0 + 10} {Y0 + 30},{X0 + 10} {Y0 + 10}))"
    )
    multi = (
        f"MULTIPOLYGON((({X0 + 110} {Y1 - 20},{X0 + 120} {Y1 - 20},{X0 + 120} {Y1 - 10},"
        f"{X0 + 110} {Y1 - 20})),(({X0 + 130} {Y1 - 20},{X0 + 140} {Y1 - 20},"
        f"{X0 + 140} {Y1 - 10},{X0 + 130} {Y1 - 20})))"
    )
    src = layer(
        tmp_path, [(bowtie, {"cls": "building"}), (multi, {"cls": "road"})], geom=ogr.wkbUnknown
    )
    feedback = Capture()
    r = run("importsamples", feedback, PROJECT=path, INPUT=src, CLASS_FIELD="cls", USER=COLLECTOR)
    # the bow-tie becomes two triangles, the multi-polygon two samples
    assert r == {"IMPORTED": 4}
    assert "Repaired 1 invalid polygon" in feedback.text
    areas = sorted(s.geometry.area() for s in samples(path))
    assert areas == pytest.approx([50, 50, 100, 100])


def test_detect_objects_samples_become_rectangles(make_project, tmp_path):
    path = make_project(tool="DETECT_OBJECTS")
    tri = wkt_polygon([(X0 + 10, Y0 + 10), (X0 + 30, Y0 + 10), (X0 + 20, Y0 + 30)])
    box = rect_wkt(X0 + 50, Y0 + 50, X0 + 60, Y0 + 60)
    src = layer(tmp_path, [(tri, {"cls": "building"}), (box, {"cls": "building"})])
    feedback = Capture()
    r = run("importsamples", feedback, PROJECT=path, INPUT=src, CLASS_FIELD="cls", USER=COLLECTOR)
    assert r == {"IMPORTED": 2}
    assert "Converted 1 polygon to bounding rectangles" in feedback.text
    got = samples(path)
    assert all(s.geometry.is_rectangle() for s in got)
    assert got[0].geometry.bounds() == pytest.approx((X0 + 10, Y0 + 10, X0 + 30, Y0 + 30))


def test_point_projects_need_points(make_project, tmp_path):
    path = make_project(tool="CLASSIFY_OBJECTS", geometry="POINT")
    polys = layer(tmp_path, [(rect_wkt(X0 + 1, Y0 + 1, X0 + 2, Y0 + 2), {"cls": "building"})])
    with pytest.raises(QgsProcessingException, match="collects point samples"):
        run("importsamples", PROJECT=path, INPUT=polys, CLASS_FIELD="cls", USER=COLLECTOR)
    pts = layer(
        tmp_path,
        [
            (f"POINT({X0 + 5} {Y0 + 5})", {"cls": "building"}),
            (f"MULTIPOINT(({X0 + 150} {Y1 - 5}),({X0 + 160} {Y1 - 6}))", {"cls": "road"}),
        ],
        geom=ogr.wkbUnknown,
        name="points.gpkg",
    )
    r = run("importsamples", PROJECT=path, INPUT=pts, CLASS_FIELD="cls", USER=COLLECTOR)
    assert r == {"IMPORTED": 3}
    assert all(s.geometry.is_point for s in samples(path))
    # and polygon projects refuse points
    path2 = make_project()
    with pytest.raises(QgsProcessingException, match="collects polygon samples"):
        run("importsamples", PROJECT=path2, INPUT=pts, CLASS_FIELD="cls", USER=COLLECTOR)


def test_samples_outside_the_imagery_import_nothing(make_project, tmp_path):
    path = make_project()
    before = digest(path)
    src = layer(
        tmp_path,
        [
            (rect_wkt(X0 + 10, Y0 + 10, X0 + 20, Y0 + 20), {"cls": "building"}),
            (rect_wkt(X0 + 900, Y0 + 10, X0 + 920, Y0 + 20), {"cls": "building"}),
        ],
    )
    with pytest.raises(QgsProcessingException, match="1 of 2 samples lie outside") as err:
        run("importsamples", PROJECT=path, INPUT=src, CLASS_FIELD="cls", USER=COLLECTOR)
    assert "nothing was added" in str(err.value)
    assert samples(path) == []
    assert digest(path) == before


def test_unknown_class_imports_nothing(make_project, tmp_path):
    path = make_project()
    src = layer(
        tmp_path,
        [
            (rect_wkt(X0 + 10, Y0 + 10, X0 + 20, Y0 + 20), {"cls": "building"}),
            (rect_wkt(X0 + 30, Y0 + 10, X0 + 40, Y0 + 20), {"cls": "tree"}),
        ],
    )
    with pytest.raises(QgsProcessingException, match="Class 'tree' is not in the project"):
        run("importsamples", PROJECT=path, INPUT=src, CLASS_FIELD="cls", USER=COLLECTOR)
    assert samples(path) == []


def test_missing_class_and_unrepairable_geometry(make_project, tmp_path):
    path = make_project()
    src = layer(
        tmp_path,
        [
            (rect_wkt(X0 + 10, Y0 + 10, X0 + 20, Y0 + 20), {"cls": "building"}),
            (rect_wkt(X0 + 30, Y0 + 10, X0 + 40, Y0 + 20), {}),
        ],
    )
    with pytest.raises(QgsProcessingException, match="1 feature without a class value"):
        run("importsamples", PROJECT=path, INPUT=src, CLASS_FIELD="cls", USER=COLLECTOR)
    # a polygon collapsed to a line cannot be repaired into a polygon
    flat = wkt_polygon([(X0 + 10, Y0 + 10), (X0 + 20, Y0 + 10), (X0 + 30, Y0 + 10)])
    src = layer(tmp_path, [(flat, {"cls": "building"})], name="flat.gpkg")
    with pytest.raises(QgsProcessingException, match="could not be repaired"):
        run("importsamples", PROJECT=path, INPUT=src, CLASS_FIELD="cls", USER=COLLECTOR)
    assert samples(path) == []


def test_outsider_may_not_import(make_project, tmp_path):
    path = make_project()
    src = layer(tmp_path, [(rect_wkt(X0 + 10, Y0 + 10, X0 + 20, Y0 + 20), {"cls": "1"})])
    with pytest.raises(QgsProcessingException, match="'mallory' is not a member"):
        run("importsamples", PROJECT=path, INPUT=src, CLASS_FIELD="cls", USER="mallory")


def test_import_into_a_reviewed_unit_is_refused(make_project, tmp_path):
    path = make_project()
    ids = unit_ids_by_name(path)
    run(
        "updateworkunitstatus",
        PROJECT=path,
        WORK_UNITS=str(ids["R2C1"]),
        STATUS="REVIEWED",
        USER=OWNER,
    )
    src = layer(tmp_path, [(rect_wkt(X0 + 10, Y0 + 10, X0 + 20, Y0 + 20), {"cls": "1"})])
    with pytest.raises(QgsProcessingException, match="is Reviewed; cannot collect"):
        run("importsamples", PROJECT=path, INPUT=src, CLASS_FIELD="cls", USER=COLLECTOR)


LANDSAT = Path(__file__).resolve().parents[3] / "shared" / "data" / "landsat_albers" / "image.tif"


def test_custom_crs_project_reprojects_through_its_wkt(tmp_path):
    """A raster in a custom Albers CRS (no authority id): the project keeps the WKT."""
    path = str(tmp_path / "albers.gpkg")
    run(
        "createproject",
        NAME="Albers",
        INPUT_RASTER=str(LANDSAT),
        INFERENCE_TOOL="CLASSIFY_PIXELS",
        CLASSES="1:field",
        OUTPUT=path,
        USER=OWNER,
    )
    info = Project.open(path, OWNER).info()
    assert info.imagery.crs_authid is None
    assert "Albers" in info.imagery.crs_wkt
    run("createworkunits", PROJECT=path, CELL_SIZE=256, CELL_UNITS="PIXELS", USER=OWNER)
    crs = QgsCoordinateReferenceSystem.fromWkt(info.imagery.crs_wkt)
    to_wgs = QgsCoordinateTransform(
        crs, QgsCoordinateReferenceSystem("EPSG:4326"), QgsProject.instance()
    )
    xmin, ymin, xmax, ymax = info.imagery.extent
    # a 60 m square near the lower-right corner: the R2C2 unit
    cx, cy = xmax - 200, ymin + 200
    ring = [(cx - 30, cy - 30), (cx + 30, cy - 30), (cx + 30, cy + 30), (cx - 30, cy + 30)]
    pts = [to_wgs.transform(QgsPointXY(x, y)) for x, y in ring]
    wkt = wkt_polygon([(p.x(), p.y()) for p in pts])
    src = layer(tmp_path, [(wkt, {"cls": "field"})], epsg=4326, name="s.geojson")
    assert run("importsamples", PROJECT=path, INPUT=src, CLASS_FIELD="cls", USER=OWNER) == {
        "IMPORTED": 1
    }
    (sample,) = samples(path)
    assert sample.geometry.centroid() == pytest.approx((cx, cy), abs=0.01)
    assert sample.work_unit == unit_ids_by_name(path)["R2C2"]
