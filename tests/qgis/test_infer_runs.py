"""Real inference runs through the engine worker with tiny real packages (one epoch of RESNET18
on a 256 px synthetic scene, built once: infer_packages.py): the outputs' CRS, fields, extent,
size and colour table, their style when loaded, the project's record, and Cancel.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from infer_packages import real_packages, unpack_emd
from osgeo import gdal, ogr
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsProcessingException,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsVectorLayer,
)
from qgis_support import ANALYST, OWNER, Capture, new_context, run, utm_to_wgs84, write_vector

from dlstudio_qgis.core import Project

COLORS = {1: "#e6194b", 2: "#3cb44b"}
NAMES = {1: "building", 2: "road"}


@pytest.fixture(scope="module")
def packages():
    return real_packages()


def _scene(packages) -> tuple[QgsRasterLayer, QgsRectangle]:
    layer = QgsRasterLayer(str(packages["scene"]), "scene", "gdal")
    assert layer.isValid()
    return layer, layer.extent()


def _run_and_load(name: str, feedback=None, **params) -> tuple[dict, list]:
    """Run like the Toolbox does: outputs loaded into the project, post-processors run."""
    import processing

    QgsProject.instance().removeAllMapLayers()
    context = new_context()
    result = processing.runAndLoadResults(
        f"dlstudio:{name}", params, feedback=feedback or Capture(), context=context
    )
    return result, list(QgsProject.instance().mapLayers().values())


def test_detect_objects(packages, tmp_path):
    scene, extent = _scene(packages)
    out = tmp_path / "detections.gpkg"
    feedback = Capture()
    result, loaded = _run_and_load(
        "detectobjects",
        feedback,
        INPUT_RASTER=str(packages["scene"]),
        MODEL=str(packages["SSD"]),
        ARGUMENTS="threshold=0.05;batch_size=8",
        PROCESSOR_TYPE="CPU",
        OUTPUT=str(out),
    )
    layer = QgsVectorLayer(str(out), "detections", "ogr")
    assert layer.isValid() and layer.crs() == scene.crs()
    assert layer.fields().names()[-3:] == ["class_value", "class_name", "confidence"]
    assert [layer.fields().field(n).typeName().lower() for n in ("class_value", "confidence")] == [
        "integer",
        "real",
    ]
    assert layer.featureCount() == result["DETECTIONS"] > 0
    for f in layer.getFeatures():
        assert extent.contains(f.geometry().boundingBox()), f.geometry().boundingBox()
        assert NAMES[f["class_value"]] == f["class_name"] and 0.05 <= f["confidence"] <= 1
    assert f"Detected {result['DETECTIONS']} objects" in feedback.text
    # loaded styled by class, and the GeoPackage keeps the style as its default
    (shown,) = loaded
    _assert_categorized(shown, "class_value")
    con = sqlite3.connect(out)
    styles = con.execute("SELECT styleName, useAsDefault FROM layer_styles").fetchall()
    con.close()
    assert styles == [("default", 1)]
    reopened = QgsVectorLayer(str(out), "again", "ogr")
    _assert_categorized(reopened, "class_value")


def _assert_categorized(layer, field: str) -> None:
    renderer = layer.renderer()
    assert renderer.type() == "categorizedSymbol" and renderer.classAttribute() == field
    # a style read back from a file holds the values as text: QGIS matches them as text too
    cats = {str(c.value()): (c.label(), c.symbol().color().name()) for c in renderer.categories()}
    assert cats["1"] == ("building", COLORS[1]) and cats["2"] == ("road", COLORS[2])


def test_classify_pixels_from_an_emd_with_extent_and_project(packages, tmp_path, make_project):
    """A bare .emd with its weights beside it, EXTENT in EPSG:4326, recorded in a project."""
    scene, extent = _scene(packages)
    model = unpack_emd(packages["UNET"], tmp_path / "model")
    project = make_project(grid=None)
    # the scene's centre half, given in WGS 84
    x0, y0 = extent.xMinimum() + 64, extent.yMinimum() + 64
    (lon0, lat0), (lon1, lat1) = utm_to_wgs84([(x0, y0), (x0 + 128, y0 + 128)])
    out = tmp_path / "out" / "classes.tif"
    result, loaded = _run_and_load(
        "classifypixels",
        INPUT_RASTER=str(packages["scene"]),
        MODEL=model,
        EXTENT=f"{lon0},{lon1},{lat0},{lat1} [EPSG:4326]",
        PROCESSOR_TYPE="CPU",
        PROJECT=project,
        USER=ANALYST,
        OUTPUT=str(out),
    )
    assert result["OUTPUT"] == str(out)
    # the WGS 84 box in the raster's CRS (a little larger than 128 m: UTM is turned there)
    box = QgsCoordinateTransform(
        QgsCoordinateReferenceSystem("EPSG:4326"), scene.crs(), QgsProject.instance()
    ).transformBoundingBox(QgsRectangle(lon0, lat0, lon1, lat1))
    ds = gdal.Open(str(out))
    assert ds.RasterCount == 1
    assert abs(ds.RasterXSize - box.width()) <= 2 and abs(ds.RasterYSize - box.height()) <= 2
    gt = ds.GetGeoTransform()
    assert gt[1] == 1.0 and abs(gt[0] - box.xMinimum()) <= 1 and abs(gt[3] - box.yMaximum()) <= 1
    assert QgsRasterLayer(str(out), "o", "gdal").crs() == scene.crs()
    band = ds.GetRasterBand(1)
    table = band.GetColorTable()
    assert table.GetColorEntry(1)[:3] == (230, 25, 75) and table.GetColorEntry(2)[:3] == (
        60,
        180,
        75,
    )
    values = set(band.ReadAsArray().ravel().tolist())
    ds_pixels = ds.RasterXSize * ds.RasterYSize
    ds = None
    assert values <= {0, 1, 2} and values & {1, 2}
    counts = json.loads(result["PIXEL_COUNTS"])
    assert sum(counts.values()) == ds_pixels
    # styled when loaded, and by the .qml beside it anywhere else
    (shown,) = loaded
    _assert_paletted(shown)
    assert (out.parent / "classes.qml").is_file()
    _assert_paletted(QgsRasterLayer(str(out), "again", "gdal"))
    (rec,) = Project.open(project, OWNER).jobs()
    assert (rec["kind"], rec["status"], rec["submitted_by"]) == ("infer", "succeeded", ANALYST)
    assert rec["id"] == result["JOB_ID"] and rec["parameters"]["tool"] == "classify_pixels"


def _assert_paletted(layer) -> None:
    renderer = layer.renderer()
    assert renderer.type() == "paletted" and renderer.band() == 1
    classes = {c.value: (c.label, c.color.name()) for c in renderer.classes()}
    assert classes == {v: (NAMES[v], COLORS[v]) for v in (1, 2)}


def test_classify_objects(packages, tmp_path):
    """Polygons and a point in EPSG:4326, one outside the raster and one without geometry."""
    scene, extent = _scene(packages)
    buildings = json.loads((packages["folder"] / "buildings.geojson").read_text())["features"]
    rows = []
    for i, f in enumerate(buildings[:3]):
        ring = utm_to_wgs84(f["geometry"]["coordinates"][0])
        wkt = "POLYGON((" + ",".join(f"{x:.9f} {y:.9f}" for x, y in ring) + "))"
        rows.append((wkt, {"name": f"house {i}", "class_value": 99}))
    (px, py), (fx, fy) = utm_to_wgs84(
        [(extent.center().x(), extent.center().y()), (extent.xMaximum() + 500, extent.yMinimum())]
    )
    rows.append((f"POINT({px} {py})", {"name": "centre", "class_value": 99}))
    rows.append((f"POINT({fx} {fy})", {"name": "far away", "class_value": 99}))
    rows.append((None, {"name": "nowhere", "class_value": 99}))
    src = write_vector(tmp_path / "objects.gpkg", rows, 4326, ogr.wkbUnknown,
                       fields=(("name", "str"), ("class_value", "int")))  # fmt: skip
    out = tmp_path / "classified.gpkg"
    result, loaded = _run_and_load(
        "classifyobjects",
        INPUT_RASTER=str(packages["scene"]),
        INPUT_FEATURES=src,
        MODEL=str(packages["FEATURE_CLASSIFIER"]),
        CLASS_LABEL_FIELD="ClassLabel",
        PROCESSOR_TYPE="CPU",
        OUTPUT=str(out),
    )
    layer = QgsVectorLayer(str(out), "classified", "ogr")
    assert layer.crs().authid() == "EPSG:4326"
    assert layer.fields().names()[1:] == ["name", "class_value", "ClassLabel", "class_value_2",
                                          "confidence"]  # fmt: skip
    got = {f["name"]: f for f in layer.getFeatures()}
    assert set(got) == {"house 0", "house 1", "house 2", "centre", "far away", "nowhere"}
    for name in ("house 0", "house 1", "house 2", "centre"):
        f = got[name]
        assert f["class_value"] == 99  # the input's own field, kept
        assert NAMES[f["class_value_2"]] == f["ClassLabel"] and 0 < f["confidence"] <= 1
    for name in ("far away", "nowhere"):
        assert got[name]["ClassLabel"] in (None, "") or got[name].isNull(
            layer.fields().indexOf("ClassLabel")
        )
    assert (result["CLASSIFIED"], result["SKIPPED"]) == (4, 2)
    (shown,) = loaded
    _assert_categorized(shown, "class_value_2")


def _cancel_when_the_worker_reports(feedback: Capture, past: float) -> None:
    """Cancel at the first progress past `past` percent (the worker is running by then)."""
    feedback.progressChanged.connect(lambda p: feedback.cancel() if p > past else None)


def test_cancel_classify_pixels(packages, tmp_path, make_project):
    project = make_project(grid=None)
    out = tmp_path / "cancelled.tif"
    feedback = Capture()
    _cancel_when_the_worker_reports(feedback, 50.5)  # step 2 of 2: the worker
    with pytest.raises(QgsProcessingException):
        run(
            "classifypixels",
            feedback,
            INPUT_RASTER=str(packages["scene"]),
            MODEL=str(packages["UNET"]),
            ARGUMENTS="test_time_augmentation=True;batch_size=1",
            PROCESSOR_TYPE="CPU",
            PROJECT=project,
            USER=OWNER,
            OUTPUT=str(out),
        )
    assert feedback.isCanceled()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("project")) == []
    (rec,) = Project.open(project, OWNER).jobs()
    assert rec["status"] == "cancelled"


def test_cancel_detect_objects(packages, tmp_path):
    out = tmp_path / "cancelled.gpkg"
    feedback = Capture()
    _cancel_when_the_worker_reports(feedback, 34.0)  # step 2 of 3: the worker
    with pytest.raises(QgsProcessingException):
        run(
            "detectobjects",
            feedback,
            INPUT_RASTER=str(packages["scene"]),
            MODEL=str(packages["SSD"]),
            ARGUMENTS="test_time_augmentation=True;batch_size=1",
            PROCESSOR_TYPE="CPU",
            OUTPUT=str(out),
        )
    assert feedback.isCanceled() and list(Path(tmp_path).iterdir()) == []
