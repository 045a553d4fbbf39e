"""``infer``: Detect Objects, Classify Pixels or Classify Objects with a deep learning package.

    python -m dlstudio_qgis.engine infer job.json [--tool T] [--processor-type CPU]

The job (`job.InferJob`) names the tool, the raster, the model (.dlpk or .emd) and the output.
The result line::

    {"type": "result", "command": "infer", "tool": ..., "output": ..., "model_type": ...,
     "classes": [...], "chips": ..., "seconds": ..., "device": "cpu", ...per tool...}

This module imports nothing heavy: numpy, rasterio and torch load when inference runs.
"""

from __future__ import annotations

import argparse
import time

from .job import TOOLS, InferJob

GDAL_CACHE_MB = 96
HELP = "run a deep learning package over a raster (detect objects, classify pixels or objects)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    s = argparse.SUPPRESS
    parser.add_argument("--tool", choices=TOOLS, default=s, help="the inference tool")
    parser.add_argument("--raster", default=s, help="the input raster")
    parser.add_argument("--model", default=s, help="the .dlpk or .emd")
    parser.add_argument("--output", default=s, help="the output file")
    parser.add_argument("--features", default=s, help="classify_objects: GeoJSON lines")
    parser.add_argument("--arguments", default=s, help="name=value;... (e.g. threshold=0.5)")
    parser.add_argument("--processor-type", dest="processor_type", default=s,
                        choices=("AUTO", "CPU", "GPU"), help="where the model runs")  # fmt: skip
    parser.add_argument("--trust-code", dest="trust_code", action="store_true", default=s,
                        help="accept a package that names its own inference code")  # fmt: skip


def run(params: dict, reporter) -> dict:
    from ..gdalenv import block_cache_env
    from .classify import classify_objects
    from .model import load_model
    from .objects import detect_objects
    from .outputs import check_output
    from .pixels import classify_pixels
    from .raster import open_raster, region_of

    job = InferJob.from_dict(params)
    check_output(job.output, job.overwrite)
    started = time.perf_counter()
    # a bounded block cache: chips are read in row order, so the two rows of blocks a row of
    # chips spans are enough (a 3-band uint8 raster up to ~60,000 px wide), and GDAL's
    # default (5% of RAM) would grow with the raster
    with block_cache_env(GDAL_CACHE_MB), open_raster(job.raster) as ds:
        region = region_of(ds, job.extent)
        m = load_model(job, ds.count, reporter.log)
        reporter.log(
            f"Model: {m.model_type} on {m.emd['ModelParameters'].get('backbone')}, "
            f"{len(m.classes)} classes ({', '.join(m.names)}), chips of {m.chip_size} px, "
            f"bands {m.bands}."
        )
        run_tool = {
            "detect_objects": detect_objects,
            "classify_pixels": classify_pixels,
            "classify_objects": classify_objects,
        }[job.tool]
        result = run_tool(job, m, ds, region, reporter)
    reporter.progress(100)
    return {
        "tool": job.tool,
        "output": job.output,
        "model_type": m.model_type,
        "classes": m.classes,
        "device": m.device.type,
        "seconds": round(time.perf_counter() - started, 3),
        **result,
    }
