"""Headless export: `qgis_process.bin --json run dlstudio:exporttrainingdata` on a project made
with the other algorithms, the engine worker being the venv's Python (set in the profile by
install_plugin.py --worker-python)."""

from __future__ import annotations

import json
import sqlite3

from test_qgis_process import (  # the module's profile fixture and helpers
    ANALYST,
    COLLECTOR,
    OWNER,
    _rasters_and_samples,
    env,  # noqa: F401 - a fixture
    qgis_process,
    run,
)


def test_export_a_reviewed_project(env, tmp_path):  # noqa: F811 - the fixture
    raster, samples = _rasters_and_samples(tmp_path)
    project = str(tmp_path / "roofs.gpkg")
    run(env, "createproject", NAME="Roofs", INPUT_RASTER=raster, INFERENCE_TOOL="DETECT_OBJECTS",
        CLASSES="1:building:#ff0000,2:road:#0000ff", OUTPUT=project, USER=OWNER)  # fmt: skip
    run(env, "addmember", PROJECT=project, MEMBER=ANALYST, ROLE="analyst", USER=OWNER)
    run(env, "addmember", PROJECT=project, MEMBER=COLLECTOR, ROLE="collector", USER=OWNER)
    run(env, "createworkunits", PROJECT=project, CELL_SIZE=100, USER=ANALYST)
    run(env, "importsamples", PROJECT=project, INPUT=samples, CLASS_FIELD="label", USER=COLLECTOR)
    run(env, "updateworkunitstatus", PROJECT=project, WORK_UNITS="\"status\" = 'in_progress'",
        STATUS="PENDING_REVIEW", MODE="WORKFLOW", USER=COLLECTOR)  # fmt: skip
    # the NW unit's road is rejected and kept Reviewed: 2 buildings go out, the road does not
    run(env, "reviewsamples", PROJECT=project, SAMPLES='"class_value" = 1', STATUS="APPROVED",
        FINISH="REVIEWED", USER=ANALYST)  # fmt: skip
    run(env, "reviewsamples", PROJECT=project, SAMPLES='"class_value" = 2', STATUS="REJECTED",
        FINISH="REVIEWED", USER=ANALYST)  # fmt: skip

    out = tmp_path / "training_data"
    doc = run(env, "exporttrainingdata", PROJECT=project, INPUT_RASTER=raster,
              OUTPUT_FOLDER=out, METADATA_FORMAT="PASCAL_VOC_rectangles", TILE_SIZE_X=50,
              TILE_SIZE_Y=50, STRIDE_X=50, STRIDE_Y=50, USER=ANALYST)  # fmt: skip
    r = doc["results"]
    assert r["OUTPUT_FOLDER"] == str(out) and r["SAMPLES"] == 2 and r["OBJECTS"] == 2
    assert r["CHIPS"] >= 2 and r["JOB_ID"]
    lines = (out / "map.txt").read_text().splitlines()
    assert len(lines) == r["CHIPS"]
    for line in lines:
        image, label = line.split()
        assert (out / image).is_file() and (out / label).is_file()
    emd = json.loads((out / "esri_model_definition.emd").read_text())
    assert [c["Name"] for c in emd["Classes"]] == ["building", "road"]
    log = "\n".join(doc["log"]["info"])
    assert "left out 1 by sample status (1 rejected)" in log

    con = sqlite3.connect(project)
    rows = con.execute("SELECT kind, status, submitted_by, id FROM dls_jobs").fetchall()
    con.close()
    assert rows == [("export", "succeeded", ANALYST, r["JOB_ID"])]


def test_export_refuses_a_format_that_does_not_fit(env, tmp_path):  # noqa: F811
    raster, _ = _rasters_and_samples(tmp_path)
    project = str(tmp_path / "p.gpkg")
    run(env, "createproject", NAME="P", INPUT_RASTER=raster, INFERENCE_TOOL="CLASSIFY_PIXELS",
        CLASSES="1:water", OUTPUT=project, USER=OWNER)  # fmt: skip
    out = qgis_process(env, "--json", "run", "dlstudio:exporttrainingdata", "--",
                       f"PROJECT={project}", f"OUTPUT_FOLDER={tmp_path / 'o'}",
                       "METADATA_FORMAT=KITTI_rectangles", f"USER={OWNER}")  # fmt: skip
    assert out.returncode != 0
    assert "use Classified_Tiles" in out.stdout + out.stderr
    assert not (tmp_path / "o").exists()
