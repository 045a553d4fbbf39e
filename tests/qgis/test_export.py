"""dlstudio:exporttrainingdata through processing.run, with the real engine worker.

Rasters are written with osgeo.gdal (never rasterio in the QGIS process); the labels are read
back with the standard library.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from xml.etree import ElementTree

import pytest
from osgeo import gdal, ogr
from qgis.core import QgsProcessingException
from qgis.PyQt.QtCore import Qt
from qgis_support import (
    ANALYST,
    COLLECTOR,
    ORIGIN,
    OWNER,
    Capture,
    digest,
    rect_wkt,
    run,
    wgs84_polygon_wkt,
    write_vector,
)

from dlstudio_qgis.core import Project, rectangle

X0, Y1 = ORIGIN  # top-left of the 200 x 200 m test raster (1 m pixels, EPSG:32611)
# 4 x 4 chips that do not overlap: each object is in one chip
TILES = {"TILE_SIZE_X": 50, "TILE_SIZE_Y": 50, "STRIDE_X": 50, "STRIDE_Y": 50}


def px_box(c0, r0, c1, r1):
    """A rectangle given in pixel columns / rows of the test raster."""
    return rectangle(X0 + c0, Y1 - r1, X0 + c1, Y1 - r0)


def review_project(path):
    """Samples in every state; 3 of them (approved, in Reviewed units) are exportable.

    R1C1 (NW): 2 approved, 1 rejected, unit Reviewed; R1C2 (NE): 1 approved but the unit is
    left In review; R2C1 (SW): 1 pending approval; R2C2 (SE): 1 approved, unit Reviewed.
    """
    collector = Project.open(path, COLLECTOR)
    boxes = [
        px_box(10, 10, 30, 30), px_box(70, 10, 90, 30), px_box(10, 70, 30, 90),  # NW
        px_box(160, 10, 180, 30),  # NE
        px_box(10, 160, 30, 180),  # SW
        px_box(160, 160, 180, 180),  # SE
    ]  # fmt: skip
    ids = collector.add_samples([(b, 1) for b in boxes])
    units = {u.name: u.fid for u in collector.work_units()}
    for name in ("R1C1", "R1C2", "R2C1", "R2C2"):
        collector.mark_unit_complete(units[name])
    analyst = Project.open(path, ANALYST)
    analyst.review_samples([ids[0], ids[2], ids[3], ids[5]], "APPROVED")
    analyst.review_samples([ids[1]], "REJECTED")
    analyst.finish_review(units["R1C1"], "REVIEWED")
    analyst.finish_review(units["R2C2"], "REVIEWED")
    return ids


def voc_objects(folder: Path) -> list[tuple[str, tuple[float, float, float, float]]]:
    """(class name, map-coordinate box) of every object in a PASCAL VOC export."""
    out = []
    for line in (folder / "map.txt").read_text().splitlines():
        image, label = line.split()
        ds = gdal.Open(str(folder / image))
        gx, px, _, gy, _, py = ds.GetGeoTransform()
        ds = None
        for obj in ElementTree.parse(folder / label).getroot().iter("object"):
            box = obj.find("bndbox")
            xmin, ymin, xmax, ymax = (float(box.find(k).text) for k in
                                      ("xmin", "ymin", "xmax", "ymax"))  # fmt: skip
            out.append(
                (obj.find("name").text, (gx + xmin * px, gy + ymax * py, gx + xmax * px,
                                         gy + ymin * py))
            )  # fmt: skip
    return out


def test_project_export_honours_statuses(make_project, raster, tmp_path):
    path = make_project("DETECT_OBJECTS")
    review_project(path)
    out = tmp_path / "export"
    feedback = Capture()
    result = run("exporttrainingdata", feedback, INPUT_RASTER=raster, PROJECT=path,
                 OUTPUT_FOLDER=str(out), USER=ANALYST, **TILES)  # fmt: skip
    assert result["OUTPUT_FOLDER"] == str(out)
    assert result["SAMPLES"] == 3 and result["OBJECTS"] == 3
    objects = voc_objects(out)
    assert len(objects) == 3 and {name for name, _ in objects} == {"1"}  # VOC names: values
    # the exported ones are the approved boxes of the reviewed units, nothing else
    centres = sorted((round((b[0] + b[2]) / 2 - X0), round(Y1 - (b[1] + b[3]) / 2))
                     for _, b in objects)  # fmt: skip
    assert centres == [(20, 20), (20, 80), (170, 170)]
    assert (out / "esri_model_definition.emd").is_file()
    assert "left out 3" not in feedback.text
    assert "2 by sample status (1 pending approval, 1 rejected)" in feedback.text
    assert "1 approved in work units not Reviewed (1 in review)" in feedback.text
    # the job is recorded in the project
    jobs = Project.open(path, OWNER).jobs()
    assert [(j["kind"], j["status"], j["submitted_by"]) for j in jobs] == [
        ("export", "succeeded", ANALYST)
    ]
    assert jobs[0]["result"]["objects"] == 3 and jobs[0]["parameters"]["output"] == str(out)


def test_layer_in_another_crs_lands_at_the_right_pixels(raster, tmp_path):
    ring = [(X0 + 20, Y1 - 50), (X0 + 40, Y1 - 50), (X0 + 40, Y1 - 30), (X0 + 20, Y1 - 30)]
    samples = write_vector(tmp_path / "s.geojson", [(wgs84_polygon_wkt(ring), {"cls": "roof"})],
                           4326, ogr.wkbPolygon)  # fmt: skip
    out = tmp_path / "export"
    result = run("exporttrainingdata", INPUT_RASTER=raster, INPUT_SAMPLES=samples,
                 CLASS_VALUE_FIELD="cls", OUTPUT_FOLDER=str(out), **TILES)  # fmt: skip
    assert result["OBJECTS"] == 1
    ((name, box),) = voc_objects(out)
    assert name == "1"  # the class value; the .emd names it
    assert box == pytest.approx((X0 + 20, Y1 - 50, X0 + 40, Y1 - 30), abs=1.01)
    emd = json.loads((out / "esri_model_definition.emd").read_text())
    assert [(c["Value"], c["Name"]) for c in emd["Classes"]] == [(1, "roof")]
    # OVERWRITE replaces an earlier export; without it, the folder is refused
    with pytest.raises(QgsProcessingException, match="is not empty"):
        run("exporttrainingdata", INPUT_RASTER=raster, INPUT_SAMPLES=samples,
            CLASS_VALUE_FIELD="cls", OUTPUT_FOLDER=str(out), **TILES)  # fmt: skip
    again = run("exporttrainingdata", INPUT_RASTER=raster, INPUT_SAMPLES=samples,
                CLASS_VALUE_FIELD="cls", OUTPUT_FOLDER=str(out), OVERWRITE=True,
                **TILES)  # fmt: skip
    assert again["OBJECTS"] == 1 and len(voc_objects(out)) == 1


def test_format_must_fit_the_project_tool(make_project, raster, tmp_path):
    path = make_project("DETECT_OBJECTS")
    with pytest.raises(QgsProcessingException) as err:
        run("exporttrainingdata", INPUT_RASTER=raster, PROJECT=path, USER=OWNER,
            METADATA_FORMAT="Classified_Tiles", OUTPUT_FOLDER=str(tmp_path / "o"))  # fmt: skip
    assert "PASCAL_VOC_rectangles or KITTI_rectangles or RCNN_Masks" in str(err.value)
    assert not (tmp_path / "o").exists()


def test_no_samples_left_names_the_counts(make_project, raster, tmp_path):
    path = make_project("DETECT_OBJECTS")
    review_project(path)
    with pytest.raises(QgsProcessingException) as err:  # only the NE unit, still In review
        run("exporttrainingdata", PROJECT=path, USER=OWNER,  # the project's imagery
            EXTENT=f"{X0 + 120},{X0 + 190},{Y1 - 50},{Y1 - 5} [EPSG:32611]",
            OUTPUT_FOLDER=str(tmp_path / "o"))  # fmt: skip
    text = str(err.value)
    assert text.startswith("No samples to export: of 6 samples")
    assert "2 by sample status (1 pending approval, 1 rejected)" in text
    assert "1 approved in work units not Reviewed (1 in review)" in text
    assert "3 outside the raster or EXTENT" in text
    assert not (tmp_path / "o").exists() and Project.open(path, OWNER).jobs() == []


def test_raster_without_crs_is_refused(raster_nocrs, tmp_path):
    samples = write_vector(tmp_path / "s.gpkg", [(rect_wkt(1, 1, 5, 5), {"cls": "1"})], 32611,
                           ogr.wkbPolygon)  # fmt: skip
    with pytest.raises(QgsProcessingException, match="has no coordinate reference system"):
        run("exporttrainingdata", INPUT_RASTER=raster_nocrs, INPUT_SAMPLES=samples,
            CLASS_VALUE_FIELD="cls", OUTPUT_FOLDER=str(tmp_path / "o"))  # fmt: skip


def test_collector_may_not_export(make_project, raster, tmp_path):
    path = make_project("DETECT_OBJECTS")
    with pytest.raises(QgsProcessingException) as err:
        run("exporttrainingdata", INPUT_RASTER=raster, PROJECT=path, USER=COLLECTOR,
            OUTPUT_FOLDER=str(tmp_path / "o"))  # fmt: skip
    assert re.search(r"'carl' is collector .* needs the role owner or analyst", str(err.value))


def test_non_empty_folder_is_left_untouched(make_project, raster, tmp_path):
    path = make_project("DETECT_OBJECTS")
    review_project(path)
    out = tmp_path / "o"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    before = digest(out / "notes.txt")
    for overwrite in (False, True):  # OVERWRITE replaces only an earlier export
        with pytest.raises(QgsProcessingException, match="is not empty"):
            run("exporttrainingdata", INPUT_RASTER=raster, PROJECT=path, USER=OWNER,
                OUTPUT_FOLDER=str(out), OVERWRITE=overwrite)  # fmt: skip
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and digest(out / "notes.txt") == before


def test_exactly_one_sample_source(make_project, raster, tmp_path):
    with pytest.raises(QgsProcessingException, match="not neither"):
        run("exporttrainingdata", INPUT_RASTER=raster, OUTPUT_FOLDER=str(tmp_path / "o"))


class CancelOnWorkerProgress(Capture):
    """Cancels as soon as the worker reports (the export is then under way)."""

    def __init__(self):
        super().__init__()
        self.exporting = False
        # setProgress is not virtual: watch the signal, in the thread that reports
        self.progressChanged.connect(self._progress, Qt.ConnectionType.DirectConnection)

    def pushInfo(self, info):
        super().pushInfo(info)
        self.exporting = self.exporting or info.startswith("Starting the export worker")

    def _progress(self, value):
        if self.exporting and value > 100 * 2 / 3 and not self.isCanceled():
            self.cancel()


def test_cancel_leaves_no_output_folder(make_project, raster, tmp_path):
    path = make_project("DETECT_OBJECTS")
    review_project(path)
    out = tmp_path / "o"
    feedback = CancelOnWorkerProgress()
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        run("exporttrainingdata", feedback, INPUT_RASTER=raster, PROJECT=path, USER=OWNER,
            OUTPUT_FOLDER=str(out), **TILES)  # fmt: skip
    assert feedback.isCanceled() and not out.exists()
    # the worker was killed mid-run; its hidden staging folder is gone too
    assert list(tmp_path.glob(".o.partial-*")) == []
    assert [j["status"] for j in Project.open(path, OWNER).jobs()] == ["cancelled"]
