"""The three accuracy algorithms through real QGIS: real layers (memory, GeoPackage), a
ground truth in another CRS, the engine worker for detection and pixels, and the refusals
(each with a clear message and nothing written)."""

from __future__ import annotations

import numpy as np
import pytest
from osgeo import gdal, osr
from qgis.core import (
    QgsApplication,
    QgsFeature,
    QgsGeometry,
    QgsProcessingException,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import Qt
from qgis_support import ORIGIN, Capture, rect_wkt, run, wgs84_polygon_wkt, write_vector

from dlstudio_qgis.processing.base import FLAG_ADVANCED

X0, Y0 = ORIGIN[0], ORIGIN[1] - 100  # the objects sit in a 100 m square below the origin
DET, PIX, OBJ = (
    "computeaccuracyforobjectdetection",
    "computeaccuracyforpixelclassification",
    "computeaccuracyforobjectclassification",
)


def box(x0, y0, x1, y1) -> str:
    return rect_wkt(X0 + x0, Y0 + y0, X0 + x1, Y0 + y1)


def memory_layer(spec: str, rows, crs="EPSG:32611", name="layer") -> QgsVectorLayer:
    """rows: (wkt or None, [attributes]) in the order of the fields of `spec`."""
    layer = QgsVectorLayer(f"{spec}&crs={crs}" if "?" in spec else f"{spec}?crs={crs}", name,
                           "memory")  # fmt: skip
    features = []
    for wkt, attrs in rows:
        f = QgsFeature(layer.fields())
        if wkt:
            f.setGeometry(QgsGeometry.fromWkt(wkt))
        f.setAttributes(list(attrs))
        features.append(f)
    assert layer.dataProvider().addFeatures(features)
    return layer


def table(path) -> dict:
    """The rows of an accuracy table (a GeoPackage without geometry) by class_name."""
    layer = QgsVectorLayer(str(path), "table", "ogr")
    assert layer.isValid() and not layer.isSpatial()
    names = layer.fields().names()
    return {f["class_name"]: dict(zip(names, f.attributes(), strict=True))
            for f in layer.getFeatures()}  # fmt: skip


def none(value):
    """NULL attributes read back (a null QVariant in QGIS 3) as None."""
    return None if value is None or (hasattr(value, "isNull") and value.isNull()) else value


# --- object detection ----------------------------------------------------------------------

# the hand case of tests/engine/accuracy (class 1: AP 11/12), with d4's IoU 0.6 rather
# than exactly 0.5 (the ground truth takes a trip through EPSG:4326)
DETS = [
    (box(0, 0, 10, 10), [1, "car", 0.9]),
    (box(21, 0, 31, 10), [1, "car", 0.8]),
    (box(0, 0, 10, 5), [1, "car", 0.7]),
    (box(40, 0, 46, 10), [1, "car", 0.6]),
    (box(60, 60, 70, 70), [2, "truck", 0.95]),
]
GT = [((0, 0, 10, 10), 1), ((20, 0, 30, 10), 1), ((40, 0, 50, 10), 1), ((0, 20, 10, 30), 2)]
DET_SPEC = "MultiPolygon?field=class_value:integer&field=class_name:string&field=confidence:double"


def detections(rows=DETS) -> QgsVectorLayer:
    return memory_layer(DET_SPEC, rows, name="detections")


@pytest.fixture
def truth_wgs84(tmp_path) -> str:
    features = []
    for (x0, y0, x1, y1), value in GT:
        ring = [(X0 + x0, Y0 + y0), (X0 + x1, Y0 + y0), (X0 + x1, Y0 + y1), (X0 + x0, Y0 + y1)]
        features.append((wgs84_polygon_wkt(ring), {"label": value}))
    return write_vector(tmp_path / "truth.gpkg", features, 4326, 3, (("label", "int"),))


def test_detection_accuracy_with_ground_truth_in_another_crs(tmp_path, truth_wgs84):
    out, report = tmp_path / "acc.gpkg", tmp_path / "acc.html"
    feedback = Capture()
    result = run(DET, feedback, DETECTED_FEATURES=detections(), GROUND_TRUTH_FEATURES=truth_wgs84,
                 GROUND_TRUTH_CLASS_VALUE_FIELD="label", OUTPUT_ACCURACY_TABLE=str(out),
                 OUTPUT_ACCURACY_REPORT=str(report))  # fmt: skip
    rows = table(out)
    assert list(rows) == ["car", "truck", "all"]
    car, truck, every = rows["car"], rows["truck"], rows["all"]
    assert (car["tp"], car["fp"], car["fn"], car["ground_truth"], car["detections"]) == (
        3, 1, 0, 3, 4)  # fmt: skip
    assert car["ap"] == pytest.approx(11 / 12) and car["precision"] == pytest.approx(0.75)
    assert (truck["tp"], truck["fp"], truck["ap"]) == (0, 1, 0.0)
    assert none(every["class_value"]) is None
    assert every["ap"] == pytest.approx(11 / 24)  # mAP over the two classes
    assert (every["precision"], every["recall"]) == (pytest.approx(3 / 5), pytest.approx(3 / 4))
    assert result["MAP"] == pytest.approx(11 / 24) and result["F1"] == pytest.approx(6 / 9)
    assert result["OUTPUT_ACCURACY_REPORT"] == str(report)
    assert "Object detection accuracy" in report.read_text() and "truck" in report.read_text()
    assert "mAP 0.4583" in feedback.text


def test_detection_mask_and_missing_confidence(tmp_path, truth_wgs84):
    # without confidences the detections are matched in layer order; the mask (in EPSG:4326)
    # keeps the objects whose centre is west of x = 35: car GT A, B and d1-d3
    plain = memory_layer("Polygon?field=class_value:integer",
                         [(wkt, attrs[:1]) for wkt, attrs in DETS], name="plain")  # fmt: skip
    ring = [(X0 - 5, Y0 - 5), (X0 + 35, Y0 - 5), (X0 + 35, Y0 + 15), (X0 - 5, Y0 + 15)]
    mask = write_vector(tmp_path / "mask.gpkg", [(wgs84_polygon_wkt(ring), {})], 4326, 3, ())
    feedback = Capture()
    run(DET, feedback, DETECTED_FEATURES=plain, GROUND_TRUTH_FEATURES=truth_wgs84,
        GROUND_TRUTH_CLASS_VALUE_FIELD="label", MASK_FEATURES=mask,
        OUTPUT_ACCURACY_TABLE=str(tmp_path / "t.gpkg"))  # fmt: skip
    assert "no 'confidence' field" in feedback.text
    rows = table(tmp_path / "t.gpkg")
    assert list(rows) == ["1", "all"]  # no class names anywhere: the values stand in
    assert (rows["1"]["ground_truth"], rows["1"]["tp"], rows["1"]["fp"]) == (2, 2, 1)


def test_detection_without_detections(tmp_path, truth_wgs84):
    feedback = Capture()
    result = run(DET, feedback, DETECTED_FEATURES=detections([]),
                 GROUND_TRUTH_FEATURES=truth_wgs84, GROUND_TRUTH_CLASS_VALUE_FIELD="label",
                 OUTPUT_ACCURACY_TABLE=str(tmp_path / "t.gpkg"))  # fmt: skip
    assert "There are no detections" in feedback.text
    assert result["PRECISION"] is None and result["RECALL"] == 0 and result["MAP"] == 0
    assert none(table(tmp_path / "t.gpkg")["1"]["precision"]) is None


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"GROUND_TRUTH_CLASS_VALUE_FIELD": "kind"}, "has no field 'kind'"),
        ({"GROUND_TRUTH_FEATURES": "empty"}, "The ground-truth layer has no polygon"),
        ({"DETECTED_CONFIDENCE_FIELD": "score"}, "no field 'score' (DETECTED_CONFIDENCE_FIELD)"),
        ({"DETECTED_CONFIDENCE_FIELD": "class_name"}, "is not numeric"),
        ({"MIN_IOU": 0}, "MIN_IOU is in (0, 1]"),
        ({"MASK_FEATURES": "empty"}, "The mask layer has no polygons"),
    ],
)
def test_detection_refusals(tmp_path, truth_wgs84, params, message):
    empty = memory_layer("Polygon?field=label:integer", [], name="empty")
    params = {k: empty if v == "empty" else v for k, v in params.items()}
    out, report = tmp_path / "t.gpkg", tmp_path / "r.html"
    base = {"DETECTED_FEATURES": detections(), "GROUND_TRUTH_FEATURES": truth_wgs84,
            "GROUND_TRUTH_CLASS_VALUE_FIELD": "label", "OUTPUT_ACCURACY_TABLE": str(out),
            "OUTPUT_ACCURACY_REPORT": str(report)}  # fmt: skip
    with pytest.raises(QgsProcessingException) as err:
        run(DET, **{**base, **params})
    assert message in str(err.value)
    assert not out.exists() and not report.exists()


# --- pixel classification ------------------------------------------------------------------


def write_classes(path, array, epsg=32611, origin=ORIGIN, categories=None) -> str:
    ds = gdal.GetDriverByName("GTiff").Create(str(path), array.shape[1], array.shape[0], 1,
                                              gdal.GDT_Byte)  # fmt: skip
    ds.SetGeoTransform((origin[0], 1.0, 0.0, origin[1], 0.0, -1.0))
    if epsg:
        srs = osr.SpatialReference()
        srs.ImportFromEPSG(epsg)
        ds.SetProjection(srs.ExportToWkt())
    band = ds.GetRasterBand(1)
    band.WriteArray(array)
    if categories:
        band.SetCategoryNames(categories)
    ds = None
    return str(path)


@pytest.fixture
def pixels(tmp_path) -> dict:
    """100 x 100 classes: rows 0-49 water (1), 50-99 forest (2); the classification calls a
    10 x 10 block of water forest and leaves a 5 x 10 block of forest unclassified."""
    ref = np.ones((100, 100), dtype=np.uint8)
    ref[50:] = 2
    cls = ref.copy()
    cls[0:10, 0:10] = 2
    cls[60:65, 0:10] = 0
    names = ["", "water", "forest"]
    return {
        "ref": write_classes(tmp_path / "ref.tif", ref),
        "cls": write_classes(tmp_path / "cls.tif", cls, categories=names),
        "nocrs": write_classes(tmp_path / "nocrs.tif", cls, epsg=None),
        "far": write_classes(tmp_path / "far.tif", ref, origin=(ORIGIN[0] + 5000, ORIGIN[1])),
    }


def test_pixel_accuracy_against_a_raster(tmp_path, pixels):
    out, report = tmp_path / "cm.gpkg", tmp_path / "cm.html"
    result = run(PIX, CLASSIFIED_RASTER=pixels["cls"], REFERENCE_RASTER=pixels["ref"],
                 WINDOW_SIZE=32, OUTPUT_ACCURACY_TABLE=str(out),
                 OUTPUT_ACCURACY_REPORT=str(report))  # fmt: skip
    rows = table(out)
    assert list(rows) == ["water", "forest", "total"]
    water, forest, total = rows["water"], rows["forest"], rows["total"]
    assert (water["c_1"], water["c_2"], water["no_class"], water["total"]) == (4900, 100, 0, 5000)
    assert (forest["c_1"], forest["c_2"], forest["no_class"]) == (0, 4950, 50)
    assert (total["c_1"], total["c_2"], total["total"]) == (4900, 5050, 10000)
    assert water["iou"] == pytest.approx(4900 / 5000) and forest["iou"] == pytest.approx(
        4950 / 5100)  # fmt: skip
    assert result["OVERALL_ACCURACY"] == pytest.approx(0.985)
    # p_e = (5000 * 4900 + 5000 * 5050) / 10000^2 = 0.4975
    assert result["KAPPA"] == pytest.approx((0.985 - 0.4975) / 0.5025)
    assert result["MIOU"] == pytest.approx(total["iou"])
    text = report.read_text()
    assert "water (1)" in text and "no class" in text


def test_pixel_accuracy_against_polygons_in_another_crs(tmp_path, pixels):
    # two polygons in EPSG:4326 over the top-left 40 x 40 m: water, then forest (by name)
    # over its left half; their edges are on pixel edges, far from any pixel centre
    def quad(x0, y0, x1, y1):
        return [(ORIGIN[0] + x0, ORIGIN[1] - y1), (ORIGIN[0] + x1, ORIGIN[1] - y1),
                (ORIGIN[0] + x1, ORIGIN[1] - y0), (ORIGIN[0] + x0, ORIGIN[1] - y0)]  # fmt: skip

    polys = write_vector(tmp_path / "ref.gpkg", [
        (wgs84_polygon_wkt(quad(0, 0, 40, 40)), {"cls": "1"}),
        (wgs84_polygon_wkt(quad(0, 0, 20, 40)), {"cls": "Forest"}),
        (wgs84_polygon_wkt(quad(0, 60, 10, 70)), {"cls": None}),
    ], 4326, 3)  # fmt: skip
    feedback = Capture()
    run(PIX, feedback, CLASSIFIED_RASTER=pixels["cls"], REFERENCE_FEATURES=polys,
        REFERENCE_CLASS_FIELD="cls", OUTPUT_ACCURACY_TABLE=str(tmp_path / "t.gpkg"))  # fmt: skip
    rows = table(tmp_path / "t.gpkg")
    # water reference: x 20-40, y 0-40 (800 px, all water); forest reference: x 0-20,
    # y 0-40 (800 px), of which the 10 x 10 block is classified forest and the rest water
    assert (rows["water"]["c_1"], rows["water"]["c_2"]) == (800, 0)
    assert (rows["forest"]["c_1"], rows["forest"]["c_2"]) == (700, 100)
    assert "1 without a class value" in feedback.text


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "not neither"),
        ({"REFERENCE_RASTER": "ref", "REFERENCE_FEATURES": "polys"}, "not both"),
        ({"REFERENCE_RASTER": "far"}, "does not overlap the classified raster"),
        ({"CLASSIFIED_RASTER": "nocrs", "REFERENCE_RASTER": "ref"},
         "has no coordinate reference system"),
        ({"REFERENCE_RASTER": "ref", "EXTENT": "0,10,0,10 [EPSG:32611]"}, "EXTENT does not"),
        ({"REFERENCE_FEATURES": "polys", "REFERENCE_CLASS_FIELD": "kind"}, "no field 'kind'"),
        ({"REFERENCE_FEATURES": "named"}, "neither a whole number nor a class name"),
        ({"REFERENCE_FEATURES": "outside"}, "No reference polygon with a class value overlaps"),
    ],
)  # fmt: skip
def test_pixel_refusals(tmp_path, pixels, params, message):
    layers = {
        "polys": memory_layer("Polygon?field=class_value:integer",
                              [(rect_wkt(X0, Y0, X0 + 9, Y0 + 9), [1])]),
        "named": memory_layer("Polygon?field=class_value:string",
                              [(rect_wkt(X0, Y0, X0 + 9, Y0 + 9), ["swamp"])]),
        "outside": memory_layer("Polygon?field=class_value:integer",
                                [(rect_wkt(0, 0, 9, 9), [1])]),
        **pixels,
    }  # fmt: skip
    params = {"CLASSIFIED_RASTER": pixels["cls"],
              **{k: layers.get(v, v) for k, v in params.items()}}  # fmt: skip
    out, report = tmp_path / "t.gpkg", tmp_path / "r.html"
    with pytest.raises(QgsProcessingException) as err:
        run(PIX, OUTPUT_ACCURACY_TABLE=str(out), OUTPUT_ACCURACY_REPORT=str(report), **params)
    assert message in str(err.value)
    assert not out.exists() and not report.exists()


class CancelInWorker(Capture):
    """Cancels once the worker reports progress (the comparison is then under way)."""

    def __init__(self):
        super().__init__()
        self.working = False
        # setProgress is not virtual: watch the signal, in the thread that reports
        self.progressChanged.connect(self._progress, Qt.ConnectionType.DirectConnection)

    def pushInfo(self, info):
        super().pushInfo(info)
        self.working = self.working or info.startswith("Comparing the pixels in the worker")

    def _progress(self, value):
        if self.working and value > 100 / 3 + 1 and not self.isCanceled():
            self.cancel()


def test_pixel_cancel_stops_the_worker_and_writes_nothing(tmp_path):
    big = np.ones((1200, 1600), dtype=np.uint8)  # read in 16-pixel windows: 7500 of them
    big[600:] = 2
    path = write_classes(tmp_path / "big.tif", big)
    out, report = tmp_path / "t.gpkg", tmp_path / "r.html"
    feedback = CancelInWorker()
    with pytest.raises(QgsProcessingException, match="the accuracy worker was stopped"):
        run(PIX, feedback, CLASSIFIED_RASTER=path, REFERENCE_RASTER=path, WINDOW_SIZE=16,
            OUTPUT_ACCURACY_TABLE=str(out), OUTPUT_ACCURACY_REPORT=str(report))  # fmt: skip
    assert feedback.isCanceled() and not out.exists() and not report.exists()
    assert not list(tmp_path.glob(".report-*"))


# --- object classification -----------------------------------------------------------------

# 10 features: reference a a a a b b b b b -, predicted a a a b b b b - a b (the last has no
# reference: not counted). a: 3 right, 1 called b; b: 3 right, 1 called a, 1 not classified.
# N = 9, OA = 6/9; predicted totals a 4, b 4, none 1; p_e = (4*4 + 5*4) / 81 = 36/81,
# kappa = (6/9 - 36/81) / (1 - 36/81) = (54 - 36) / (81 - 36) = 18/45 = 0.4.
OBJECTS = list(zip("aaaabbbbb", ["a", "a", "a", "b", "b", "b", "b", None, "a"], strict=True))
OBJECTS.append((None, "b"))


def test_object_classification_accuracy(tmp_path):
    layer = memory_layer("Point?field=truth:string&field=class_name:string",
                         [("POINT(0 0)", [r, p]) for r, p in OBJECTS])  # fmt: skip
    out, report = tmp_path / "oc.gpkg", tmp_path / "oc.html"
    feedback = Capture()
    result = run(OBJ, feedback, INPUT_FEATURES=layer, PREDICTED_FIELD="class_name",
                 REFERENCE_FIELD="truth", OUTPUT_ACCURACY_TABLE=str(out),
                 OUTPUT_ACCURACY_REPORT=str(report))  # fmt: skip
    assert result["OVERALL_ACCURACY"] == pytest.approx(6 / 9)
    assert result["KAPPA"] == pytest.approx(0.4)
    rows = table(out)
    assert (rows["a"]["c_a"], rows["a"]["c_b"], rows["a"]["no_class"]) == (3, 1, 0)
    assert (rows["b"]["c_a"], rows["b"]["c_b"], rows["b"]["no_class"]) == (1, 3, 1)
    assert rows["b"]["precision"] == pytest.approx(3 / 4) and rows["b"]["recall"] == 0.6
    assert rows["total"]["total"] == 9
    assert "1 feature without a reference class" in feedback.text
    assert "Object classification accuracy" in report.read_text()


def test_object_classification_values_and_names(tmp_path):
    # predicted class values (Classify objects' class_value) against reference values held
    # as text; class_name gives the names
    layer = memory_layer("None?field=class_value:integer&field=class_name:string&field=ref:string",
                         [(None, [1, "car", "1"]), (None, [2, "bus", "2"]),
                          (None, [2, "bus", "1.0"])])  # fmt: skip
    result = run(OBJ, INPUT_FEATURES=layer, REFERENCE_FIELD="ref",
                 OUTPUT_ACCURACY_TABLE=str(tmp_path / "t.gpkg"))  # fmt: skip
    assert result["OVERALL_ACCURACY"] == pytest.approx(2 / 3)
    rows = table(tmp_path / "t.gpkg")
    assert list(rows) == ["car", "bus", "total"] and rows["car"]["c_2"] == 1


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"REFERENCE_FIELD": "class_name"}, "are both 'class_name'"),
        ({"REFERENCE_FIELD": "nope"}, "has no field 'nope'"),
        ({"REFERENCE_FIELD": "empty"}, "No feature has a reference class in 'empty'"),
    ],
)
def test_object_classification_refusals(tmp_path, params, message):
    layer = memory_layer("Point?field=class_name:string&field=empty:string",
                         [("POINT(0 0)", ["a", None])])  # fmt: skip
    out = tmp_path / "t.gpkg"
    with pytest.raises(QgsProcessingException) as err:
        run(OBJ, INPUT_FEATURES=layer, PREDICTED_FIELD="class_name",
            OUTPUT_ACCURACY_TABLE=str(out), **params)  # fmt: skip
    assert message in str(err.value) and not out.exists()


def test_parameters_have_help_and_the_right_flags():
    registry = QgsApplication.processingRegistry()
    for name in (DET, PIX, OBJ):
        alg = registry.algorithmById(f"dlstudio:{name}")
        assert alg.group() == "Deep learning" and len(alg.shortHelpString()) > 400
        for p in alg.parameterDefinitions():
            assert p.name() == p.name().upper() and len(p.help()) > 15, (name, p.name())
            assert bool(p.flags() & FLAG_ADVANCED) == (p.name() == "WINDOW_SIZE"), p.name()
    outputs = {o.name() for o in registry.algorithmById(f"dlstudio:{DET}").outputDefinitions()}
    assert {"MAP", "PRECISION", "RECALL", "F1", "OUTPUT_ACCURACY_TABLE"} <= outputs
