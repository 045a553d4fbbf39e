"""Helpers for the training tests: tiny exports made with the real export command, train jobs,
and running ``python -m dlstudio_qgis.engine train`` in a subprocess (rasterio stays there).

The machine running the tests may be shared: the worker gets one torch thread
(OMP_NUM_THREADS=1), which on a busy two-core machine is several times faster than two.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from engine_helpers import REPO, Run, run_engine

CLASSES = [
    {"value": 1, "name": "building", "color": "#e6194b"},
    {"value": 2, "name": "road", "color": "#3cb44b"},
]


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def make_scene(folder: Path) -> Path:
    """A 256 x 256 synthetic scene at 1 m (buildings of 10-25 px) and its samples."""
    tif = folder / "scene.tif"
    run = run_engine(
        "synth-scene", "-o", tif, "--size", 256, "--seed", 3, "--pixel-size", 1.0, "--no-overviews"
    )
    assert run.rc == 0, run.stderr
    every = []
    for name in ("buildings", "roads"):
        data = json.loads((folder / f"{name}.geojson").read_text())
        for f in data["features"]:
            f["properties"] = {"class_value": f["properties"]["class"]}
        write_json(folder / f"{name}_samples.geojson", data)
        every += data["features"]
    write_json(folder / "all_samples.geojson", {**data, "features": every})
    return tif


def export(folder: Path, tif: Path, fmt: str, samples: str = "buildings", **params) -> Path:
    out = folder / fmt
    job = {
        "raster": str(tif),
        "samples": str(folder / f"{samples}_samples.geojson"),
        "classes": CLASSES,
        "output": str(out),
        "metadata_format": fmt,
        "tile_size": [64, 64],
        "stride": [64, 64],
        "workers": 1,
        **params,
    }
    run = run_engine("export", write_json(folder / f"{fmt}_export.json", job))
    assert run.rc == 0, run.stdout + run.stderr
    return out


def train_job(tmp: Path, in_folder: Path, name: str = "model", **params) -> dict:
    job = {
        "in_folder": str(in_folder),
        "output": str(tmp / "out" / f"{name}.dlpk"),
        "model_type": "UNET",
        "backbone": "RESNET18",
        "batch_size": 4,
        "max_epochs": 1,
        "learning_rate": 1e-3,
        "validation_percent": 25,
        "seed": 0,
    }
    job.update(params)
    return job


def run_train(tmp: Path, job: dict, env: dict | None = None, timeout: float = 300) -> Run:
    path = write_json(tmp / f"train_{Path(job['output']).stem}.json", job)
    environ = dict(os.environ)
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), environ.get("PYTHONPATH")]))
    environ["OMP_NUM_THREADS"] = "1"
    environ.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "dlstudio_qgis.engine", "train", str(path)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env=environ,
    )
    return Run(proc)


def package_emd(path: Path) -> tuple[dict, list[str]]:
    """The .emd of a package and its member names (read with zipfile, no torch)."""
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        emd_name = next(n for n in names if n.endswith(".emd"))
        return json.loads(zf.read(emd_name)), names


def epoch_logs(run: Run) -> list[dict]:
    return [m["epoch"] for m in run.of("log") if "epoch" in m]
