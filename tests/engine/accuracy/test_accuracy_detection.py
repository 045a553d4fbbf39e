"""The ``accuracy`` worker command, object detection: GeoJSON in, figures and a report out."""

from __future__ import annotations

import json

import pytest
from accuracy_support import box, feature_collection, run_job

# The hand case of test_accuracy_metrics.py (class 1: AP 11/12, precision 3/4, recall 1),
# as polygons, plus class 2 (one ground truth, one detection elsewhere), class 3 (a detection,
# no ground truth) and class 4 (ground truth, never detected).
GT = [
    (box(0, 0, 10, 10), {"class_value": 1}),
    (box(20, 0, 30, 10), {"class_value": 1}),
    (box(40, 0, 50, 10), {"class_value": 1}),
    (box(0, 20, 10, 30), {"class_value": 2}),
    (box(60, 60, 70, 70), {"class_value": 4}),
]
DETS = [
    (box(0, 0, 10, 10), {"class_value": 1, "confidence": 0.9}),
    (box(21, 0, 31, 10), {"class_value": 1, "confidence": 0.8}),
    (box(0, 0, 10, 5), {"class_value": 1, "confidence": 0.7}),
    (box(40, 0, 45, 10), {"class_value": 1, "confidence": 0.6}),
    (box(100, 100, 110, 110), {"class_value": 2, "confidence": 0.95}),
    (box(0, 20, 10, 30), {"class_value": 3, "confidence": 0.5}),
]


def job(tmp_path, dets=DETS, gts=GT, **extra) -> dict:
    return {
        "tool": "object_detection",
        "detections": feature_collection(tmp_path / "dets.geojson", dets),
        "ground_truth": feature_collection(tmp_path / "gt.geojson", gts),
        "classes": {"1": "car", "2": "truck", "3": "bus", "4": "boat"},
        **extra,
    }


def test_hand_case_through_the_worker(tmp_path):
    report = tmp_path / "out" / "accuracy.html"
    run = run_job(tmp_path, job(tmp_path, report=str(report)))
    assert run.rc == 0, run.stdout + run.stderr
    result = run.last
    assert result["type"] == "result" and result["tool"] == "object_detection"
    rows = {c["value"]: c for c in result["classes"]}
    assert list(rows) == [1, 2, 3, 4]
    car = rows[1]
    assert (car["name"], car["tp"], car["fp"], car["fn"]) == ("car", 3, 1, 0)
    assert car["ap"] == pytest.approx(11 / 12) and car["precision"] == pytest.approx(0.75)
    assert (rows[3]["recall"], rows[3]["ap"]) == (None, None)
    assert (rows[4]["precision"], rows[4]["recall"], rows[4]["ap"]) == (None, 0.0, 0.0)
    s = result["summary"]
    assert s["map"] == pytest.approx(11 / 36)
    assert (s["precision"], s["recall"]) == (pytest.approx(0.5), pytest.approx(0.6))
    progress = [p["value"] for p in run.of("progress")]
    assert progress == sorted(progress) and progress[-1] == 100
    html = report.read_text()
    assert "<h1>Object detection accuracy</h1>" in html and "car" in html and "0.9167" in html
    assert not list(report.parent.glob(".report-*"))  # written through a temporary file


def test_polygon_iou_and_min_iou(tmp_path):
    # an L-shaped ground truth and a detection covering its bounding box: the box IoU would
    # be 1, the polygon IoU is 75/100
    ell = {"type": "Polygon", "coordinates": [[[0, 0], [10, 0], [10, 5], [5, 5], [5, 10],
                                               [0, 10], [0, 0]]]}  # fmt: skip
    gts = [(ell, {"class_value": 1})]
    dets = [(box(0, 0, 10, 10), {"class_value": 1, "confidence": 1})]
    for min_iou, tp in ((0.75, 1), (0.76, 0)):
        run = run_job(tmp_path, job(tmp_path, dets, gts, min_iou=min_iou))
        assert run.rc == 0, run.stdout
        assert run.last["classes"][0]["tp"] == tp


def test_mask_keeps_objects_whose_centre_is_inside(tmp_path):
    # the mask covers x < 25: C (centre x 45) and d4 (42.5) leave; B (25, on the edge) and
    # d2 (26) -- B stays (on the edge counts), d2 leaves, so B is missed
    mask = feature_collection(tmp_path / "mask.geojson", [(box(-5, -5, 25, 15), {})])
    dets, gts = DETS[:4], GT[:3]
    run = run_job(tmp_path, job(tmp_path, dets, gts, mask=mask))
    assert run.rc == 0, run.stdout
    car = run.last["classes"][0]
    assert (car["ground_truth"], car["detections"], car["tp"], car["fp"], car["fn"]) == (
        2, 2, 1, 1, 1)  # fmt: skip
    assert run.last["masked_out"] == {"detections": 2, "ground_truth": 1}


def test_invalid_and_unusable_geometries(tmp_path):
    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [10, 10], [10, 0], [0, 10], [0, 0]]]}
    dets = [
        (bowtie, {"class_value": 1, "confidence": 0.9}),  # repaired: two triangles
        ({"type": "Point", "coordinates": [1, 1]}, {"class_value": 1}),
        (box(0, 0, 10, 10), {"class_value": None}),
    ]
    run = run_job(tmp_path, job(tmp_path, dets, [(box(0, 0, 10, 10), {"class_value": 1})]))
    assert run.rc == 0, run.stdout
    car = run.last["classes"][0]
    assert car["detections"] == 1 and car["tp"] == 1  # the bow tie covers half: IoU 0.5
    assert run.last["skipped"]["detections"] == {"without a polygon": 1,
                                                 "without a class value": 1}  # fmt: skip


def test_string_class_values_and_no_detections(tmp_path):
    gts = [(box(0, 0, 10, 10), {"class_value": "car"})]
    run = run_job(tmp_path, job(tmp_path, [], gts))
    assert run.rc == 0, run.stdout
    row = run.last["classes"][0]
    assert (row["value"], row["precision"], row["recall"], row["ap"]) == ("car", None, 0.0, 0.0)
    assert run.last["summary"]["precision"] is None and run.last["summary"]["map"] == 0.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ground_truth": []}, "There is no ground truth to compare"),
        ({"mask": [(box(500, 500, 510, 510), {"class_value": 1})]},
         "no ground truth inside the mask"),
        ({"mask": []}, "The mask has no polygons"),
        ({"min_iou": 0}, "MIN_IOU is in (0, 1]"),
        ({"detections": None}, "needs 'detections'"),
    ],
)  # fmt: skip
def test_refusals(tmp_path, change, message):
    data = job(tmp_path, report=str(tmp_path / "r.html"))
    for key, value in change.items():
        if isinstance(value, list):
            value = feature_collection(tmp_path / f"{key}.geojson", value)
        data[key] = value
    run = run_job(tmp_path, data)
    assert run.rc == 1 and run.last["type"] == "error", run.stdout
    assert run.last["kind"] == "input" and message in run.last["message"]
    assert not (tmp_path / "r.html").exists()


def test_unreadable_inputs(tmp_path):
    data = job(tmp_path)
    (tmp_path / "bad.geojson").write_text("{not json")
    run = run_job(tmp_path, {**data, "ground_truth": str(tmp_path / "bad.geojson")})
    assert run.rc == 1 and "is not valid GeoJSON" in run.last["message"]
    run = run_job(tmp_path, {**data, "detections": str(tmp_path / "missing.geojson")})
    assert run.rc == 1 and "Cannot read the detections" in run.last["message"]
    (tmp_path / "list.geojson").write_text(json.dumps([1, 2]))
    run = run_job(tmp_path, {**data, "detections": str(tmp_path / "list.geojson")})
    assert run.rc == 1 and "not a GeoJSON FeatureCollection" in run.last["message"]
    run = run_job(tmp_path, {**data, "detections": "relative.geojson"})
    assert run.rc == 1 and "must be an absolute path" in run.last["message"]
