"""The graphical model models/export_train_detect.model3: it is what scripts/make_model3.py
writes, qgis_process describes it, and it runs end to end through `qgis_process.bin run
<model3>` on a tiny synthetic scene (export PASCAL_VOC_rectangles -> train SSD on RESNET18
for one epoch -> detect objects)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path
from xml.etree.ElementTree import canonicalize

from osgeo import gdal, ogr, osr
from test_qgis_process import REPO, env, qgis_process  # noqa: F401 - env is a fixture

MODEL = REPO / "models" / "export_train_detect.model3"
INPUTS = ["imagery", "samples", "class_field", "model_type", "backbone", "epochs", "chip_size",
          "threshold"]  # fmt: skip
OUTPUTS = ["export:training_data", "train:model_package", "detect:detections"]


def _python(*args, timeout=120) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONPATH": str(REPO), "QT_QPA_PLATFORM": "offscreen"}
    out = subprocess.run([sys.executable, *map(str, args)], cwd=REPO, env=environ,
                         capture_output=True, text=True, timeout=timeout)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    return out


def test_the_model_is_what_the_script_writes(tmp_path):
    fresh = tmp_path / "fresh.model3"
    _python(REPO / "scripts" / "make_model3.py", "--output", fresh)
    assert canonicalize(fresh.read_text()) == canonicalize(MODEL.read_text()), (
        "models/export_train_detect.model3 is out of date: run scripts/make_model3.py"
    )


def test_qgis_process_describes_the_model(env):  # noqa: F811 - the fixture
    out = qgis_process(env, "help", str(MODEL))
    assert out.returncode == 0, out.stderr
    for name in INPUTS + OUTPUTS:
        assert f"\n{name}: " in out.stdout, name
    assert "Exports training data (PASCAL_VOC_rectangles)" in out.stdout


def test_the_models_provider_loads_it(env):  # noqa: F811 - the fixture
    """Saved in a profile's models folder, it is listed as the modeler's own models are."""
    models = Path(env["QGIS_CUSTOM_CONFIG_PATH"]) / "profiles" / "default" / "processing" / "models"
    models.mkdir(parents=True, exist_ok=True)
    (models / MODEL.name).write_bytes(MODEL.read_bytes())
    try:
        out = qgis_process(env, "list")
    finally:
        (models / MODEL.name).unlink()
    assert out.returncode == 0, out.stderr
    assert "model:Export, train and detect objects" in out.stdout


def test_the_model_runs_headless(env, tmp_path):  # noqa: F811 - the fixture
    scene = tmp_path / "scene.tif"
    _python("-m", "dlstudio_qgis.engine", "synth-scene", "-o", scene, "--size", 256, "--seed", 3,
            "--pixel-size", 1.0, "--no-overviews")  # fmt: skip
    samples = tmp_path / "samples.geojson"
    every = []
    for name in ("buildings", "roads"):
        every += json.loads((tmp_path / f"{name}.geojson").read_text())["features"]
    samples.write_text(json.dumps({"type": "FeatureCollection", "crs": {"type": "name",
                       "properties": {"name": "urn:ogc:def:crs:EPSG::32611"}},
                       "features": every}))  # fmt: skip
    folder, package, detections = tmp_path / "chips", tmp_path / "m.dlpk", tmp_path / "d.gpkg"
    params = {
        "imagery": scene, "samples": samples, "class_field": "class_name",
        "model_type": "SSD", "backbone": "RESNET18", "epochs": 1, "chip_size": 64,
        "threshold": 0.05, "export:training_data": folder, "train:model_package": package,
        "detect:detections": detections,
    }  # fmt: skip
    out = qgis_process({**env, "OMP_NUM_THREADS": "1"}, "--json", "run", str(MODEL), "--",
                       *(f"{k}={v}" for k, v in params.items()), timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stderr + out.stdout
    doc = json.loads(out.stdout[out.stdout.index("{") :])
    assert doc["results"] == {
        "export:training_data": str(folder),
        "train:model_package": str(package),
        "detect:detections": str(detections),
    }
    # the training data, the package trained from it, the objects it found
    emd = json.loads((folder / "esri_model_definition.emd").read_text())
    assert emd["MetaDataMode"] == "PASCAL_VOC_rectangles"
    assert {c["Name"] for c in emd["Classes"]} == {"building", "road"}
    assert (folder / "map.txt").read_text().strip()
    with zipfile.ZipFile(package) as zf:
        trained = json.loads(zf.read("m.emd"))
    params_used = trained["ModelParameters"]
    assert (params_used["model_type"], params_used["backbone"]) == ("SSD", "RESNET18")
    assert trained["DLStudio"]["epochs_run"] == 1
    ds = ogr.Open(str(detections))
    layer = ds.GetLayer(0)
    names = [layer.GetLayerDefn().GetFieldDefn(i).GetName()
             for i in range(layer.GetLayerDefn().GetFieldCount())]  # fmt: skip
    assert names == ["class_value", "class_name", "confidence"]
    assert layer.GetFeatureCount() > 0
    xmin, xmax, ymin, ymax = layer.GetExtent()
    gt = gdal.Open(str(scene)).GetGeoTransform()
    assert gt[0] <= xmin and xmax <= gt[0] + 256 and gt[3] - 256 <= ymin and ymax <= gt[3]
    utm = osr.SpatialReference()
    utm.ImportFromEPSG(32611)
    assert layer.GetSpatialRef().IsSame(utm)
    for feature in layer:
        assert feature.GetField("confidence") >= 0.05
        assert feature.GetField("class_name") in ("building", "road")
    ds = None
    con = sqlite3.connect(detections)
    assert con.execute("SELECT count(*) FROM layer_styles WHERE useAsDefault").fetchone() == (1,)
    con.close()
    assert not Path(f"{package}.partial").exists()
