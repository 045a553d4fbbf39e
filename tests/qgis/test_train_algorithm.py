"""dlstudio:traindeeplearningmodel: parameters, refusals before any worker starts, the project
job record, and one real (tiny) training run through the engine worker.

torch never loads in this (QGIS) process: the package is checked by read_dlpk in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from infer_packages import emd, fake_package
from qgis.core import QgsApplication, QgsProcessingException
from qgis_support import ANALYST, COLLECTOR, OWNER, Capture, run

from dlstudio_qgis import settings
from dlstudio_qgis.core import Project
from dlstudio_qgis.engine.train.job import BACKBONES, MODEL_TYPES, PROCESSORS
from dlstudio_qgis.processing import traindeeplearningmodel as alg_module
from dlstudio_qgis.processing.base import FLAG_ADVANCED
from dlstudio_qgis.processing.worker import WorkerCancelled

REPO = Path(__file__).resolve().parents[2]
PARAMS = [
    "IN_FOLDER",
    "OUTPUT",
    "MODEL_TYPE",
    "BACKBONE_MODEL",
    "ARGUMENTS",
    "BATCH_SIZE",
    "MAX_EPOCHS",
    "LEARNING_RATE",
    "VALIDATION_PERCENT",
    "PRETRAINED_MODEL",
    "STOP_TRAINING",
    "FREEZE_MODEL",
    "PROCESSOR_TYPE",
    "OVERWRITE_MODEL",
    "PROJECT",
    "USER",
    "SEED",
    "LOADER_WORKERS",
]


def _alg():
    return QgsApplication.processingRegistry().algorithmById("dlstudio:traindeeplearningmodel")


def fake_export(folder: Path, fmt: str = "Classified_Tiles") -> str:
    """Just enough of an export for the QGIS side's checks (the worker is never reached)."""
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir()
    emd = {
        "Framework": "PyTorch",
        "MetaDataMode": fmt,
        "ImageHeight": 64,
        "ImageWidth": 64,
        "Classes": [{"Value": 1, "Name": "building", "Color": [255, 0, 0]}],
    }
    (folder / "esri_model_definition.emd").write_text(json.dumps(emd))
    return str(folder)


@pytest.fixture
def no_worker(monkeypatch):
    """Fails the test if the worker would start; records the calls otherwise made."""
    calls = []

    def refuse(command, job, feedback, workdir, **options):
        calls.append((command, job))
        raise AssertionError("the worker must not start")

    monkeypatch.setattr(alg_module, "run_engine", refuse)
    return calls


def test_parameters_defaults_and_outputs():
    alg = _alg()
    assert [p.name() for p in alg.parameterDefinitions()] == PARAMS
    d = {p.name(): p for p in alg.parameterDefinitions()}
    assert d["MODEL_TYPE"].options() == list(MODEL_TYPES) and len(MODEL_TYPES) == 9
    assert d["BACKBONE_MODEL"].options() == list(BACKBONES) and len(BACKBONES) == 19
    assert d["PROCESSOR_TYPE"].options() == list(PROCESSORS)
    assert d["BACKBONE_MODEL"].defaultValue() == "RESNET34"
    assert d["PROCESSOR_TYPE"].defaultValue() == "AUTO"
    for name, default in (
        ("BATCH_SIZE", 8),
        ("MAX_EPOCHS", 20),
        ("LEARNING_RATE", 0),
        ("VALIDATION_PERCENT", 10),
        ("STOP_TRAINING", True),
        ("FREEZE_MODEL", True),
        ("OVERWRITE_MODEL", False),
        ("SEED", 0),
        ("LOADER_WORKERS", 0),
    ):
        assert d[name].defaultValue() == default, name
    advanced = {n for n, p in d.items() if p.flags() & FLAG_ADVANCED}
    assert advanced == {"PROJECT", "USER", "SEED", "LOADER_WORKERS"}
    for name in ("PRETRAINED_MODEL", "ARGUMENTS", "PROJECT", "USER"):
        assert d[name].flags() & d[name].FlagOptional, name
    assert "dlpk" in d["OUTPUT"].fileFilter()
    outputs = {o.name() for o in alg.outputDefinitions()}
    assert outputs == {
        "OUTPUT",
        "EPOCHS",
        "BEST_EPOCH",
        "LEARNING_RATE",
        "VALID_LOSS",
        "METRICS",
        "JOB_ID",
    }
    help_text = alg.shortHelpString()
    assert "UNET" in help_text and "ARGUMENTS" in help_text and "grids=[4]" in help_text


def test_format_tables_match_the_engine():
    """The QGIS side's copy of the model-type tables agrees with engine/models/registry.py."""
    code = (
        "import json\n"
        "from dlstudio_qgis.engine.models.registry import METADATA_FORMATS, SUPPORTED\n"
        "print(json.dumps({'formats': {k: list(v) for k, v in METADATA_FORMATS.items()},\n"
        "  'supported': {k: list(v) for k, v in SUPPORTED.items()}}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    engine = json.loads(out.stdout.strip().splitlines()[-1])
    assert engine["formats"] == {k: list(v) for k, v in alg_module.FORMATS.items()}
    for model_type, backbones in engine["supported"].items():
        only = alg_module.ONLY_BACKBONE.get(model_type)
        expected = (
            [only] if only else [b for b in BACKBONES if b not in alg_module.ONLY_BACKBONE.values()]
        )
        assert backbones == expected, model_type


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"MODEL_TYPE": "UNET", "ARGUMENTS": "grids=[4]"},
            "UNET does not take the argument(s) grids; it takes chip_size, class_balancing, "
            "focal_loss, ignore_classes, mixup",
        ),
        (
            {"MODEL_TYPE": "SSD", "ARGUMENTS": "grids=[4];focal_loss=True"},
            "SSD does not take the argument(s) focal_loss; it takes chip_size, grids, ratios, "
            "zooms",
        ),
        ({"MODEL_TYPE": "UNET", "ARGUMENTS": "chip_size"}, "is not name=value"),
        (
            {"MODEL_TYPE": "SSD"},
            "SSD trains from PASCAL_VOC_rectangles or KITTI_rectangles; "
            "this export is Classified_Tiles",
        ),
        (
            {"MODEL_TYPE": "UNET", "BACKBONE_MODEL": "DARKNET53"},
            "DARKNET53 backbone is for YOLOV3 only",
        ),
        ({"MODEL_TYPE": "UNET", "PRETRAINED_MODEL": "/nowhere/model.dlpk"}, "does not exist"),
        ({"MODEL_TYPE": "UNET", "OUTPUT": "/tmp/model.zip"}, "must be a deep learning package"),
    ],
)
def test_refused_before_the_worker_starts(tmp_path, no_worker, params, message):
    folder = fake_export(tmp_path / "export")
    args = {"IN_FOLDER": folder, "OUTPUT": str(tmp_path / "m.dlpk"), **params}
    with pytest.raises(QgsProcessingException) as err:
        run("traindeeplearningmodel", **args)
    assert message in str(err.value)
    assert not no_worker
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


@pytest.mark.parametrize(
    ("model_type", "names", "message"),
    [
        (
            "UNET",
            ["tree", "water"],
            "has 2 classes (tree, water) and the training data 1 (building), with no class name "
            "in common, so its class layers cannot be used",
        ),
        ("PSPNET", ["building"], "is a PSPNET model on RESNET34; this job trains UNET on RESNET34"),
    ],
)
def test_pretrained_model_that_does_not_fit_is_refused(
    tmp_path, no_worker, model_type, names, message
):
    classes = [{"Value": i + 1, "Name": n} for i, n in enumerate(names)]
    params = {"model_type": model_type, "backbone": "RESNET34"}
    package = fake_package(
        tmp_path / "old.dlpk", emd(model_type, Classes=classes, ModelParameters=params)
    )
    with pytest.raises(QgsProcessingException) as err:
        run(
            "traindeeplearningmodel",
            IN_FOLDER=fake_export(tmp_path / "export"),
            OUTPUT=str(tmp_path / "m.dlpk"),
            MODEL_TYPE="UNET",
            PRETRAINED_MODEL=package,
        )
    assert message in str(err.value)
    assert not no_worker and not (tmp_path / "m.dlpk").exists()


def test_yolov3_backbone(tmp_path, no_worker):
    folder = fake_export(tmp_path / "export", "PASCAL_VOC_rectangles")
    with pytest.raises(QgsProcessingException, match="YOLOV3 works with the DARKNET53 backbone"):
        run(
            "traindeeplearningmodel",
            IN_FOLDER=folder,
            OUTPUT=str(tmp_path / "m.dlpk"),
            MODEL_TYPE="YOLOV3",
            BACKBONE_MODEL="RESNET34",
        )
    # left at its default, the backbone becomes DARKNET53
    with pytest.raises(QgsProcessingException, match="must not start"):
        run(
            "traindeeplearningmodel",
            IN_FOLDER=folder,
            OUTPUT=str(tmp_path / "m.dlpk"),
            MODEL_TYPE="YOLOV3",
        )
    assert no_worker[0][1]["backbone"] == "DARKNET53"


def test_existing_output_and_bad_folder_refused(tmp_path, no_worker):
    folder = fake_export(tmp_path / "export")
    out = tmp_path / "m.dlpk"
    out.write_bytes(b"an earlier package")
    with pytest.raises(QgsProcessingException, match="already exists; set OVERWRITE_MODEL"):
        run("traindeeplearningmodel", IN_FOLDER=folder, OUTPUT=str(out), MODEL_TYPE="UNET")
    assert out.read_bytes() == b"an earlier package"
    (tmp_path / "plain").mkdir()
    for lacking in ("esri_model_definition.emd and images/", "images/"):
        with pytest.raises(QgsProcessingException) as err:
            run(
                "traindeeplearningmodel",
                IN_FOLDER=str(tmp_path / "plain"),
                OUTPUT=str(tmp_path / "n.dlpk"),
                MODEL_TYPE="UNET",
            )
        assert f"is not exported training data: it lacks {lacking}. Give the" in str(err.value)
        (tmp_path / "plain" / "esri_model_definition.emd").write_text("{}")
    assert not no_worker


def test_collector_refused_with_project(make_project, tmp_path, no_worker):
    path = make_project(grid=None)
    folder = fake_export(tmp_path / "export")
    with pytest.raises(QgsProcessingException, match="'carl' is collector.*owner or analyst"):
        run(
            "traindeeplearningmodel",
            IN_FOLDER=folder,
            OUTPUT=str(tmp_path / "m.dlpk"),
            MODEL_TYPE="UNET",
            PROJECT=path,
            USER=COLLECTOR,
        )
    assert not no_worker
    assert Project.open(path, OWNER).jobs() == []


def test_job_written_and_recorded(make_project, tmp_path, monkeypatch):
    """What the worker gets, and the project's record of a run that succeeds, fails or is
    cancelled (a fake worker stands in for the engine)."""
    path = make_project(grid=None)
    folder = fake_export(tmp_path / "export")
    out = tmp_path / "m.dlpk"
    outcome = {}

    def fake(command, job, feedback, workdir, memory_hint=""):
        outcome["job"] = (command, job, Path(workdir).is_dir())
        outcome["hint"] = memory_hint
        if outcome.get("raise"):
            (tmp_path / ".m.dlpk.abc123.partial").write_bytes(b"half")  # killed mid-write
            raise outcome["raise"]
        return {
            "type": "result",
            "command": "train",
            "output": str(out),
            "epochs_run": 3,
            "best_epoch": 2,
            "learning_rate": 0.002,
            "valid_loss": 0.25,
            "metrics": {"accuracy": 0.9, "miou": float("nan")},
            "seconds": 1.5,
        }

    monkeypatch.setattr(alg_module, "run_engine", fake)
    feedback = Capture()
    result = run(
        "traindeeplearningmodel",
        feedback,
        IN_FOLDER=folder,
        OUTPUT=str(out),
        MODEL_TYPE="UNET",
        BACKBONE_MODEL="RESNET18",
        ARGUMENTS="class_balancing=True; ignore_classes=[0]",
        MAX_EPOCHS=3,
        LEARNING_RATE=0.002,
        PROCESSOR_TYPE="CPU",
        SEED=5,
        PROJECT=path,
        USER=ANALYST,
    )
    command, job, had_workdir = outcome["job"]
    assert command == "train" and had_workdir
    assert outcome["hint"].startswith("Lower BATCH_SIZE (it was 8; try 4)")
    assert job["kind"] == "train" and job["in_folder"] == folder and job["output"] == str(out)
    assert job["arguments"] == {"class_balancing": True, "ignore_classes": [0]}
    assert (
        job["model_type"],
        job["backbone"],
        job["max_epochs"],
        job["learning_rate"],
        job["processor_type"],
        job["seed"],
        job["overwrite"],
    ) == ("UNET", "RESNET18", 3, 0.002, "CPU", 5, False)
    assert job["project"]["user"] == ANALYST and job["project"]["job_id"] == result["JOB_ID"]
    assert result["OUTPUT"] == str(out) and result["EPOCHS"] == 3 and result["BEST_EPOCH"] == 2
    assert result["LEARNING_RATE"] == 0.002 and result["VALID_LOSS"] == 0.25
    assert json.loads(result["METRICS"]) == {"accuracy": 0.9, "miou": None}
    assert "Trained 3 epochs" in feedback.text
    (rec,) = Project.open(path, OWNER).jobs()
    assert (rec["kind"], rec["status"], rec["submitted_by"]) == ("train", "succeeded", ANALYST)
    assert rec["result"]["epochs_run"] == 3 and rec["parameters"]["model_type"] == "UNET"

    for exc, status in (
        (QgsProcessingException("the worker failed"), "failed"),
        (WorkerCancelled("Cancelled: stopped"), "cancelled"),
    ):
        outcome["raise"] = exc
        with pytest.raises(QgsProcessingException):
            run(
                "traindeeplearningmodel",
                IN_FOLDER=folder,
                OUTPUT=str(out),
                MODEL_TYPE="UNET",
                OVERWRITE_MODEL=True,
                PROJECT=path,
                USER=OWNER,
            )
        assert Project.open(path, OWNER).jobs()[-1]["status"] == status
        assert not list(tmp_path.glob(".m.dlpk.*.partial"))  # the kill's leftovers removed


def test_a_worker_killed_for_memory_names_a_smaller_batch(tmp_path):
    """The system's out-of-memory killer leaves the worker no word: the algorithm's message
    names the batch size to try (a real worker process that SIGKILLs itself)."""
    python = tmp_path / "python"
    python.write_text('#!/bin/sh\necho \'{"type": "progress", "value": 5}\'\nkill -9 $$\n')
    python.chmod(0o755)
    saved = settings._get(settings.WORKER_PYTHON_KEY)
    settings.set_worker_python(str(python))
    out = tmp_path / "m.dlpk"
    try:
        with pytest.raises(QgsProcessingException) as err:
            run(
                "traindeeplearningmodel",
                IN_FOLDER=fake_export(tmp_path / "export"),
                OUTPUT=str(out),
                MODEL_TYPE="UNET",
                BATCH_SIZE=16,
            )
    finally:
        settings.set_worker_python(saved or None)
    text = str(err.value)
    assert "The train worker was killed by SIGKILL" in text and "out-of-memory killer" in text
    assert "Lower BATCH_SIZE (it was 16; try 8), then chip_size in ARGUMENTS" in text
    assert "WORKERS or smaller tiles" not in text  # the export's advice
    assert not out.exists() and not list(tmp_path.glob(".m.dlpk.*"))


# --- a real run ----------------------------------------------------------------------------


def _engine(*args) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-m", "dlstudio_qgis.engine", *map(str, args)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


CHECK_PACKAGE = """
import json, sys
from dlstudio_qgis.engine.train.package import read_dlpk
p = read_dlpk(sys.argv[1])
print(json.dumps({"emd": p.emd, "members": p.members, "tensors": len(p.state_dict),
                  "finite": all(bool(t.float().isfinite().all()) for t in p.state_dict.values())}))
"""


def test_real_training_run(tmp_path):
    scene = _engine("synth-scene", "-o", tmp_path / "scene.tif", "--size", 256, "--no-overviews")
    export = tmp_path / "export"
    run(
        "exporttrainingdata",
        INPUT_RASTER=scene["output"],
        INPUT_SAMPLES=scene["buildings"],
        CLASS_VALUE_FIELD="class_name",
        OUTPUT_FOLDER=str(export),
        METADATA_FORMAT="Classified_Tiles",
        TILE_SIZE_X=64,
        TILE_SIZE_Y=64,
        STRIDE_X=64,
        STRIDE_Y=64,
        OUTPUT_NOFEATURE_TILES=True,
        WORKERS=1,
    )
    out = tmp_path / "models" / "roofs.dlpk"
    feedback = Capture()
    result = run(
        "traindeeplearningmodel",
        feedback,
        IN_FOLDER=str(export),
        OUTPUT=str(out),
        MODEL_TYPE="UNET",
        BACKBONE_MODEL="RESNET18",
        MAX_EPOCHS=1,
        BATCH_SIZE=4,
        LEARNING_RATE=0.001,
        VALIDATION_PERCENT=25,
        PROCESSOR_TYPE="CPU",
        ARGUMENTS="chip_size=64",
    )
    assert result["OUTPUT"] == str(out) and out.is_file()
    assert result["EPOCHS"] == 1 and result["LEARNING_RATE"] == pytest.approx(0.001)
    assert isinstance(json.loads(result["METRICS"]), dict)
    check = subprocess.run(
        [sys.executable, "-c", CHECK_PACKAGE, str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert check.returncode == 0, check.stderr
    package = json.loads(check.stdout.strip().splitlines()[-1])
    emd = package["emd"]
    assert emd["Framework"] == "PyTorch" and emd["ModelFile"] == "roofs.pth"
    assert [c["Name"] for c in emd["Classes"]] == ["building"]
    assert {"roofs.emd", "roofs.pth", "model_metrics.html", "loss_graph.png"} <= set(
        package["members"]
    )
    assert package["tensors"] > 10 and package["finite"]
    left = sorted(p.name for p in out.parent.iterdir() if not p.name.endswith(".checkpoints"))
    assert left == ["roofs.dlpk"]
