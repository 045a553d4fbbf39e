"""Benchmark of inference: throughput against the bare forward pass, and memory as rasters grow.

    .venv/bin/python bench/infer.py [--quick] [--out result.json] [--no-huge]

Models: a UNET (Classify Pixels) and an SSD (Detect Objects) on RESNET18 with 256 px chips,
trained for one epoch on a synthetic export (speed does not depend on how well they learnt),
cached in bench/.cache/infer/. Rasters: benchlib's seeded 3-band uint8 GeoTIFFs (tiled,
DEFLATE) of 4,000^2 and 16,000^2 pixels (quick: 2,000^2 and 4,000^2), and a sparse
50,000^2 GeoTIFF with no block written (every chip is no data; quick: 12,000^2).

For each tool it measures:

1. throughput: chips per second of ``python -m dlstudio_qgis.engine infer`` on the smaller
   raster (its own loop: reading, the model, writing and suppression, from the result's
   ``loop_seconds``; and end to end, from the process's start to its exit, start-up included),
   with nothing watching it (the memory poller takes CPU from a worker using every core);
2. bare: the same model (freshly loaded the same way, no warm-up, as in the worker) on the
   same chips, in the same order and batches, already normalised in memory (up to 256
   batches), ``model(x)`` only, in a fresh process (as the worker) with the same threads;
   ``ratio_loop_to_bare`` = (1) / (2); target >= 0.85;
3. memory: the worker's peak RSS on the larger raster over the smaller;
   ``ratio_peak_rss`` target <= 1.2;
4. the huge sparse raster completes (``huge_ok``), with its time and peak RSS.

The JSON goes to stdout (and ``--out``); notes go to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import benchlib  # noqa: E402

TARGET_RATIO, TARGET_MEMORY = 0.85, 1.2
CACHE = benchlib.CACHE / "infer"
CLASSES = [
    {"value": 1, "name": "building", "color": "#e6194b"},
    {"value": 2, "name": "road", "color": "#3cb44b"},
]
MODELS = {"classify_pixels": ("UNET", "Classified_Tiles"),
          "detect_objects": ("SSD", "PASCAL_VOC_rectangles")}  # fmt: skip
BATCH = 4
BARE_BATCHES = 256  # at most (the quick raster has 16)


def note(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(benchlib.REPO), env.get("PYTHONPATH")]))
    return env


def _engine(*args) -> dict:
    import subprocess

    argv = [benchlib.python(), "-m", "dlstudio_qgis.engine", *map(str, args)]
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=benchlib.REPO, env=_env())
    if proc.returncode != 0:
        raise SystemExit(f"engine {args[0]} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def packages() -> dict[str, Path]:
    """{tool: .dlpk}: made once (scene, export, one epoch of training)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    out = {}
    scene = CACHE / "scene.tif"
    if not scene.exists():
        _engine("synth-scene", "-o", scene, "--size", 1024, "--seed", 5, "--no-overviews")
    for tool, (model_type, fmt) in MODELS.items():
        dlpk = CACHE / f"{model_type.lower()}.dlpk"
        out[tool] = dlpk
        if dlpk.exists():
            continue
        note(f"training a {model_type} for one epoch (once)")
        samples = "buildings" if fmt == "PASCAL_VOC_rectangles" else None
        features = []
        for name in [samples] if samples else ["buildings", "roads"]:
            data = json.loads((CACHE / f"{name}.geojson").read_text())
            for f in data["features"]:
                f["properties"] = {"class_value": f["properties"]["class"]}
            features += data["features"]
        sample_file = CACHE / f"{model_type}_samples.geojson"
        sample_file.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
        export = CACHE / f"export_{model_type}"
        job = {"raster": str(scene), "samples": str(sample_file), "classes": CLASSES,
               "output": str(export), "metadata_format": fmt, "tile_size": [256, 256],
               "stride": [128, 128], "overwrite": True}  # fmt: skip
        (CACHE / "export.json").write_text(json.dumps(job))
        _engine("export", CACHE / "export.json")
        train = {"in_folder": str(export), "output": str(dlpk), "model_type": model_type,
                 "backbone": "RESNET18", "batch_size": 4, "max_epochs": 1,
                 "learning_rate": 1e-3, "validation_percent": 20, "overwrite": True}  # fmt: skip
        (CACHE / "train.json").write_text(json.dumps(train))
        _engine("train", CACHE / "train.json")
    return out


def rasters(sizes: list[int], huge: int | None) -> dict[int, Path]:
    out = {}
    for size in sizes:
        path = CACHE / f"raster_{size}.tif"
        if not path.exists():
            note(f"writing a {size}^2 raster (once)")
            benchlib.write_raster(path, size, seed=1)
        out[size] = path
    if huge:
        out[huge] = _sparse(huge)
    return out


def _sparse(size: int) -> Path:
    """A size^2 3-band GeoTIFF with nodata 0 and no block written: a few KB on disk."""
    import rasterio
    from rasterio.transform import from_origin

    path = CACHE / f"sparse_{size}.tif"
    if not path.exists():
        with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=3,
                           dtype="uint8", crs=benchlib.CRS, nodata=0, tiled=True,
                           blockxsize=256, blockysize=256, compress="deflate",
                           sparse_ok=True, bigtiff="yes",
                           transform=from_origin(*benchlib.ORIGIN, benchlib.PIXEL,
                                                 benchlib.PIXEL)):  # fmt: skip
            pass
    return path


def run_plain(tool: str, model: Path, raster: Path, tag: str) -> tuple[dict, float]:
    """(result, wall seconds) of the worker with nothing watching it: the memory poller of
    run_worker takes CPU from a worker that uses every core."""
    import subprocess

    path = _job(tool, model, raster, tag)
    argv = [benchlib.python(), "-m", "dlstudio_qgis.engine", "infer", str(path)]
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=benchlib.REPO, env=_env())
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"infer {tag} failed: {proc.stdout[-2000:]}")
    _clean(path)
    return json.loads(proc.stdout.strip().splitlines()[-1]), wall


def _job(tool: str, model: Path, raster: Path, tag: str) -> Path:
    out = CACHE / "runs" / f"{tag}.{'tif' if tool == 'classify_pixels' else 'geojsonl'}"
    out.parent.mkdir(parents=True, exist_ok=True)
    job = {"tool": tool, "raster": str(raster), "model": str(model), "output": str(out),
           "arguments": {"batch_size": BATCH}, "overwrite": True}  # fmt: skip
    path = CACHE / "runs" / f"{tag}.json"
    path.write_text(json.dumps(job))
    return path


def _clean(job_path: Path) -> None:
    out = Path(json.loads(job_path.read_text())["output"])
    for f in out.parent.glob(f"{out.name}*"):
        f.unlink()


def run_infer(tool: str, model: Path, raster: Path, tag: str) -> benchlib.Run:
    path = _job(tool, model, raster, tag)
    argv = [benchlib.python(), "-m", "dlstudio_qgis.engine", "infer", str(path)]
    run = benchlib.run_worker(argv, CACHE / "runs" / f"{tag}.log", env=_env())
    if run.returncode != 0:
        raise SystemExit(f"infer {tag} failed: {run.error} {run.stderr_tail}")
    _clean(path)
    return run


def bare(tool: str, model: Path, raster: Path) -> float:
    """Chips per second of the model alone on chips already in memory, measured in a fresh
    process as the worker's loop is (a process that has run models before runs them faster)."""
    import subprocess

    argv = [benchlib.python(), str(Path(__file__).resolve()), "--bare", tool, str(model),
            str(raster)]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=benchlib.REPO, env=_env())
    if proc.returncode != 0:
        raise SystemExit(f"bare {tool} failed: {proc.stderr[-2000:]}")
    return float(proc.stdout.strip().splitlines()[-1])


def _bare_here(tool: str, model: Path, raster: Path) -> float:
    import torch

    from dlstudio_qgis.engine.infer.job import InferJob
    from dlstudio_qgis.engine.infer.model import load_model, set_detector_thresholds
    from dlstudio_qgis.engine.infer.raster import (
        ChipReader,
        batches,
        grid,
        open_raster,
        padding_of,
        region_of,
    )

    job = InferJob.from_dict({"tool": tool, "raster": str(raster), "model": str(model),
                              "output": "/dev/null",
                              "arguments": {"batch_size": BATCH}})  # fmt: skip
    with open_raster(job.raster) as ds:
        m = load_model(job, ds.count, lambda _m: None)
        pad = padding_of(job.arguments, m.chip_size)
        cols, rows = grid(region_of(ds, None), m.chip_size, pad)
        reader = ChipReader(ds, m.bands, m.chip_size, m.mean)
        origins = ((c - pad, r - pad, r) for r in rows for c in cols)
        inputs = []
        for batch in batches(reader, origins, BATCH):
            inputs.append(m.normalise(batch.pixels))
            if len(inputs) == BARE_BATCHES:
                break
    if tool == "detect_objects":
        set_detector_thresholds(m.model, job.arguments["threshold"], job.arguments["nms_overlap"])
    forward = (lambda x: m.model(list(x))) if tool == "detect_objects" else m.model
    # no warm-up: the worker's loop starts with a freshly loaded model too
    with torch.inference_mode():
        t0 = time.perf_counter()
        for x in inputs:
            forward(x)
        dt = time.perf_counter() - t0
    return sum(len(x) for x in inputs) / dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2,000^2 / 4,000^2 / sparse 12,000^2")
    ap.add_argument("--no-huge", action="store_true", help="skip the huge sparse raster")
    ap.add_argument("--out", help="also write the JSON here")
    ap.add_argument("--bare", nargs=3, metavar=("TOOL", "MODEL", "RASTER"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.bare:
        print(_bare_here(args.bare[0], Path(args.bare[1]), Path(args.bare[2])))
        return
    small, large, huge = (2000, 4000, 12000) if args.quick else (4000, 16000, 50000)
    report = {"machine": benchlib.machine(), "quick": args.quick,
              "sizes": [small, large, huge], "target_ratio": TARGET_RATIO,
              "target_memory": TARGET_MEMORY, "tools": {}}  # fmt: skip
    models = packages()
    paths = rasters([small, large], None if args.no_huge else huge)
    for tool, model in models.items():
        note(f"{tool}: worker on {small}^2 (timed alone, then with the memory poller)")
        result, wall = run_plain(tool, model, paths[small], f"{tool}_{small}")
        loop = result["chips"] / result["loop_seconds"]
        base = run_infer(tool, model, paths[small], f"{tool}_{small}")
        note(f"{tool}: bare forward pass")
        bare_rate = bare(tool, model, paths[small])
        note(f"{tool}: worker on {large}^2")
        big = run_infer(tool, model, paths[large], f"{tool}_{large}")
        entry = {
            "chips": base.result["chips"],
            "loop_chips_per_s": round(loop, 3),
            "end_to_end_chips_per_s": round(result["chips"] / wall, 3),
            "bare_chips_per_s": round(bare_rate, 3),
            "ratio_loop_to_bare": round(loop / bare_rate, 3),
            "ratio_end_to_end_to_bare": round(result["chips"] / wall / bare_rate, 3),
            "pixels_per_s": round(base.result["pixels_per_second"]),
            "peak_rss_mb": {str(small): base.peak_tree_rss_mb, str(large): big.peak_tree_rss_mb},
            "ratio_peak_rss": round(big.peak_tree_rss_mb / base.peak_tree_rss_mb, 3),
            "seconds": {str(small): round(wall, 1), str(large): round(big.seconds, 1)},
            "others_cpu_s": [base.others_cpu_s, big.others_cpu_s],
        }
        if not args.no_huge:
            note(f"{tool}: worker on the sparse {huge}^2")
            h = run_infer(tool, model, paths[huge], f"{tool}_{huge}")
            entry["huge"] = {"ok": h.returncode == 0, "seconds": round(h.seconds, 1),
                             "peak_rss_mb": h.peak_tree_rss_mb,
                             "chips": h.result["chips"]}  # fmt: skip
        entry["meets_ratio"] = entry["ratio_loop_to_bare"] >= TARGET_RATIO
        entry["meets_memory"] = entry["ratio_peak_rss"] <= TARGET_MEMORY
        report["tools"][tool] = entry
        note(json.dumps(entry))
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
