"""``python -m dlstudio_qgis.engine infer`` with real (tiny, one-epoch) packages: the outputs
of each tool, and the refusals (clear error, nothing written)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from engine_helpers import REPO, _env, run_engine


def infer(tmp: Path, tool: str, model, output: str, **job):
    job = {"tool": tool, "raster": str(job.pop("raster")), "model": str(model),
           "output": str(tmp / output), **job}  # fmt: skip
    jobs = tmp / "jobs"
    jobs.mkdir(exist_ok=True)
    path = jobs / f"{output}.json"
    path.write_text(json.dumps(job))
    return run_engine("infer", path)


def py(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, env=_env(), timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def bounds(tif) -> list[float]:
    return json.loads(
        py(f"import rasterio,json; print(json.dumps(list(rasterio.open(r'{tif}').bounds)))")
    )


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if ".partial" in p.name]


def test_classify_pixels_writes_a_class_raster(trained, tmp_path):
    run = infer(
        tmp_path, "classify_pixels", trained["UNET"], "classes.tif", raster=trained["scene"]
    )
    assert run.rc == 0, run.stdout[-2000:]
    result = run.last
    assert result["tool"] == "classify_pixels" and result["model_type"] == "UNET"
    assert sum(result["pixel_counts"].values()) == 256 * 256
    assert set(result["pixel_counts"]) <= {"0", "1", "2"}
    code = (
        "import rasterio, json; ds = rasterio.open(r'{}'); src = rasterio.open(r'{}');"
        "print(json.dumps({{'crs': ds.crs == src.crs, 'transform': ds.transform == src.transform,"
        "'shape': [ds.height, ds.width], 'cmap': ds.colormap(1)[1][:3]}}))"
    )
    facts = json.loads(py(code.format(tmp_path / "classes.tif", trained["scene"])))
    assert facts == {"crs": True, "transform": True, "shape": [256, 256], "cmap": [230, 25, 75]}
    assert "<Category>building</Category>" in (tmp_path / "classes.tif.aux.xml").read_text()
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("model_type", ["FASTERRCNN", "MASKRCNN"])
def test_detect_objects_writes_georeferenced_features(trained, tmp_path, model_type):
    left, bottom, right, top = bounds(trained["scene"])
    extent = [left, top - 96, left + 96, top]  # the top-left 96 x 96 m
    run = infer(tmp_path, "detect_objects", trained[model_type], "objects.geojsonl",
                raster=trained["scene"], extent=extent,
                arguments="threshold=0.0;padding=8")  # fmt: skip
    assert run.rc == 0, run.stdout[-2000:]
    lines = (tmp_path / "objects.geojsonl").read_text().splitlines()
    assert run.last["detections"] == len(lines) > 0
    shapes = set()
    for line in lines:
        f = json.loads(line)
        assert f["properties"]["class_name"] in ("building", "road")
        assert f["properties"]["class_value"] in (1, 2)
        assert 0.0 <= f["properties"]["confidence"] <= 1.0
        ring = f["geometry"]["coordinates"][0] if f["geometry"]["type"] == "Polygon" else \
            f["geometry"]["coordinates"][0][0]  # fmt: skip
        xs, ys = [p[0] for p in ring], [p[1] for p in ring]
        # kept by the centre of the detected box (a Mask R-CNN outline may lie beside it)
        assert left <= min(xs) and max(xs) <= right and bottom <= min(ys) and max(ys) <= top
        if model_type == "FASTERRCNN":
            cx, cy = (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2
            assert extent[0] <= cx <= extent[2] and extent[1] <= cy <= extent[3]
        shapes.add(len(ring))
    if model_type == "MASKRCNN":  # outlines, not only rectangles
        assert max(shapes) > 5
    else:
        assert shapes == {5}


def test_classify_objects_classifies_each_feature(trained, tmp_path):
    samples = json.loads((trained["folder"] / "buildings_samples.geojson").read_text())
    features = tmp_path / "features.geojsonl"
    far = {"type": "Feature", "id": 999, "geometry": {"type": "Point", "coordinates": [0, 0]}}
    with features.open("w") as fh:
        for f in [*samples["features"], far]:
            fh.write(json.dumps(f) + "\n")
    run = infer(tmp_path, "classify_objects", trained["FEATURE_CLASSIFIER"], "classes.jsonl",
                raster=trained["scene"], features=str(features))  # fmt: skip
    assert run.rc == 0, run.stdout[-2000:]
    records = [json.loads(x) for x in (tmp_path / "classes.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == [f["id"] for f in samples["features"]]
    assert all(r["class_name"] in ("building", "road") and 0 <= r["confidence"] <= 1
               for r in records)  # fmt: skip
    assert run.last["classified"] == len(records) and run.last["skipped"] == 1
    assert any("not classified" in m["message"] for m in run.of("log"))


def _error(run) -> str:
    assert run.rc == 1, run.stdout[-2000:]
    return run.last["message"]


def test_a_model_for_another_tool_is_refused(trained, tmp_path):
    msg = _error(infer(tmp_path, "detect_objects", trained["UNET"], "o.geojsonl",
                       raster=trained["scene"]))  # fmt: skip
    assert "UNET" in msg and "Classify Pixels" in msg
    msg = _error(infer(tmp_path, "classify_pixels", trained["FASTERRCNN"], "o.tif",
                       raster=trained["scene"]))  # fmt: skip
    assert "Detect Objects" in msg
    assert list(tmp_path.glob("o.*")) == []


def test_bad_rasters_and_extents_are_refused(trained, tmp_path):
    one_band, no_crs = tmp_path / "one.tif", tmp_path / "nocrs.tif"
    py(
        "import rasterio, numpy as np\n"
        "p = dict(driver='GTiff', width=64, height=64, dtype='uint8',\n"
        "         transform=rasterio.transform.from_origin(0, 64, 1, 1))\n"
        f"rasterio.open(r'{one_band}', 'w', count=1, crs='EPSG:32611', **p).close()\n"
        f"rasterio.open(r'{no_crs}', 'w', count=3, **p).close()\n"
    )  # fmt: skip
    msg = _error(infer(tmp_path, "classify_pixels", trained["UNET"], "a.tif", raster=one_band))
    assert "bands [1, 2, 3]" in msg and "has 1 band" in msg
    msg = _error(infer(tmp_path, "classify_pixels", trained["UNET"], "b.tif", raster=no_crs))
    assert "no coordinate reference system" in msg
    msg = _error(infer(tmp_path, "classify_pixels", trained["UNET"], "c.tif",
                       raster=trained["scene"], extent=[0, 0, 10, 10]))  # fmt: skip
    assert "misses the raster" in msg
    msg = _error(infer(tmp_path, "classify_pixels", trained["UNET"], "d.tif",
                       raster=trained["scene"], arguments="padding=40"))  # fmt: skip
    assert "less than half" in msg
    msg = _error(infer(tmp_path, "classify_pixels", trained["UNET"], "e.tif",
                       raster=trained["scene"], arguments="threshold=0.5"))  # fmt: skip
    assert "does not take" in msg and "threshold" in msg
    assert not any(tmp_path.glob("[a-e].tif*"))


def test_bad_packages_are_refused_before_anything_is_written(trained, tmp_path):
    not_zip = tmp_path / "model.dlpk"
    not_zip.write_text("hello")
    assert "not a zip" in _error(infer(tmp_path, "classify_pixels", not_zip, "a.tif",
                                       raster=trained["scene"]))  # fmt: skip
    evil = tmp_path / "evil.dlpk"
    with zipfile.ZipFile(trained["UNET"]) as src, zipfile.ZipFile(evil, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if name.endswith(".emd"):
                emd = json.loads(data)
                emd["InferenceFunction"] = "evil.py"
                data = json.dumps(emd).encode()
            dst.writestr(name, data)
        dst.writestr("evil.py", "import os; os.remove('/')\n")
    msg = _error(infer(tmp_path, "classify_pixels", evil, "b.tif", raster=trained["scene"]))
    assert "trust" in msg and "evil.py" in msg
    # trusted, the package's own code is still never run: the built-in inference is used
    run = infer(tmp_path, "classify_pixels", evil, "c.tif", raster=trained["scene"],
                trust_code=True)  # fmt: skip
    assert run.rc == 0 and any("trusted but not needed" in m["message"] for m in run.of("log"))
    assert not (tmp_path / "a.tif").exists() and not (tmp_path / "b.tif").exists()


def test_an_existing_output_is_kept_without_overwrite(trained, tmp_path):
    (tmp_path / "keep.tif").write_text("mine")
    msg = _error(infer(tmp_path, "classify_pixels", trained["UNET"], "keep.tif",
                       raster=trained["scene"], overwrite=False))  # fmt: skip
    assert "exists" in msg and (tmp_path / "keep.tif").read_text() == "mine"


def test_cancel_leaves_no_output(trained, tmp_path):
    big = tmp_path / "big.tif"
    assert run_engine("synth-scene", "-o", big, "--size", 1536, "--no-overviews").rc == 0
    job = tmp_path / "job.json"
    out = tmp_path / "classes.tif"
    job.write_text(json.dumps({"tool": "classify_pixels", "raster": str(big),
                               "model": str(trained["UNET"]), "output": str(out)}))  # fmt: skip
    env = {**_env(), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "dlstudio_qgis.engine", "infer", str(job)],
                            stdout=subprocess.PIPE, text=True, cwd=REPO, env=env)  # fmt: skip
    for line in proc.stdout:
        if '"progress"' in line and json.loads(line)["value"] > 0:
            break
    os.kill(proc.pid, signal.SIGTERM)
    rest = proc.stdout.read()
    assert proc.wait(timeout=60) == 130
    assert '"cancelled"' in rest
    assert not out.exists() and leftovers(tmp_path) == []
