"""Helpers for the accuracy tests: GeoJSON and rasters on disk, jobs run through the worker.

Rasters are written by raster_maker.py in a subprocess (the pytest process imports numpy at
most, never rasterio or shapely).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from engine_helpers import REPO, Run, _env, run_engine

MAKER = Path(__file__).with_name("raster_maker.py")
UTM = "EPSG:32611"
X0, Y0 = 500000.0, 4000150.0  # top-left of the test rasters


def box(xmin, ymin, xmax, ymax) -> dict:
    ring = [[xmin, ymin], [xmax, ymin], [xmax, ymax], [xmin, ymax], [xmin, ymin]]
    return {"type": "Polygon", "coordinates": [ring]}


def feature_collection(path: Path, items) -> str:
    """items: (geometry dict, properties dict) pairs."""
    features = [{"type": "Feature", "geometry": g, "properties": p} for g, p in items]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), "utf-8")
    return str(path)


def make_rasters(folder: Path, specs: list[dict]) -> None:
    """Write rasters: each spec as raster_maker.py takes it, with `array` a numpy array."""
    out = []
    for i, spec in enumerate(specs):
        spec = dict(spec)
        if "array" in spec:
            npy = folder / f"array_{i}_{Path(spec['path']).stem}.npy"
            np.save(npy, spec["array"])
            spec["array"] = str(npy)
        spec["path"] = str(spec["path"])
        out.append(spec)
    job = folder / "rasters.json"
    job.write_text(json.dumps(out), "utf-8")
    proc = subprocess.run([sys.executable, str(MAKER), str(job)], capture_output=True,
                          text=True, timeout=120, cwd=REPO, env=_env())  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def grid(pixel: float = 1.0, x0: float = X0, y0: float = Y0) -> list[float]:
    return [pixel, 0.0, x0, 0.0, -pixel, y0]


def run_job(folder: Path, job: dict, *options) -> Run:
    path = folder / "accuracy_job.json"
    path.write_text(json.dumps(job), "utf-8")
    return run_engine("accuracy", path, *options)


def expected_matrix(reference: np.ndarray, classified: np.ndarray) -> tuple[list, list]:
    """Labels and matrix computed on whole arrays (reference 0 not counted, classified 0 = no
    class): what the streamed computation must equal."""
    ref, pred = reference.ravel(), classified.ravel()
    keep = ref != 0
    ref, pred = ref[keep], pred[keep]
    labels = sorted((set(ref.tolist()) | set(pred.tolist())) - {0})
    index = {v: i for i, v in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels) + 1), dtype=int)
    for r, p in zip(ref.tolist(), pred.tolist(), strict=True):
        matrix[index[r], index[p] if p else len(labels)] += 1
    return labels, matrix.tolist()
