"""``python -m dlstudio_qgis.engine train job.json`` end to end, on exports the real export
command made: a segmentation model cancelled and resumed, a detector, a classifier with the
learning-rate range test, and the CLI's answer to an export of the wrong format."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
from pathlib import Path

from engine_helpers import REPO
from train_support import epoch_logs, package_emd, run_train, train_job, write_json

from dlstudio_qgis.engine.protocol import parse_line
from dlstudio_qgis.engine.train.command import CANCEL_AFTER_ENV


def _assert_stream(run) -> None:
    """Every stdout line is a protocol message; progress stays in 0-100 and ends at 100."""
    assert all(m is not None for m in run.messages), run.stdout[:2000]
    values = [m["value"] for m in run.of("progress")]
    assert values and all(0 <= v <= 100 for v in values)
    assert values[-1] == 100


def test_unet_cancelled_after_epoch_1_resumes_and_packages(tmp_path, exports):
    job = train_job(
        tmp_path,
        exports["Classified_Tiles"],
        "unet",
        max_epochs=2,
        arguments="class_balancing=True;focal_loss=True;mixup=True",
    )
    output, checkpoints = Path(job["output"]), tmp_path / "out" / "unet.checkpoints"

    first = run_train(tmp_path, job, env={CANCEL_AFTER_ENV: "1"})
    assert first.rc == 130, first.stdout[-3000:] + first.stderr[-3000:]
    assert first.last["type"] == "error" and first.last["kind"] == "cancelled"
    assert [e["epoch"] for e in epoch_logs(first)] == [1]
    assert (checkpoints / "last.pt").is_file() and (checkpoints / "best.pt").is_file()
    assert not output.exists()

    second = run_train(tmp_path, job)
    assert second.rc == 0, second.stdout[-3000:] + second.stderr[-3000:]
    _assert_stream(second)
    result = second.last
    assert result["type"] == "result" and result["command"] == "train"
    assert result["resumed_from"] == 1 and result["epochs_run"] == 2
    assert result["output"] == str(output) and result["device"] == "cpu"
    assert result["learning_rate"] == 1e-3 and result["learning_rate_found"] is False
    assert result["best_epoch"] in (1, 2) and result["seconds"] > 0
    assert "miou" in result["metrics"] and "pixel_accuracy" in result["metrics"]
    messages = [m["message"] for m in second.of("log")]
    assert any("Resuming from the checkpoint of epoch 1" in m for m in messages)
    (epoch,) = epoch_logs(second)  # only epoch 2 was trained again
    assert epoch["epoch"] == 2 and math.isfinite(epoch["train_loss"])
    assert math.isfinite(epoch["valid_loss"]) and epoch["lr"] > 0 and "eta_s" in epoch
    assert set(epoch["metrics"]["iou_per_class"]) == {"background", "building", "road"}
    assert not checkpoints.exists()  # removed after the package was written

    emd, members = package_emd(output)
    assert {"unet.emd", "unet.pth", "show_results.png", "model_metrics.html"} <= set(members)
    assert emd["Framework"] == "PyTorch" and emd["ModelConfiguration"] == "DLStudio"
    assert emd["ModelType"] == "ImageClassification" and emd["ModelFile"] == "unet.pth"
    assert "InferenceFunction" not in emd
    assert emd["ImageHeight"] == emd["ImageWidth"] == 64 and emd["ExtractBands"] == [0, 1, 2]
    assert [c["Name"] for c in emd["Classes"]] == ["building", "road"]
    params = emd["ModelParameters"]
    assert (params["model_type"], params["backbone"]) == ("UNET", "RESNET18")
    assert params["output_classes"] == ["background", "building", "road"]
    assert params["arguments"]["chip_size"] == 64 and params["arguments"]["class_balancing"]
    assert len(emd["NormalizationStats"]["band_mean_values"]) == 3
    assert emd["Metrics"]["epochs"] == 2 and "miou" in emd["Metrics"]
    assert emd["DLStudio"]["job"]["model_type"] == "UNET"


def test_a_killed_worker_resumes_from_its_last_epoch(tmp_path, exports):
    """SIGKILL (no chance to clean up) right after the first epoch's line: the rerun of the
    same job resumes from that epoch's checkpoint and packages; the killed run left no
    package."""
    job = train_job(tmp_path, exports["Classified_Tiles"], "killed", max_epochs=3,
                    stop_training=False)  # fmt: skip
    path = write_json(tmp_path / "killed_job.json", job)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "dlstudio_qgis.engine", "train", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO, env=env,
    )  # fmt: skip
    try:
        for line in proc.stdout:
            message = parse_line(line)
            if message and message["type"] == "log" and "epoch" in message:
                proc.kill()  # the checkpoint is written before the epoch's line
                break
    finally:
        proc.kill()
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not Path(job["output"]).exists()
    assert not list(Path(job["output"]).parent.glob("*.partial"))

    again = run_train(tmp_path, job)
    assert again.rc == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert again.last["resumed_from"] >= 1 and again.last["epochs_run"] == 3
    assert [e["epoch"] for e in epoch_logs(again)] == list(range(again.last["resumed_from"] + 1, 4))
    assert Path(job["output"]).is_file()


def test_ssd_trains_on_pascal_voc(tmp_path, exports):
    job = train_job(tmp_path, exports["PASCAL_VOC_rectangles"], "ssd", model_type="SSD")
    run = run_train(tmp_path, job)
    assert run.rc == 0, run.stdout[-3000:] + run.stderr[-3000:]
    _assert_stream(run)
    (epoch,) = epoch_logs(run)
    assert math.isfinite(epoch["train_loss"]) and set(epoch["train_losses"]) == {
        "bbox_regression",
        "classification",
    }
    assert set(epoch["metrics"]) == {"map", "ap_per_class"}
    assert 0 <= run.last["metrics"]["map"] <= 1
    emd, _ = package_emd(Path(job["output"]))
    assert emd["ModelType"] == "ObjectDetection" and emd["ModelName"] == "SSD"
    assert emd["ModelParameters"]["output_classes"] == ["__background__", "building", "road"]
    assert emd["ModelParameters"]["arguments"]["grids"]  # the model's resolved arguments


def test_feature_classifier_finds_its_learning_rate(tmp_path, exports):
    job = train_job(
        tmp_path,
        exports["Labeled_Tiles"],
        "fc",
        model_type="FEATURE_CLASSIFIER",
        learning_rate=0,
        batch_size=2,
        stop_training=False,
    )
    run = run_train(tmp_path, job)
    assert run.rc == 0, run.stdout[-3000:] + run.stderr[-3000:]
    _assert_stream(run)
    result = run.last
    assert result["learning_rate_found"] is True
    assert 1e-7 <= result["learning_rate"] <= 1.0
    assert any("Learning rate range test" in m["message"] for m in run.of("log"))
    assert set(result["metrics"]) == {"accuracy", "f1"}
    emd, _ = package_emd(Path(job["output"]))
    assert emd["ModelType"] == "ObjectClassification"
    assert emd["DLStudio"]["lr_finder"]["lr"] == result["learning_rate"]


def test_cli_refuses_an_export_of_the_wrong_format(tmp_path, exports):
    job = train_job(tmp_path, exports["PASCAL_VOC_rectangles"], "wrong")
    run = run_train(tmp_path, job)
    assert run.rc == 1 and run.last["type"] == "error" and run.last["kind"] == "input"
    assert (
        "UNET trains from Classified_Tiles; this export is PASCAL_VOC_rectangles"
        in (run.last["message"])
    )
    assert "export again with METADATA_FORMAT=Classified_Tiles" in run.last["message"]
    assert not (tmp_path / "out").exists()
