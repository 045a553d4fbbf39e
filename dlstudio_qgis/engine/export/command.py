"""``export``: Export Training Data for Deep Learning, from a job file the QGIS side writes.

    python -m dlstudio_qgis.engine export job.json [--workers N] [--overwrite]

The job (`job.ExportJob`) names the raster, the samples (GeoJSON in the raster's CRS, each
with an integer ``class_value``), the classes and the parameters. The result line::

    {"type": "result", "command": "export", "output": ..., "chips": ..., "tiles": ...,
     "objects": ..., "dropped": ..., "objects_per_class": {"1": ...}, "skipped_tiles": ...,
     "seconds": ..., "chips_per_second": ..., "metadata_format": ..., "image_format": ...,
     "emd": ".../esri_model_definition.emd", "workers": ...}

This module imports nothing heavy: numpy, rasterio and shapely load when the export runs.
"""

from __future__ import annotations

import argparse

from .job import ExportJob

HELP = "export training data (image chips, labels, model definition) for deep learning"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    s = argparse.SUPPRESS
    parser.add_argument("--output", default=s, help="output folder (overrides the job's)")
    parser.add_argument("--workers", type=int, default=s, help="worker processes (0 = cores)")
    parser.add_argument("--overwrite", action="store_true", default=s,
                        help="replace a non-empty output folder")  # fmt: skip


def run(params: dict, reporter) -> dict:
    from .exporter import export

    job = ExportJob.from_dict(params)
    return export(job, reporter)
