"""Run in a subprocess by test_train_quality.py (rasterio stays out of the pytest process): the
IoU of one class of a class raster against polygons, every pixel counted (background too).

    python quality_probe.py classes.tif polygons.geojson VALUE

Prints JSON: {"iou": ..., "predicted": pixels, "reference": pixels}.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import rasterio
from rasterio.features import rasterize

if __name__ == "__main__":
    raster, polygons, value = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with rasterio.open(raster) as ds:
        predicted = ds.read(1) == value
        features = json.loads(Path(polygons).read_text(encoding="utf-8"))["features"]
        shapes = [(f["geometry"], 1) for f in features]
        reference = rasterize(shapes, out_shape=predicted.shape, transform=ds.transform) == 1
    union = int((predicted | reference).sum())
    print(
        json.dumps(
            {
                "iou": int((predicted & reference).sum()) / union if union else None,
                "predicted": int(predicted.sum()),
                "reference": int(reference.sum()),
            }
        )
    )
