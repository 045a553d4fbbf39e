"""`make demo`'s script, at a small size: the team workflow through real qgis_process runs."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_demo_runs_the_team_workflow(tmp_path):
    out = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QGIS_", "DLSTUDIO_"))}
    env.update(DEMO_SIZE="512", DEMO_OUT=str(out), PYTHON=sys.executable)
    run = subprocess.run(
        ["bash", str(REPO / "scripts" / "demo.sh")], env=env, cwd=REPO, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    status = json.loads((out / "status.json").read_text())
    units, samples = status["work_units"], status["samples"]
    # every unit went through review; the deliberately wrong boxes were rejected and kept out
    assert units["by_status"]["reviewed"] == units["total"] > 1
    assert samples["by_status"]["rejected"] > 0
    assert samples["by_status"]["pending"] == 0
    assert status["exportable_samples"] == samples["by_status"]["approved"] > 0
    assert set(status["per_collector"]) == {"carla", "colin"}
    assert "now Queued" in run.stdout  # a unit was sent back and came round again
    html = (out / "status.html").read_text()
    assert "Buildings (demo)" in html and "colin" in html
    # the project's audit trail has the send-back and the second review
    con = sqlite3.connect(out / "project.gpkg")
    actions = {r[0] for r in con.execute("SELECT action FROM dls_history")}
    jobs = con.execute("SELECT kind, status, submitted_by FROM dls_jobs").fetchall()
    con.close()
    assert {"send_back", "finish_review", "review", "collect", "mark_complete"} <= actions
    # adam exported the approved samples as training data, recorded as a project job
    assert jobs == [("export", "succeeded", "adam")]
    data = out / "training_data"
    lines = (data / "map.txt").read_text().splitlines()
    assert len(lines) > 0
    assert all((data / name).is_file() for line in lines for name in line.split())
    assert (data / "esri_model_definition.emd").is_file()
    assert "training data" in run.stdout and "chips of 256x256 px" in run.stdout
