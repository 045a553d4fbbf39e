"""`make demo`'s script, at a small size: the team workflow, training, inference on a held-out
area, accuracy, the report and the QGIS project, through real qgis_process runs."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import rasterio

REPO = Path(__file__).resolve().parents[2]
SYS_PYTHON = "/usr/bin/python3"

# Opens demo.qgz the way QGIS does and describes its layers (run by QGIS's own Python).
READ_QGZ = r"""
import json, sys
from qgis.core import QgsApplication, QgsProject
app = QgsApplication([], False)
app.initQgis()
project = QgsProject()
ok = project.read(sys.argv[1])
layers = {}
for layer in project.mapLayers().values():
    renderer = layer.renderer()
    info = {"valid": layer.isValid(), "renderer": renderer.type() if renderer else None,
            "source": layer.source(), "features": None, "extent": None}
    if hasattr(layer, "featureCount"):
        info["features"] = layer.featureCount()
        info["centres"] = [[f.geometry().centroid().asPoint().x(),
                            f.geometry().centroid().asPoint().y()] for f in layer.getFeatures()]
    if hasattr(renderer, "categories"):
        info["categories"] = [str(c.value()) for c in renderer.categories()]
    if hasattr(renderer, "classes"):
        info["classes"] = [c.label for c in renderer.classes()]
    layers[layer.name()] = info
print(json.dumps({"ok": ok, "title": project.title(), "layers": layers}), flush=True)
project.clear()
del project, layer, renderer
app.exitQgis()
"""


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QGIS_", "DLSTUDIO_"))}
    env.update(DEMO_SIZE="512", DEMO_OUT=str(out), PYTHON=sys.executable, DEMO_EPOCHS="1",
               DEMO_PIXEL_EPOCHS="1", OMP_NUM_THREADS="1")  # fmt: skip
    run = subprocess.run(
        ["bash", str(REPO / "scripts" / "demo.sh")], env=env, cwd=REPO, capture_output=True,
        text=True, timeout=480,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return out, run.stdout


def results(out: Path, key: str) -> dict:
    """The results of the qgis_process run the demo's manifest names `key`."""
    manifest = dict(
        line.split("\t") for line in (out / "logs" / "manifest.tsv").read_text().splitlines()
    )
    return json.loads((out / manifest[key]).read_text())["results"]


def test_demo_runs_the_team_workflow(demo):
    out, stdout = demo
    status = json.loads((out / "status.json").read_text())
    units, samples = status["work_units"], status["samples"]
    # every unit went through review; the deliberately wrong boxes were rejected and kept out
    assert units["by_status"]["reviewed"] == units["total"] > 1
    assert samples["by_status"]["rejected"] > 0
    assert samples["by_status"]["pending"] == 0
    assert status["exportable_samples"] == samples["by_status"]["approved"] > 0
    assert set(status["per_collector"]) == {"carla", "colin"}
    assert "now Queued" in stdout  # a unit was sent back and came round again
    html = (out / "status.html").read_text()
    assert "Buildings (demo)" in html and "colin" in html
    # the project's audit trail has the send-back and the second review
    con = sqlite3.connect(out / "project.gpkg")
    actions = {r[0] for r in con.execute("SELECT action FROM dls_history")}
    jobs = con.execute("SELECT kind, status, submitted_by FROM dls_jobs ORDER BY rowid").fetchall()
    con.close()
    assert {"send_back", "finish_review", "review", "collect", "mark_complete"} <= actions
    # adam exported, trained and detected, each recorded as a project job
    assert jobs == [(k, "succeeded", "adam") for k in ("export", "train", "infer")]
    for folder in ("training_data", "training_pixels"):
        lines = (out / folder / "map.txt").read_text().splitlines()
        assert len(lines) > 0
        assert all((out / folder / name).is_file() for line in lines for name in line.split())


def test_training_sees_only_the_training_area(demo):
    out, _ = demo
    split = json.loads((out / "reference" / "split.json").read_text())
    assert split["row"] == 384 and split["rows"] == 512  # the top 3/4 of 512 rows
    for folder in ("training_data", "training_pixels"):
        for chip in sorted((out / folder / "images").iterdir()):
            with rasterio.open(chip) as ds:
                assert ds.bounds.bottom >= split["split_y"] - 1e-6, chip
    emd = json.loads((out / "training_pixels" / "esri_model_definition.emd").read_text())
    assert [c["Name"] for c in emd["Classes"]] == ["building", "ground", "road"]
    for key in ("train_detector", "train_pixels"):
        r = results(out, key)
        assert r["EPOCHS"] == 1 and Path(r["OUTPUT"]).is_file()


def test_inference_and_accuracy_on_the_held_out_area(demo):
    out, stdout = demo
    split = json.loads((out / "reference" / "split.json").read_text())
    xmin, ymin, xmax, ymax = split["held_out"]
    with rasterio.open(out / "results" / "land_cover.tif") as ds:
        b = ds.bounds
        assert (b.left, b.bottom, b.right, b.top) == pytest.approx((xmin, ymin, xmax, ymax))
    assert results(out, "detect")["DETECTIONS"] >= 0
    det, pix = results(out, "accuracy_detector"), results(out, "accuracy_pixels")
    for value in (det["MAP"], det["PRECISION"], det["RECALL"], det["F1"],
                  pix["OVERALL_ACCURACY"], pix["MIOU"]):  # fmt: skip
        assert isinstance(value, int | float) and 0 <= value <= 1
    assert -1 <= pix["KAPPA"] <= 1
    # the summary prints the figures and where the outputs are
    assert f"overall accuracy {pix['OVERALL_ACCURACY']:.3f}" in stdout
    assert f"mAP {det['MAP']:.3f}" in stdout
    assert str(out / "demo.qgz") in stdout and "report.html" in stdout


def test_report_has_the_figures(demo):
    out, _ = demo
    html = (out / "report.html").read_text()
    for title in ("1. The team", "2. Training data", "3. Training", "4. Results in the held-out",
                  "Confusion matrix", "Outputs"):  # fmt: skip
        assert title in html
    images = re.findall(r"<img src='([^']+)'", html)
    expected = {"figures/team.png", "figures/detections.png", "figures/detections_detail.png",
                "figures/land_cover.png", "figures/detector_loss.png",
                "figures/detector_results.png", "figures/land_cover_loss.png",
                "figures/land_cover_results.png"}  # fmt: skip
    assert expected <= set(images)
    for src in images:
        assert (out / src).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", src
    status = json.loads((out / "status.json").read_text())
    assert f"<td>carla</td><td class='n'>{status['per_collector']['carla']['total']}" in html
    pix = results(out, "accuracy_pixels")
    assert f"Overall accuracy <b>{pix['OVERALL_ACCURACY']:.3f}</b>" in html


def test_qgis_project_opens_styled_from_anywhere(demo, tmp_path):
    out, _ = demo
    moved = tmp_path / "moved"
    shutil.copytree(out, moved, ignore=shutil.ignore_patterns("profile"))
    shutil.rmtree(out / "results")  # the moved copy must not reach back to the original
    try:
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
        run = subprocess.run([SYS_PYTHON, "-c", READ_QGZ, str(moved / "demo.qgz")], env=env,
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    finally:
        shutil.copytree(moved / "results", out / "results")
    assert run.returncode == 0, run.stderr[-2000:]
    project = json.loads(run.stdout.strip().splitlines()[-1])
    assert project["ok"] and "Buildings (demo)" in project["title"]
    layers = project["layers"]
    renderers = {name: info["renderer"] for name, info in layers.items()}
    assert renderers == {
        "Imagery": "multibandcolor",
        "Work units": "categorizedSymbol",
        "Training samples": "RuleRenderer",
        "Detected buildings": "categorizedSymbol",
        "Buildings (ground truth)": "categorizedSymbol",
        "Land cover (UNET)": "paletted",
        "Land cover (reference)": "categorizedSymbol",
        "Training / held-out": "categorizedSymbol",
    }
    for name, info in layers.items():
        assert info["valid"], name
        assert str(moved) in info["source"], (name, info["source"])  # relative paths
    assert {"queued", "reviewed", "pending_review"} <= set(layers["Work units"]["categories"])
    assert "1" in layers["Detected buildings"]["categories"]
    assert layers["Land cover (UNET)"]["classes"] == ["building", "ground", "road"]
    split = json.loads((out / "reference" / "split.json").read_text())
    xmin, ymin, xmax, ymax = split["held_out"]
    for x, y in layers["Detected buildings"]["centres"]:
        assert xmin <= x <= xmax and ymin <= y <= ymax
