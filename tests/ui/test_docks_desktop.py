"""The docks in the real QGIS desktop under Xvfb, driven by a scripted session (docks_probe.py):
open a project, take a work unit, draw samples with the mouse, undo with Ctrl+Z, drag a corner
with the Edit shape tool, mark the unit complete, review it with the keyboard, finish;
screenshots checked for real content. The profile names a last project that is gone: the
plugin forgets it at start-up with a message."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from test_plugin_desktop import install_plugin, run_desktop

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
VENV_PYTHON = REPO / ".venv" / "bin" / "python"
TIMEOUT = 300

pytestmark = pytest.mark.xvfb


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("docks")
    install_plugin(root / "profiles", "test")
    with (root / "profiles" / "test" / "QGIS" / "QGIS3.ini").open("a", encoding="utf-8") as f:
        f.write(f"\n[dlstudio]\nlast_project={root / 'gone.gpkg'}\n")
    scene = root / "scene.tif"
    env_w = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [str(VENV_PYTHON), "-m", "dlstudio_qgis.engine", "synth-scene", "-o", str(scene),
         "--size", "512", "--seed", "3", "--pixel-size", "0.5", "--no-overviews"],
        check=True, capture_output=True, timeout=120, env=env_w,
    )  # fmt: skip
    shots = root / "shots"
    shots.mkdir()
    out = {"result": root / "result.json", "shots": shots, "log": root / "qgis.log"}
    env = dict(os.environ)
    env.pop("QT_QPA_PLATFORM", None)
    env.update(
        DLS_UI_RESULT=str(out["result"]), DLS_UI_DIR=str(shots), DLS_SCENE=str(scene),
        DLS_BUILDINGS=str(root / "buildings.geojson"), DLS_PROJECT=str(root / "demo.gpkg"),
        DLSTUDIO_USER="olivia", HOME=str(root), XDG_RUNTIME_DIR=str(root),
        QGIS_CUSTOM_CONFIG_PATH=str(root), OMP_NUM_THREADS="1",
    )  # fmt: skip
    proc, log_text = run_desktop(root, HERE / "docks_probe.py", env, out["log"], TIMEOUT)
    assert out["result"].is_file(), f"no result (rc {proc.returncode}):\n{log_text[-4000:]}"
    return {**out, "data": json.loads(out["result"].read_text()), "log_text": log_text}


def test_the_scripted_session_ran_every_step(session):
    data = session["data"]
    assert "error" not in data, data["error"]
    assert data["steps"][-1] == "after_unload", data["steps"]


def test_docks_load_with_the_plugin_and_go_with_it(session):
    data = session["data"]
    assert data["docks_before"] == ["DeepLearningStudioCollectDock",
                                    "DeepLearningStudioProjectDock",
                                    "DeepLearningStudioReviewDock"]  # fmt: skip
    assert data["tabbed_with_project_dock"] == ["DeepLearningStudioCollectDock",
                                                "DeepLearningStudioReviewDock"]  # fmt: skip
    assert data["unload_ok"] and data["docks_after"] == []


def test_open_project_and_take_a_unit(session):
    data = session["data"]
    assert data["opened"] and "<b>olivia</b>, <b>owner</b>" in data["who"]
    assert {"Work units", "Training samples", "Imagery"} <= set(data["layers"])
    assert data["table_rows"] == 4 and data["current_unit"] is not None


def test_samples_drawn_with_the_mouse_and_undone_with_ctrl_z(session):
    data = session["data"]
    assert data["draw_tool_active"]
    assert data["drawn"] >= 2 and data["drawn_rectangles"]
    assert data["classes_drawn"] == [1, 2]  # keys 1 and 2 on the map picked the class
    assert data["unit_after_draw"] == "in_progress"
    assert data["after_extra"] == data["drawn"] + 1
    assert data["after_undo"] == data["drawn"]


def test_the_last_project_gone_is_forgotten_at_start_and_the_new_one_remembered(session):
    data = session["data"]
    text, level = data["startup_message"]
    assert level == 1 and "gone.gpkg" in text and "no longer there" in text  # a warning
    assert data["last_project_at_start"] == ""
    root = session["result"].parent
    assert Path(data["last_project_at_end"]) == (root / "demo.gpkg").resolve()


def test_a_corner_dragged_with_the_edit_tool_undone_and_redone(session):
    data = session["data"]
    assert data["edit_tool_active"] and data["edit_selected"] and data["edit_handles"] == 4
    (x0, y0, x1, y1), (ex0, ey0, ex1, ey1) = data["edit_bounds"]
    tx, ty = data["edit_target"]
    tol = data["edit_tolerance"]
    assert data["edit_rectangle"]
    assert (ex0, ey0) == (x0, y0)  # the opposite corner stays exactly
    assert abs(ex1 - tx) <= tol and abs(ey1 - ty) <= tol, (data["edit_bounds"], tol)
    assert data["edit_undone"] and data["edit_redone"]
    assert data["edit_history"] == ["collect", "edit", "edit", "edit"]


def test_reviewed_with_the_keyboard(session):
    data = session["data"]
    assert data["unit_after_complete"] == "pending_review" and data["review_opened"]
    assert "Unit" in data["review_info"]
    assert data["suggested"] == "queued"
    assert data["final_unit"] == "queued"
    assert data["final_samples"].count("rejected") == 1
    assert data["final_samples"].count("approved") == data["drawn"] - 1
    assert "approved" in data["summary"] and "1</b> rejected" in data["summary"]


def test_screenshots_have_real_content(session):
    from qgis.PyQt.QtGui import QImage

    names = sorted(Path(p).name for p in session["data"]["shots"])
    assert names == ["collect_dock.png", "edit_shape.png", "project_dock.png", "review_dock.png"]
    for p in session["data"]["shots"]:
        image = QImage(p)
        assert not image.isNull() and image.width() >= 1000 and image.height() >= 600
        colors = {image.pixel(x, y) for x in range(0, image.width(), 7)
                  for y in range(0, image.height(), 7)}  # fmt: skip
        assert len(colors) > 200, f"{p}: only {len(colors)} colours"


def test_no_python_errors_in_the_log(session):
    text = session["log_text"]
    assert "Traceback" not in text, text[-4000:]
