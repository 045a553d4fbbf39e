"""Helpers for the export tests: test rasters, samples, jobs, and reading the chips back.

The export runs as the plugin runs it, ``python -m dlstudio_qgis.engine export job.json`` in a
subprocess (rasterio and shapely stay there). This process reads and writes rasters with
osgeo.gdal / osgeo.ogr, the GDAL that QGIS uses, so it can share a pytest run with QGIS.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from engine_helpers import Run, run_engine
from osgeo import gdal, ogr, osr

gdal.UseExceptions()
ogr.UseExceptions()
osr.UseExceptions()

# the shared test data: in the checkout, or beside it (<work>/main/tests/engine/export/...)
DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
if not DATA.is_dir():
    DATA = Path(__file__).resolve().parents[4] / "shared" / "data"

X0, Y0, PX = 500000.0, 4000000.0, 0.5  # the synthetic rasters: top-left corner, pixel size
GT = (X0, PX, 0.0, Y0, 0.0, -PX)
CLASSES = [
    {"value": 1, "name": "building", "color": "#ff0000"},
    {"value": 2, "name": "tree", "color": "#00ff00"},
]
GDAL_TYPES = {
    "uint8": gdal.GDT_Byte, "uint16": gdal.GDT_UInt16, "int16": gdal.GDT_Int16,
    "float32": gdal.GDT_Float32,
}  # fmt: skip


def make_raster(path, width=300, height=260, bands=3, dtype="uint8", epsg=32611,
                nodata=None, seed=0, gt=GT) -> tuple[Path, np.ndarray]:  # fmt: skip
    """A GeoTIFF of random pixels; returns its path and its (bands, rows, cols) array."""
    rng = np.random.default_rng(seed)
    hi = 255 if dtype == "uint8" else 4000
    data = rng.integers(1, hi, size=(bands, height, width)).astype(dtype)
    if nodata is not None:
        data[:, :40, :60] = nodata  # a nodata corner
    ds = gdal.GetDriverByName("GTiff").Create(str(path), width, height, bands, GDAL_TYPES[dtype])
    ds.SetGeoTransform(gt)
    if epsg:
        srs = osr.SpatialReference()
        srs.ImportFromEPSG(epsg)
        ds.SetProjection(srs.ExportToWkt())
    for b in range(bands):
        band = ds.GetRasterBand(b + 1)
        if nodata is not None:
            band.SetNoDataValue(nodata)
        band.WriteArray(data[b])
    ds = None
    return Path(path), data


def to_map(col: float, row: float, gt=GT) -> tuple[float, float]:
    return gt[0] + col * gt[1] + row * gt[2], gt[3] + col * gt[4] + row * gt[5]


def rect(c0, r0, c1, r1, cls=1, fid=None, gt=GT) -> dict:
    """A polygon sample over pixel columns c0..c1 and rows r0..r1 (pixel edges)."""
    (x0, y1), (x1, y0) = to_map(c0, r0, gt), to_map(c1, r1, gt)
    ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
    props = {"class_value": cls, **({"fid": fid} if fid is not None else {})}
    return {"type": "Feature", "properties": props,
            "geometry": {"type": "Polygon", "coordinates": [ring]}}  # fmt: skip


def point(col, row, cls=1, gt=GT) -> dict:
    x, y = to_map(col, row, gt)
    return {"type": "Feature", "properties": {"class_value": cls},
            "geometry": {"type": "Point", "coordinates": [x, y]}}  # fmt: skip


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


class Export:
    """One export run: the messages, the result, the output folder."""

    def __init__(self, run: Run, out: Path, job: dict) -> None:
        self.run, self.out, self.job = run, out, job
        self.result = run.last if run.messages and run.last else {}

    @property
    def ok(self) -> bool:
        return self.run.rc == 0 and self.result.get("type") == "result"

    def map_lines(self) -> list[list[str]]:
        return [line.split() for line in (self.out / "map.txt").read_text().splitlines()]

    def json(self, name: str) -> dict:
        return json.loads((self.out / name).read_text())


def export(tmp_path: Path, raster, features, name="out", samples_at=None, **params) -> Export:
    """Run an export of `features` (GeoJSON features) from `raster` into tmp_path/name."""
    samples = write_json(samples_at or tmp_path / f"{name}_samples.geojson",
                         {"type": "FeatureCollection", "features": features})  # fmt: skip
    job = {
        "raster": str(raster), "samples": str(samples), "classes": CLASSES,
        "output": str(tmp_path / name), "tile_size": [128, 128], "stride": [64, 64],
        "workers": 2, **params,
    }  # fmt: skip
    job_path = write_json(tmp_path / f"{name}_job.json", job)
    run = run_engine("export", job_path)
    return Export(run, Path(job["output"]), job)


def read(path) -> tuple[np.ndarray, tuple, str, float | None]:
    """A raster's (bands, rows, cols) array, geotransform, CRS WKT and nodata."""
    ds = gdal.Open(str(path))
    data = ds.ReadAsArray()
    if data.ndim == 2:
        data = data[None]
    out = data, ds.GetGeoTransform(), ds.GetProjection(), ds.GetRasterBand(1).GetNoDataValue()
    ds = None
    return out


def chip_to_source(gt, col, row, src_gt=GT) -> tuple[float, float]:
    """Where a chip pixel corner lies in the source raster's pixels."""
    x, y = to_map(col, row, gt)
    return (x - src_gt[0]) / src_gt[1], (y - src_gt[3]) / src_gt[5]


def boxes_of(xml_path: Path) -> list[tuple]:
    import xml.etree.ElementTree as ET

    out = []
    for obj in ET.parse(xml_path).getroot().findall("object"):
        bb = obj.find("bndbox")
        out.append((obj.findtext("name"), *(float(bb.findtext(k)) for k in
                                             ("xmin", "ymin", "xmax", "ymax"))))  # fmt: skip
    return out


def same_folder_state(tmp_path: Path, name: str) -> list[str]:
    """What an export left in tmp_path under `name` (the folder, or partial folders)."""
    return sorted(p.name for p in tmp_path.iterdir() if p.name == name or
                  p.name.startswith(f".{name}."))  # fmt: skip
