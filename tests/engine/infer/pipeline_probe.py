"""Runs the inference pipeline (real reader, tiling, writer, suppression) with exact models.

Run in a subprocess by test_pipeline.py (rasterio and torch stay out of the pytest process):
``python pipeline_probe.py <case> <folder>`` prints one JSON object.

The models are real torch modules whose answer is known exactly, so the tests can check the
pipeline's assembly pixel for pixel and box for box: a 1x1 convolution (each pixel's class
depends on that pixel only, so any seam or misplaced chip shows up) and a detector that boxes
the bright squares of a chip (connected components), as a perfect detector would.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.transform import from_origin
from scipy import ndimage

from dlstudio_qgis.engine.infer import objects as objects_module
from dlstudio_qgis.engine.infer import pixels as pixels_module
from dlstudio_qgis.engine.infer.job import InferJob
from dlstudio_qgis.engine.infer.model import InferModel
from dlstudio_qgis.engine.infer.objects import detect_objects
from dlstudio_qgis.engine.infer.pixels import classify_pixels
from dlstudio_qgis.engine.infer.raster import open_raster, prefetch, region_of
from dlstudio_qgis.engine.protocol import Reporter

CLASSES = [
    {"Value": 3, "Name": "red", "Color": [255, 0, 0]},
    {"Value": 7, "Name": "green", "Color": "#00ff00"},
]
ORIGIN = (500000.0, 4100000.0)
PIXEL = 0.5
#: squares (col, row, size, class index 1 or 2): some straddle the 48-px core borders
SQUARES = [(10, 10, 12, 1), (40, 40, 16, 2), (88, 20, 14, 1), (140, 92, 10, 2),
           (95, 95, 6, 1), (30, 150, 20, 2), (170, 170, 9, 1), (60, 110, 12, 1)]  # fmt: skip
SIZE = (200, 190)  # width, height


class PointwiseSegmenter(torch.nn.Module):
    """Class = argmax(0.5, band 1, band 2) per pixel (index 0 = background)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 1)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.bias.copy_(torch.tensor([0.5, 0.0, 0.0]))
            self.conv.weight[1, 0] = 1.0
            self.conv.weight[2, 1] = 1.0

    def forward(self, x):
        return self.conv(x)


class SquareDetector(torch.nn.Module):
    """Boxes each bright connected component of band 1 (class 1) or band 2 (class 2)."""

    def forward(self, images, targets=None):
        out = []
        for img in images:
            boxes, labels = [], []
            for band, label in ((0, 1), (1, 2)):
                lab, _ = ndimage.label(img[band].numpy() > 0.5)
                for sl in ndimage.find_objects(lab):
                    ys, xs = sl
                    boxes.append([xs.start, ys.start, xs.stop, ys.stop])
                    labels.append(label)
            out.append({
                "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                "scores": torch.full((len(boxes),), 0.9),
                "labels": torch.tensor(labels, dtype=torch.int64),
            })  # fmt: skip
        return out


def make_raster(path: Path, nodata_block: bool) -> np.ndarray:
    w, h = SIZE
    data = np.zeros((3, h, w), np.float32)
    for col, row, size, cls in SQUARES:
        data[cls - 1, row : row + size, col : col + size] = 1.0
    rng = np.random.default_rng(0)
    data[2] = rng.random((h, w))  # band 3: noise the models ignore
    if nodata_block:
        data[:, 0:70, 130:200] = -9999  # whole chips of no data too
    with rasterio.open(
        path, "w", driver="GTiff", width=w, height=h, count=3, dtype="float32",
        crs="EPSG:32633", transform=from_origin(*ORIGIN, PIXEL, PIXEL), nodata=-9999,
        tiled=True, blockxsize=64, blockysize=64,
    ) as dst:  # fmt: skip
        dst.write(data)
    return data


def model(module, task: str) -> InferModel:
    return InferModel(
        model=module.eval(), emd={"ModelParameters": {"backbone": "none"}}, model_type="X",
        task=task, classes=CLASSES, chip_size=64, bands=[1, 2, 3],
        mean=np.zeros(3, np.float32), std=np.ones(3, np.float32), device=torch.device("cpu"),
    )  # fmt: skip


def run(job: dict, m: InferModel, fn) -> tuple[dict, list]:
    job = InferJob.from_dict(job)
    messages = []

    class Sink:
        def write(self, text):
            messages.append(text)

        def flush(self):
            pass

    with open_raster(job.raster) as ds:
        result = fn(job, m, ds, region_of(ds, job.extent), Reporter(Sink()))
    return result, messages


def pixels_case(folder: Path, extent, padding: int) -> dict:
    tif = folder / "squares.tif"
    data = make_raster(tif, nodata_block=True)
    out = folder / f"classes_{padding}_{bool(extent)}.tif"
    job = {"tool": "classify_pixels", "raster": str(tif), "model": str(tif), "output": str(out),
           "extent": extent, "arguments": {"padding": padding, "batch_size": 3}}  # fmt: skip
    result, _ = run(job, model(PointwiseSegmenter(), "semantic_segmentation"), classify_pixels)
    expected = np.argmax(np.stack([np.full(data.shape[1:], 0.5), data[0], data[1]]), 0)
    expected = np.array([0, 3, 7])[expected]
    expected[(data == -9999).all(0)] = 0
    with rasterio.open(out) as ds:
        got = ds.read(1)
        col0, row0 = ~ds.transform * (ds.transform.c, ds.transform.f)
        src_col, src_row = ~from_origin(*ORIGIN, PIXEL, PIXEL) * (ds.transform.c, ds.transform.f)
        window = expected[round(src_row) : round(src_row) + ds.height,
                          round(src_col) : round(src_col) + ds.width]  # fmt: skip
        info = {
            "shape": [ds.height, ds.width], "offset": [round(src_col), round(src_row)],
            "dtype": ds.dtypes[0], "nodata": ds.nodata, "crs": ds.crs.to_epsg(),
            "tiled": ds.profile.get("tiled"),
            "compress": ds.compression.value if ds.compression else None,
            "colormap": {str(k): list(v) for k, v in ds.colormap(1).items() if k in (0, 3, 7)},
            "mismatches": int((got != window).sum()), "values": sorted(np.unique(got).tolist()),
            "aux": Path(str(out) + ".aux.xml").read_text(),
        }  # fmt: skip
    partials = [p.name for p in folder.iterdir() if "partial" in p.name]
    return {"result": result, "info": info, "partials": partials}


def objects_case(folder: Path, exclude_pad: bool, run_nms: bool) -> dict:
    tif = folder / "squares.tif"
    make_raster(tif, nodata_block=False)
    out = folder / f"objects_{exclude_pad}_{run_nms}.geojsonl"
    job = {"tool": "detect_objects", "raster": str(tif), "model": str(tif), "output": str(out),
           "run_nms": run_nms, "arguments": {"padding": 8, "batch_size": 4, "threshold": 0.5,
                                             "exclude_pad_detections": exclude_pad}}  # fmt: skip
    result, _ = run(job, model(SquareDetector(), "detection"), detect_objects)
    features = [json.loads(line) for line in out.read_text().splitlines()]
    expected = []
    for col, row, size, cls in SQUARES:
        x0, y0 = ORIGIN[0] + col * PIXEL, ORIGIN[1] - row * PIXEL
        expected.append({"bounds": [x0, y0 - size * PIXEL, x0 + size * PIXEL, y0],
                         "class_value": CLASSES[cls - 1]["Value"]})  # fmt: skip
    got = []
    for f in features:
        ring = f["geometry"]["coordinates"][0]
        xs, ys = [p[0] for p in ring], [p[1] for p in ring]
        got.append({"bounds": [min(xs), min(ys), max(xs), max(ys)], **f["properties"]})
    return {"result": result, "expected": expected, "got": got}


if __name__ == "__main__":
    case, folder = sys.argv[1], Path(sys.argv[2])
    args = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    if args.pop("reader_thread", False):  # the GPU's way: chips read in a thread, ahead
        for module in (objects_module, pixels_module):
            module.read_ahead = lambda items, device: prefetch(items)
    fn = {"pixels": pixels_case, "objects": objects_case}[case]
    print(json.dumps(fn(folder, **args)))
