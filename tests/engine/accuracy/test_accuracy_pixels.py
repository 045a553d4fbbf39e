"""The ``accuracy`` worker command, pixel classification: streamed windows against a reference
raster (same grid, another grid, another CRS) or reference polygons."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from accuracy_support import (
    UTM,
    X0,
    Y0,
    box,
    expected_matrix,
    feature_collection,
    grid,
    make_rasters,
    run_job,
)
from engine_helpers import REPO, _env

from dlstudio_qgis.engine.protocol import parse_line

H, W = 150, 200


def truth() -> np.ndarray:
    """Classes 1, 2, 3 in bands of 50 rows, class 4 in a 30 x 40 block."""
    a = np.ones((H, W), dtype=np.uint8)
    a[50:100] = 2
    a[100:] = 3
    a[10:40, 120:160] = 4
    return a


def classified_and_reference() -> tuple[np.ndarray, np.ndarray]:
    """The classified raster differs from the reference in known places: a 10 x 20 block of
    class 1 classified as 2, a 5 x 10 block of 3 left unclassified (0), a row of 2 called 3;
    the reference has no class (0) in columns 190-199."""
    ref = truth()
    cls = ref.copy()
    cls[20:30, 20:40] = 2
    cls[120:125, 60:70] = 0
    cls[75, :] = 3
    ref[:, 190:] = 0
    return cls, ref


@pytest.fixture(scope="module")
def rasters(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("pixels")
    cls, ref = classified_and_reference()
    paths = {k: folder / f"{k}.tif" for k in ("cls", "ref", "ref_fine", "ref_wgs84", "nocrs",
                                                "far", "float")}  # fmt: skip
    fine = np.kron(ref, np.ones((2, 2), dtype=np.uint8))  # 0.5 m pixels
    fine = np.pad(fine, ((6, 0), (0, 10)))  # and a grid that starts 3 m further north
    make_rasters(folder, [
        {"path": paths["cls"], "array": cls, "crs": UTM, "transform": grid(), "block": 32},
        {"path": paths["ref"], "array": ref, "crs": UTM, "transform": grid()},
        {"path": paths["ref_fine"], "array": fine, "crs": UTM,
         "transform": grid(0.5, X0, Y0 + 3)},
        {"path": paths["ref_wgs84"], "warp": str(paths["ref"]), "crs": "EPSG:4326"},
        {"path": paths["nocrs"], "array": ref, "crs": None, "transform": grid()},
        {"path": paths["far"], "array": ref, "crs": UTM, "transform": grid(1.0, X0 + 10000)},
        {"path": paths["float"], "array": ref.astype("float32") + 0.5, "crs": UTM,
         "transform": grid()},
    ])  # fmt: skip
    return {"folder": folder, "cls_array": cls, "ref_array": ref,
            **{k: str(v) for k, v in paths.items()}}  # fmt: skip


def pixel_job(rasters, reference: str, **extra) -> dict:
    key = "reference_features" if reference.endswith(".geojson") else "reference_raster"
    return {"tool": "pixel_classification", "classified": rasters["cls"], key: reference,
            "classes": {"1": "water", "2": "forest"}, **extra}  # fmt: skip


def test_same_grid_equals_the_whole_array_computation(rasters, tmp_path):
    report = tmp_path / "pixels.html"
    run = run_job(tmp_path, pixel_job(rasters, rasters["ref"], window_size=64,
                                      report=str(report)))  # fmt: skip
    assert run.rc == 0, run.stdout + run.stderr
    r = run.last
    labels, matrix = expected_matrix(rasters["ref_array"], rasters["cls_array"])
    assert (r["labels"], r["matrix"]) == (labels, matrix)
    assert r["windows"] == 12 and r["window_shape"] == [64, 64]  # 3 x 4 windows of 64
    assert not r["warped"]
    # known differences: 200 pixels 1 -> 2, 50 pixels 3 -> none, 190 pixels 2 -> 3
    assert r["total"] == H * 190
    m = dict(zip(labels, matrix, strict=True))
    assert m[1][1] == 200 and m[3][-1] == 50 and m[2][2] == 190
    assert r["overall_accuracy"] == pytest.approx(1 - 440 / (H * 190))
    assert r["classes"][0]["name"] == "water" and r["classes"][2]["name"] == "3"
    html = report.read_text()
    assert "Confusion matrix" in html and "water (1)" in html and "no class" in html


def test_window_size_changes_nothing(rasters, tmp_path):
    first = run_job(tmp_path, pixel_job(rasters, rasters["ref"], window_size=1024)).last
    other = run_job(tmp_path, pixel_job(rasters, rasters["ref"], window_size=40)).last
    assert first["windows"] == 1  # 40 -> 32, the block size: 5 x 7 windows
    assert other["windows"] == 35 and other["window_shape"] == [32, 32]
    assert first["matrix"] == other["matrix"] and first["kappa"] == other["kappa"]


def test_reference_on_another_grid(rasters, tmp_path):
    run = run_job(tmp_path, pixel_job(rasters, rasters["ref_fine"], window_size=64))
    assert run.rc == 0, run.stdout
    labels, matrix = expected_matrix(rasters["ref_array"], rasters["cls_array"])
    assert run.last["warped"] and (run.last["labels"], run.last["matrix"]) == (labels, matrix)


def test_reference_in_another_crs(rasters, tmp_path):
    run = run_job(tmp_path, pixel_job(rasters, rasters["ref_wgs84"], window_size=64))
    assert run.rc == 0, run.stdout
    r = run.last
    labels, matrix = expected_matrix(rasters["ref_array"], rasters["cls_array"])
    # reprojected twice with nearest neighbour: only pixels along class edges may move
    assert r["warped"] and r["labels"] == labels
    diff = np.abs(np.array(r["matrix"]) - np.array(matrix)).sum()
    assert diff <= 0.03 * r["total"], (r["matrix"], matrix)
    assert r["overall_accuracy"] == pytest.approx(1 - 440 / (H * 190), abs=0.02)


def test_extent(rasters, tmp_path):
    # the top-left 100 x 50 pixels: class 1 and the 200 misclassified pixels only
    extent = [X0, Y0 - 50, X0 + 100, Y0]
    run = run_job(tmp_path, pixel_job(rasters, rasters["ref"], extent=extent, window_size=32))
    assert run.rc == 0, run.stdout
    r = run.last
    assert r["labels"] == [1, 2] and r["matrix"] == [[4800, 200, 0], [0, 0, 0]]
    assert r["windows"] == 8 and r["region"] == [0, 0, 100, 50]


def test_reference_polygons(rasters, tmp_path):
    # polygons with edges on pixel edges: rows 0-49 class 1 (cols 0-99), rows 50-99 class 2
    # (whole width); the later polygon wins where they overlap (rows 40-49, cols 0-9: 2)
    polys = feature_collection(tmp_path / "ref.geojson", [
        (box(X0, Y0 - 50, X0 + 100, Y0), {"class_value": 1}),
        (box(X0, Y0 - 100, X0 + 200, Y0 - 50), {"class_value": 2.0}),
        (box(X0, Y0 - 50, X0 + 10, Y0 - 40), {"class_value": 2}),
    ])  # fmt: skip
    run = run_job(tmp_path, pixel_job(rasters, polys, window_size=48))
    assert run.rc == 0, run.stdout
    ref = np.zeros((H, W), dtype=np.uint8)
    ref[:50, :100] = 1
    ref[50:100] = 2
    ref[40:50, :10] = 2
    labels, matrix = expected_matrix(ref, rasters["cls_array"])
    assert (run.last["labels"], run.last["matrix"]) == (labels, matrix)
    assert run.last["reference"] == "features" and run.last["windows"] == 35


@pytest.mark.parametrize(
    ("which", "extra", "message"),
    [
        ("nocrs", {}, "has no coordinate reference system"),
        ("far", {}, "does not overlap the classified raster"),
        ("float", {}, "holds non-integer values"),
        ("ref", {"extent": [0, 0, 10, 10]}, "does not overlap the classified raster"),
        ("ref", {"reference_features": "/x.geojson"}, "Give exactly one reference"),
        ("ref", {"window_size": 4}, "at least 16 pixels"),
    ],
)
def test_refusals(rasters, tmp_path, which, extra, message):
    report = tmp_path / "r.html"
    data = {**pixel_job(rasters, rasters[which]), **extra, "report": str(report)}
    run = run_job(tmp_path, data)
    assert run.rc == 1 and run.last["kind"] == "input", run.stdout
    assert message in run.last["message"]
    assert not report.exists()


def test_polygon_refusals(rasters, tmp_path):
    far = feature_collection(tmp_path / "far.geojson", [(box(0, 0, 1, 1), {"class_value": 1})])
    run = run_job(tmp_path, pixel_job(rasters, far))
    assert run.rc == 1 and "polygons do not overlap" in run.last["message"]
    named = feature_collection(tmp_path / "n.geojson", [(box(X0, Y0 - 9, X0 + 9, Y0),
                                                         {"class_value": "forest"})])  # fmt: skip
    run = run_job(tmp_path, pixel_job(rasters, named))
    assert run.rc == 1 and "must be whole numbers" in run.last["message"]
    zero = feature_collection(tmp_path / "z.geojson", [(box(X0, Y0 - 9, X0 + 9, Y0),
                                                        {"class_value": 0})])  # fmt: skip
    run = run_job(tmp_path, pixel_job(rasters, zero))
    assert run.rc == 1 and "No pixel of the classified raster has a reference" in run.last[
        "message"]  # fmt: skip


def test_cancel_stops_the_worker_and_writes_no_report(tmp_path):
    big = np.tile(truth(), (8, 8))  # 1200 x 1600, read in 16-pixel windows: 7500 of them
    cls = tmp_path / "big.tif"
    make_rasters(tmp_path, [{"path": cls, "array": big, "crs": UTM, "transform": grid()}])
    report = tmp_path / "big.html"
    job = tmp_path / "job.json"
    job.write_text(json.dumps({
        "tool": "pixel_classification", "classified": str(cls), "reference_raster": str(cls),
        "window_size": 16, "report": str(report)}))  # fmt: skip
    env = {**_env(), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "dlstudio_qgis.engine", "accuracy", str(job)],
                            stdout=subprocess.PIPE, text=True, cwd=REPO, env=env)  # fmt: skip
    for line in proc.stdout:
        message = parse_line(line)
        if message and message["type"] == "progress" and message["value"] > 1:
            os.kill(proc.pid, signal.SIGTERM)
            break
    rest = [parse_line(line) for line in proc.stdout]
    assert proc.wait(timeout=60) == 130
    assert rest[-1]["type"] == "error" and rest[-1]["kind"] == "cancelled"
    assert not report.exists() and not list(tmp_path.glob(".report-*"))
