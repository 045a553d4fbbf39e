"""ChipDataset over real exports of every format (read in a subprocess, dataset_probe.py):
targets per task, normalisation, chip_size crops, IGNORE_CLASSES, augmented masks and boxes
that stay together, and a loader with a worker process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from engine_helpers import REPO

PROBE = Path(__file__).with_name("dataset_probe.py")


@pytest.fixture(scope="module")
def probed(exports) -> dict:
    specs = {
        "RCNN_Masks": ("instance_segmentation", {}),
        "KITTI_rectangles": ("detection", {"chip_size": 48}),
        "PASCAL_VOC_rectangles": ("detection", {}),
        "Classified_Tiles": ("semantic_segmentation", {"chip_size": 40, "ignore_classes": [2]}),
        "Labeled_Tiles": ("classification", {}),
        "MultiLabeled_Tiles": ("classification", {}),
    }
    arg = json.dumps([[str(exports[f]), kind, args] for f, (kind, args) in specs.items()])
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    proc = subprocess.run(
        [sys.executable, str(PROBE), arg],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(zip(specs, json.loads(proc.stdout), strict=True))


def test_normalised_with_the_export_statistics(probed):
    for fmt, out in probed.items():
        assert out["in_channels"] == 3
        assert all(abs(m) < 0.5 for m in out["mean"]), (fmt, out["mean"])
        assert all(0.6 < s < 1.5 for s in out["std"]), (fmt, out["std"])


def test_instance_masks_and_their_boxes_move_together(probed):
    out = probed["RCNN_Masks"]
    assert out["chip_size"] == 64 and out["items"]
    for item in out["items"]:
        assert item["shape"] == [3, 64, 64]
        assert len(item["boxes"]) == len(item["labels"]) == len(item["mask_extents"]) >= 1
        assert item["boxes"] == item["mask_extents"] and set(item["labels"]) == {1}


def test_boxes_cropped_to_the_chip_size(probed):
    out = probed["KITTI_rectangles"]
    assert out["chip_size"] == 48 and out["batches"][0] == [4, 3, 48, 48]
    for item in out["items"]:
        assert item["shape"] == [3, 48, 48]
        for x0, y0, x1, y1 in item["boxes"]:
            assert 0 <= x0 < x1 <= 48 and 0 <= y0 < y1 <= 48 and x1 - x0 >= 2
    voc = probed["PASCAL_VOC_rectangles"]
    assert all(item["labels"] == [1] for item in voc["items"] if not item["augment"])


def test_class_masks_with_ignored_classes(probed):
    out = probed["Classified_Tiles"]
    assert out["chip_size"] == 40
    values = set()
    for item in out["items"]:
        assert item["shape"] == [3, 40, 40] and item["dtype"] == "torch.int64"
        values |= set(item["target"])
    assert values == {0, 1, -100}  # background, building; road (2) ignored


def test_single_and_multi_label_targets(probed):
    single, multi = probed["Labeled_Tiles"], probed["MultiLabeled_Tiles"]
    assert not single["multi_label"] and multi["multi_label"]
    assert {i["target"] for i in single["items"]} == {0, 1}
    for item in multi["items"]:
        assert len(item["target"]) == 2 and set(item["target"]) <= {0.0, 1.0}
        assert item["dtype"] == "torch.float32" and sum(item["target"]) >= 1
