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

import pytest
from engine_helpers import REPO
from train_support import epoch_logs, package_emd, run_train, train_job

PROBE = Path(__file__).with_name("dlpk_probe.py")
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
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    proc = subprocess.run(
        [sys.executable, str(PROBE), json.dumps(list(packages.values()))],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for model_type, read in zip(packages, json.loads(proc.stdout), strict=True):
        assert read["emd"] == package_emd(Path(packages[model_type]))[0], model_type
        assert read["emd"]["ModelParameters"]["model_type"] == model_type
        assert read["tensors"] > 0 and read["finite"], model_type
        assert read["missing"] == [] and read["unexpected"] == [], model_type
