"""Headless runs: `qgis_process.bin --json run dlstudio:...` against a throw-away profile.

The plugin is installed and enabled in TMP/profiles/default with scripts/install_plugin.py;
qgis_process 3.22 finds that profile through QGIS_CUSTOM_CONFIG_PATH=TMP (it resolves
<path>/profiles/<default profile>, "default" when there is no profiles.ini).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
QGIS_PROCESS = shutil.which("qgis_process.bin")
ALGORITHMS = {
    "dlstudio:createproject",
    "dlstudio:addmember",
    "dlstudio:createworkunits",
    "dlstudio:importsamples",
    "dlstudio:updateworkunitstatus",
    "dlstudio:reviewsamples",
    "dlstudio:projectstatus",
    "dlstudio:exporttrainingdata",
    "dlstudio:traindeeplearningmodel",
    "dlstudio:detectobjects",
    "dlstudio:classifypixels",
    "dlstudio:classifyobjects",
    "dlstudio:computeaccuracyforobjectdetection",
    "dlstudio:computeaccuracyforpixelclassification",
    "dlstudio:computeaccuracyforobjectclassification",
}
ORIGIN = (500000.0, 4000200.0)  # top-left, EPSG:32611
OWNER, ANALYST, COLLECTOR = "olivia", "ann", "carl"

assert QGIS_PROCESS, "qgis_process.bin is missing: run `make setup`"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """An environment whose QGIS profile has the plugin installed and enabled."""
    config = tmp_path_factory.mktemp("qgis-config")
    subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "install_plugin.py"),
            "--profiles-path",
            str(config / "profiles"),
            "--profile",
            "default",
            "--worker-python",
            sys.executable,
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    e = {k: v for k, v in os.environ.items() if not k.startswith(("QGIS_", "DLSTUDIO_"))}
    e.update(QGIS_CUSTOM_CONFIG_PATH=str(config), QT_QPA_PLATFORM="offscreen")
    e.setdefault("XDG_RUNTIME_DIR", str(tmp_path_factory.mktemp("xdg")))
    return e


def qgis_process(env, *args, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [QGIS_PROCESS, *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def run(env, alg: str, **params) -> dict:
    """Run dlstudio:<alg> with --json; return its results, failing with its stderr."""
    args = ["--json", "run", f"dlstudio:{alg}", "--"]
    args += [f"{k}={v}" for k, v in params.items()]
    out = qgis_process(env, *args)
    assert out.returncode == 0, f"{alg} failed ({out.returncode}):\n{out.stderr}\n{out.stdout}"
    doc = json.loads(out.stdout[out.stdout.index("{") :])
    assert doc["algorithm_details"]["id"] == f"dlstudio:{alg}"
    return doc


def _rasters_and_samples(tmp_path):
    """A 200x200 GeoTIFF in EPSG:32611 and samples in EPSG:4326 (GeoJSON), via GDAL/OGR."""
    import numpy as np
    from osgeo import gdal, ogr, osr

    gdal.UseExceptions()
    raster = tmp_path / "scene.tif"
    ds = gdal.GetDriverByName("GTiff").Create(str(raster), 200, 200, 3, gdal.GDT_Byte)
    ds.SetGeoTransform((ORIGIN[0], 1.0, 0.0, ORIGIN[1], 0.0, -1.0))
    utm = osr.SpatialReference()
    utm.ImportFromEPSG(32611)
    ds.SetProjection(utm.ExportToWkt())
    for b in range(3):
        ds.GetRasterBand(b + 1).WriteArray(np.full((200, 200), 40 * (b + 1), dtype="uint8"))
    ds = None

    wgs = osr.SpatialReference()
    wgs.ImportFromEPSG(4326)
    wgs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    utm.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    to_wgs = osr.CoordinateTransformation(utm, wgs)
    x0, y1 = ORIGIN
    boxes = [  # (utm box, class): two in the north-west unit, one in the south-east unit
        ((x0 + 10, y1 - 30, x0 + 20, y1 - 20), "building"),
        ((x0 + 40, y1 - 30, x0 + 50, y1 - 20), "2"),
        ((x0 + 150, y1 - 190, x0 + 160, y1 - 180), "building"),
    ]
    samples = tmp_path / "samples.geojson"
    out = ogr.GetDriverByName("GeoJSON").CreateDataSource(str(samples))
    lyr = out.CreateLayer("samples", wgs, ogr.wkbPolygon)
    lyr.CreateField(ogr.FieldDefn("label", ogr.OFTString))
    for (xmin, ymin, xmax, ymax), label in boxes:
        ring = [(xmin, ymin), (xmax, ymin), (xmax, ymax), (xmin, ymax), (xmin, ymin)]
        pts = [to_wgs.TransformPoint(x, y)[:2] for x, y in ring]
        wkt = "POLYGON((" + ",".join(f"{x:.12f} {y:.12f}" for x, y in pts) + "))"
        f = ogr.Feature(lyr.GetLayerDefn())
        f.SetField("label", label)
        f.SetGeometry(ogr.CreateGeometryFromWkt(wkt))
        lyr.CreateFeature(f)
    out = None
    return str(raster), str(samples)


def test_list_shows_the_algorithms(env):
    out = qgis_process(env, "list")
    assert out.returncode == 0, out.stderr
    listed = {line.split()[0] for line in out.stdout.splitlines() if "dlstudio:" in line}
    assert listed == ALGORITHMS
    assert "Deep Learning Studio" in out.stdout


def test_whole_workflow(env, tmp_path):
    raster, samples = _rasters_and_samples(tmp_path)
    project = str(tmp_path / "roofs.gpkg")

    doc = run(
        env,
        "createproject",
        NAME="Roofs",
        INPUT_RASTER=raster,
        INFERENCE_TOOL="DETECT_OBJECTS",
        CLASSES="1:building:#ff0000,2:road:#0000ff",
        OUTPUT=project,
        USER=OWNER,
    )
    assert doc["results"]["OUTPUT"] == project and Path(project).is_file()

    doc = run(env, "addmember", PROJECT=project, MEMBER=COLLECTOR, ROLE="collector", USER=OWNER)
    assert doc["results"]["RESULT"] == "added"
    doc = run(env, "addmember", PROJECT=project, MEMBER=ANALYST, ROLE="analyst", USER=OWNER)
    assert doc["results"]["RESULT"] == "added"

    doc = run(env, "createworkunits", PROJECT=project, CELL_SIZE=100, USER=ANALYST)
    assert doc["results"]["COUNT"] == 4

    doc = run(
        env, "importsamples", PROJECT=project, INPUT=samples, CLASS_FIELD="label", USER=COLLECTOR
    )
    assert doc["results"]["IMPORTED"] == 3

    # the collector marks their units complete, headless, with the workflow mode
    doc = run(
        env,
        "updateworkunitstatus",
        PROJECT=project,
        WORK_UNITS="\"status\" = 'in_progress'",
        STATUS="PENDING_REVIEW",
        MODE="WORKFLOW",
        COMMENT="done",
        USER=COLLECTOR,
    )
    assert doc["results"]["CHANGED"] == 2

    # the analyst approves the buildings and rejects the road: the unit with the road goes
    # back to Queued, the other one is Reviewed
    doc = run(
        env,
        "reviewsamples",
        PROJECT=project,
        SAMPLES='"class_value" = 1',
        STATUS="APPROVED",
        FINISH="AUTO",
        USER=ANALYST,
    )
    assert doc["results"]["CHANGED"] == 2 and doc["results"]["FINISHED_UNITS"] != ""
    doc = run(
        env,
        "reviewsamples",
        PROJECT=project,
        SAMPLES='"class_value" = 2',
        STATUS="REJECTED",
        COMMENT="a roof, not a road",
        USER=ANALYST,
    )
    assert doc["results"]["CHANGED"] == 1
    assert len(doc["results"]["FINISHED_UNITS"].split(",")) == 1

    js, html = tmp_path / "status.json", tmp_path / "status.html"
    doc = run(env, "projectstatus", PROJECT=project, OUTPUT_JSON=js, OUTPUT_HTML=html)
    r = doc["results"]
    assert (r["WORK_UNITS"], r["SAMPLES"], r["APPROVED"], r["REJECTED"]) == (4, 3, 2, 1)
    assert r["PERCENT_REVIEWED"] == 25.0  # the south-east unit
    assert r["EXPORTABLE"] == 1  # the approved building in the north-west unit is sent back
    status = json.loads(js.read_text())
    assert status["work_units"]["by_status"]["queued"] == 3
    assert status["per_collector"][COLLECTOR]["total"] == 3
    assert "<h1>Roofs</h1>" in html.read_text()


def test_failure_exits_non_zero_with_the_message(env, tmp_path):
    missing = tmp_path / "nope.gpkg"
    out = qgis_process(env, "--json", "run", "dlstudio:projectstatus", "--", f"PROJECT={missing}")
    assert out.returncode != 0
    assert "does not exist" in out.stderr + out.stdout
    assert not missing.exists()


def test_existing_file_is_never_overwritten(env, tmp_path):
    raster, _ = _rasters_and_samples(tmp_path)
    target = tmp_path / "taken.gpkg"
    target.write_bytes(b"someone else's data")
    out = qgis_process(
        env,
        "--json",
        "run",
        "dlstudio:createproject",
        "--",
        "NAME=x",
        f"INPUT_RASTER={raster}",
        "INFERENCE_TOOL=CLASSIFY_PIXELS",
        "CLASSES=1:a",
        f"OUTPUT={target}",
    )
    assert out.returncode != 0
    assert "already exists" in out.stderr + out.stdout
    assert target.read_bytes() == b"someone else's data"
