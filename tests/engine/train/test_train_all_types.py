"""Every model type trains end to end through ``python -m dlstudio_qgis.engine train``, from a
real export of the metadata format it trains from, on a small backbone (RESNET18, or
MOBILENET_V2 for FASTERRCNN, MASKRCNN and DEEPLAB; DARKNET53 for YOLOV3; chip 64, one epoch,
batch 2), and writes a package whose model definition describes it and whose weights
load into the model rebuilt from that definition (read back with ``read_dlpk`` in a
subprocess, dlpk_probe.py: torch stays out of the pytest process)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from engine_helpers import REPO
from train_support import epoch_logs, export, package_emd, run_train, train_job

PROBE = Path(__file__).with_name("dlpk_probe.py")
FINE_TUNE_PROBE = Path(__file__).with_name("finetune_probe.py")
NAMES = ["building", "road"]
#: model type -> (export format, backbone, output classes)
CASES = {
    "SSD": ("PASCAL_VOC_rectangles", "RESNET18", ["__background__", *NAMES]),
    "RETINANET": ("PASCAL_VOC_rectangles", "RESNET18", ["__background__", *NAMES]),
    "FASTERRCNN": ("PASCAL_VOC_rectangles", "MOBILENET_V2", ["__background__", *NAMES]),
    "YOLOV3": ("PASCAL_VOC_rectangles", "DARKNET53", NAMES),  # no background class
    "MASKRCNN": ("RCNN_Masks", "MOBILENET_V2", ["__background__", *NAMES]),
    "UNET": ("Classified_Tiles", "RESNET18", ["background", *NAMES]),
    "PSPNET": ("Classified_Tiles", "RESNET18", ["background", *NAMES]),
    "DEEPLAB": ("Classified_Tiles", "MOBILENET_V2", ["background", *NAMES]),
    "FEATURE_CLASSIFIER": ("Labeled_Tiles", "RESNET18", NAMES),
}
#: export format -> (the emd's ModelType, the task)
KINDS = {
    "PASCAL_VOC_rectangles": ("ObjectDetection", "detection"),
    "RCNN_Masks": ("ObjectDetection", "instance_segmentation"),
    "Classified_Tiles": ("ImageClassification", "semantic_segmentation"),
    "Labeled_Tiles": ("ObjectClassification", "classification"),
}
#: the arguments each model resolves and writes into the emd (besides chip_size)
MODEL_ARGUMENTS = {"SSD": {"grids", "zooms", "ratios"}, "RETINANET": {"scales", "ratios"}}


def _probe_env() -> dict:
    return {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }


@pytest.fixture(scope="module")
def trained(exports, tmp_path_factory):
    """model type -> (job, run): each model trained once, on first use."""
    root = tmp_path_factory.mktemp("all_types")
    runs: dict = {}

    def train(model_type: str):
        if model_type not in runs:
            fmt, backbone, *_ = CASES[model_type]
            job = train_job(
                root,
                exports[fmt],
                model_type.lower(),
                model_type=model_type,
                backbone=backbone,
                batch_size=2,
                arguments="chip_size=64",
            )
            runs[model_type] = job, run_train(root, job)
        return runs[model_type]

    return train


@pytest.mark.parametrize("model_type", list(CASES))
def test_model_type_trains_and_packages(trained, model_type):
    fmt, backbone, outputs = CASES[model_type]
    emd_type, task = KINDS[fmt]
    job, run = trained(model_type)
    assert run.rc == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert all(m is not None for m in run.messages), run.stdout[:2000]
    result = run.last
    assert result["type"] == "result" and result["command"] == "train"
    assert (result["model_type"], result["backbone"]) == (model_type, backbone)
    assert result["epochs_run"] == 1 and result["device"] == "cpu"
    assert result["output"] == job["output"] and Path(job["output"]).is_file()
    assert result["train_chips"] >= 2 and result["validation_chips"] >= 1
    (epoch,) = epoch_logs(run)
    assert math.isfinite(epoch["train_loss"])

    emd, members = package_emd(Path(job["output"]))
    name = model_type.lower()
    assert {f"{name}.emd", f"{name}.pth"} <= set(members)
    assert emd["ModelType"] == emd_type and emd["ModelName"] == model_type
    assert emd["MetaDataMode"] == fmt and emd["ImageHeight"] == emd["ImageWidth"] == 64
    classes = [(c["Value"], c["Name"]) for c in emd["Classes"]]
    assert classes == [(1, "building"), (2, "road")]  # as exported
    params = emd["ModelParameters"]
    assert (params["model_type"], params["backbone"], params["task"]) == (
        model_type,
        backbone,
        task,
    )
    assert params["output_classes"] == outputs
    # the detectors count the classes without their background; segmentation counts it
    assert params["num_classes"] == len(outputs) - (outputs[0] == "__background__")
    assert params["in_channels"] == 3 and params["multi_label"] is False
    assert params["arguments"]["chip_size"] == 64
    assert MODEL_ARGUMENTS.get(model_type, set()) <= set(params["arguments"])
    assert emd["DLStudio"]["job"]["model_type"] == model_type


def test_every_package_reads_back_and_loads(trained):
    """read_dlpk reads each package, and its weights fit the model its emd describes."""
    packages = {t: trained(t)[0]["output"] for t in CASES}
    assert all(Path(p).is_file() for p in packages.values())
    proc = subprocess.run(
        [sys.executable, str(PROBE), json.dumps(list(packages.values()))],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env=_probe_env(),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for model_type, read in zip(packages, json.loads(proc.stdout), strict=True):
        assert read["emd"] == package_emd(Path(packages[model_type]))[0], model_type
        assert read["emd"]["ModelParameters"]["model_type"] == model_type
        assert read["tensors"] > 0 and read["finite"], model_type
        assert read["missing"] == [] and read["unexpected"] == [], model_type


#: the fine-tuning export's classes: reordered, and one the pretrained model never saw
FINE_TUNE_CLASSES = [
    {"value": 3, "name": "tree", "color": "#00ff00"},
    {"value": 2, "name": "road", "color": "#3cb44b"},
    {"value": 1, "name": "building", "color": "#e6194b"},
]


@pytest.fixture(scope="module")
def reordered_export(exports, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fine_tune")
    scene = Path(exports["PASCAL_VOC_rectangles"]).parent
    for name in ("scene.tif", "buildings_samples.geojson"):
        (folder / name).symlink_to(scene / name)
    return export(
        folder,
        folder / "scene.tif",
        "PASCAL_VOC_rectangles",
        classes=FINE_TUNE_CLASSES,
        min_overlap=0.3,
        stride=[32, 32],
    )


@pytest.mark.parametrize(
    ("model_type", "head"),
    [
        # Faster R-CNN: one row per class, four box rows per class
        ("FASTERRCNN", "roi_heads.box_predictor.cls_score.weight"),
        # YOLOv3: per anchor, 5 box and objectness rows, then one row per class
        ("YOLOV3", None),
    ],
)
def test_fine_tuning_maps_the_head_by_class_name(
    trained, reordered_export, tmp_path, model_type, head
):
    """PRETRAINED_MODEL on a real package: the rows of classes found by name keep their
    pretrained weights (a learning rate of 1e-12 leaves them as they were), new classes start
    fresh, and the rest of the network is loaded."""
    pretrained = trained(model_type)[0]["output"]
    fmt, backbone, _ = CASES[model_type]
    job = train_job(
        tmp_path,
        reordered_export,
        f"{model_type.lower()}_tuned",
        model_type=model_type,
        backbone=backbone,
        batch_size=2,
        arguments="chip_size=64",
        pretrained_model=pretrained,
        learning_rate=1e-12,
    )
    run = run_train(tmp_path, job)
    assert run.rc == 0, run.stdout[-3000:] + run.stderr[-3000:]
    logs = " ".join(m["message"] for m in run.of("log"))
    assert "classes matched by name: road, building; new: tree" in logs, logs
    emd, _ = package_emd(Path(job["output"]))
    old_names = CASES[model_type][2]
    new_names = emd["ModelParameters"]["output_classes"]
    assert [n for n in new_names if not n.startswith("__")] == ["tree", "road", "building"]

    proc = subprocess.run(
        [sys.executable, str(FINE_TUNE_PROBE), pretrained, job["output"]],
        capture_output=True, text=True, timeout=300, cwd=REPO, env=_probe_env(),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    tensors = json.loads(proc.stdout)
    assert tensors, "no output-class tensor changed shape"
    checked = 0
    for key, pair in tensors.items():
        old, new = np.array(pair["old"]), np.array(pair["new"])
        n_old, n_new = len(old_names), len(new_names)
        if "bbox_pred" in key:  # class-major: `group` rows per class
            group = len(new) // n_new
            per_old = {c: old[i * group : (i + 1) * group] for i, c in enumerate(old_names)}
            per_new = {c: new[j * group : (j + 1) * group] for j, c in enumerate(new_names)}
            lead_old = lead_new = None
        else:  # group-major: per anchor, `offset` leading rows and then the classes
            anchors = len(new) - len(old)  # one more class adds one row per anchor
            offset = len(new) // anchors - n_new
            size_old, size_new = offset + n_old, offset + n_new
            per_old = {
                c: old[[a * size_old + offset + i for a in range(anchors)]]
                for i, c in enumerate(old_names)
            }
            per_new = {
                c: new[[a * size_new + offset + j for a in range(anchors)]]
                for j, c in enumerate(new_names)
            }
            lead_old = np.concatenate(
                [old[a * size_old : a * size_old + offset] for a in range(anchors)]
            )
            lead_new = np.concatenate(
                [new[a * size_new : a * size_new + offset] for a in range(anchors)]
            )
        for name in ("road", "building", *[n for n in new_names if n.startswith("__")]):
            assert np.allclose(per_new[name], per_old[name], atol=1e-6), (key, name)
        assert not np.allclose(per_new["tree"], per_old["road"], atol=1e-3), key
        if lead_old is not None:
            assert np.allclose(lead_new, lead_old, atol=1e-6), key
        checked += 1
    if head is not None:
        assert head in tensors
    assert checked == len(tensors)
