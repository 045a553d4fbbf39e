"""Long jobs from the dock, as QGIS tasks (the UI thread keeps turning): a real export and a
real one-epoch training through the engine worker, with the epoch, loss and ETA shown."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from qgis.core import QgsApplication, QgsProject
from qgis_support import ANALYST, COLLECTOR, ORIGIN, unit_ids_by_name
from ui_support import make_canvas, wait_until

from dlstudio_qgis.core import Project, rectangle
from dlstudio_qgis.ui import jobs
from dlstudio_qgis.ui.projectdock import ProjectDock
from dlstudio_qgis.ui.session import ProjectSession

X0, Y1 = ORIGIN


@pytest.fixture
def reviewed_project(make_project, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the worker inherits it (shared machine)
    path = make_project("CLASSIFY_PIXELS")
    ids = unit_ids_by_name(path)
    carl, ann = Project.open(path, COLLECTOR), Project.open(path, ANALYST)
    for k in range(4):
        x, y = X0 + 10 + 45 * (k % 2), Y1 - 10 - 45 * (k // 2)
        carl.add_sample(rectangle(x, y - 30, x + 30, y), 1 + k % 2)
    carl.mark_unit_complete(ids["R1C1"])
    ann.review_samples([s.fid for s in ann.samples()], "approved")
    ann.finish_review(ids["R1C1"], "reviewed")
    canvas = make_canvas()
    session = ProjectSession(canvas, poll_ms=100000)
    dock = ProjectDock(session)
    session.open(path, ANALYST)
    yield path, session, dock
    session.close()
    canvas.deleteLater()
    QgsProject.instance().removeAllMapLayers()


def run_job(dock, alg, params, timeout=300.0):
    statuses, ticks = [], []
    dock.runner.status.connect(statuses.append)
    assert dock.runner.start(alg, params)
    assert not dock.runner.start(alg, params)  # one at a time
    t0 = time.monotonic()
    heartbeat = [0]

    def ui_alive():  # the event loop keeps running while the worker works
        heartbeat[0] += 1
        ticks.append(time.monotonic() - t0)
        return dock.runner.ok is not None

    assert wait_until(ui_alive, timeout=timeout), statuses[-5:]
    return statuses, heartbeat[0]


def test_export_then_train_in_the_background_with_epoch_progress(reviewed_project, tmp_path):
    path, session, dock = reviewed_project
    params = jobs.export_parameters(session.project)
    params.update(TILE_SIZE_X=64, TILE_SIZE_Y=64, STRIDE_X=64, STRIDE_Y=64, WORKERS=1)
    statuses, beats = run_job(dock, jobs.EXPORT_ALG, params)
    assert dock.runner.ok, dock.runner.lines[-10:]
    assert beats > 10  # the UI kept running while the export worker worked
    out = Path(params["OUTPUT_FOLDER"])
    assert (out / "map.txt").is_file() and (out / "esri_model_definition.emd").is_file()
    assert dock.job_status.text().startswith("Finished")
    exports = [j for j in session.project.jobs() if j["kind"] == "export"]
    assert [j["status"] for j in exports] == ["succeeded"]
    assert QgsApplication.taskManager().countActiveTasks() == 0

    # the training defaults now point at that export
    tparams = jobs.train_parameters(session.project)
    assert tparams["IN_FOLDER"] == str(out) and tparams["MODEL_TYPE"] == "UNET"
    tparams.update(BACKBONE_MODEL="RESNET18", MAX_EPOCHS=1, BATCH_SIZE=2, LEARNING_RATE=0.001,
                   VALIDATION_PERCENT=25.0, OUTPUT=str(tmp_path / "m.dlpk"))  # fmt: skip
    assert dock.start_training(tparams)
    assert dock.cancel_job.isEnabled() and not dock.train_now.isEnabled()
    statuses = []
    dock.runner.status.connect(statuses.append)
    assert wait_until(lambda: dock.runner.ok is not None, timeout=400), dock.runner.lines[-10:]
    assert dock.runner.ok, dock.runner.lines[-10:]
    epoch_lines = [s for s in statuses if s.startswith("Epoch 1/1")]
    assert epoch_lines and " · loss " in epoch_lines[0] and " · ETA " in epoch_lines[0]
    assert (tmp_path / "m.dlpk").is_file()
    assert dock.job_progress.value() == 100 and not dock.cancel_job.isEnabled()
    trains = [j for j in session.project.jobs() if j["kind"] == "train"]
    assert [j["status"] for j in trains] == ["succeeded"]
    iparams = jobs.inference_parameters(session.project)
    assert iparams["MODEL"] == str(tmp_path / "m.dlpk")

    # and inference with that model, pre-filled in its dialog, then as a task
    dock.update_state()
    assert dock.infer_button.isEnabled()
    dialog = dock.open_inference()
    shown = dialog.mainWidget().createProcessingParameters()
    assert shown["MODEL"] == iparams["MODEL"] and shown["PROJECT"] == path
    dialog.close()
    iparams["OUTPUT"] = str(tmp_path / "classes.tif")
    run_job(dock, jobs.inference_algorithm(session.project), iparams)
    assert dock.runner.ok, dock.runner.lines[-10:]
    assert (tmp_path / "classes.tif").is_file()


def test_a_failing_job_says_why(reviewed_project, tmp_path):
    path, session, dock = reviewed_project
    params = jobs.train_parameters(session.project)
    params.update(IN_FOLDER=str(tmp_path / "missing"), OUTPUT=str(tmp_path / "m.dlpk"))
    run_job(dock, jobs.TRAIN_ALG, params, timeout=120)
    assert dock.runner.ok is False
    assert dock.job_status.text().startswith("Failed:")
    assert not (tmp_path / "m.dlpk").exists()


def test_a_missing_algorithm_is_reported_not_started(reviewed_project):
    path, session, dock = reviewed_project
    assert not dock.runner.start("dlstudio:nosuchthing", {})
    assert dock.job_status.text() == "The algorithm dlstudio:nosuchthing is not available."
    assert dock.runner.open_dialog("dlstudio:nosuchthing", {}) is None
