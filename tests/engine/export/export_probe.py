"""Pieces of the export run alone, for the tests: ``python export_probe.py <what> spec.json``.

Run in a subprocess by the tests (rasterio and shapely stay out of the pytest process, which
may also import qgis). Prints JSON on stdout.

- ``chips``: for each case of the spec (dtype, bands, crs WKT, nodata, transform, rgb), write
  the same pixels with GDAL (`chips.write_raster`) to ``gdal_<i>.tif`` and with the export's
  `chips.ChipWriter` to ``tmpl_<i>.tif`` in the spec's folder; report whether the writer used
  its template, and what rasterio reads back from both.
- ``samples``: `samples.load_samples` on the spec's job, read as the export reads it (simple
  polygons parsed in bulk) and with every feature parsed one by one by shapely; reports both.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np


def chips(spec: dict) -> dict:
    import rasterio
    from affine import Affine
    from rasterio.crs import CRS

    from dlstudio_qgis.engine.export.chips import ChipWriter, write_raster

    folder = Path(spec["folder"])
    out = []
    for i, case in enumerate(spec["cases"]):
        rng = np.random.default_rng(i)
        bands, height, width = case["shape"]
        data = rng.integers(0, 250, size=(height, width, bands)).astype(case["dtype"])
        data = data.transpose(2, 0, 1)  # as the export reads: a view of interleaved pixels
        crs, nodata, rgb = CRS.from_wkt(case["crs"]), case["nodata"], case["rgb"]
        transform = Affine(*case["transform"])
        write_raster(folder / f"gdal_{i}.tif", data, transform, crs, nodata, rgb=rgb)
        writer = ChipWriter(crs, nodata, rgb=rgb)
        writer.write(str(folder / f"tmpl_{i}.tif"), data, transform)
        back = {}
        for kind in ("gdal", "tmpl"):
            with rasterio.open(folder / f"{kind}_{i}.tif") as ds:
                back[kind] = {
                    "crs_equal": ds.crs == crs, "transform": list(ds.transform)[:6],
                    "nodata": ds.nodata, "dtype": ds.dtypes[0], "count": ds.count,
                    "same_pixels": bool((ds.read() == data).all()),
                }  # fmt: skip
        out.append({"template": all(writer._templates.values()), "read": back})
    return {"cases": out}


def samples(spec: dict) -> dict:
    import shapely

    from dlstudio_qgis.engine.export import samples as mod
    from dlstudio_qgis.engine.export.job import ExportJob
    from dlstudio_qgis.engine.export.source import Region, SourceInfo
    from dlstudio_qgis.engine.protocol import Reporter

    job = ExportJob.from_dict(spec["job"])
    info = SourceInfo(**{**spec["info"], "bands": tuple(spec["info"]["bands"]),
                         "transform": tuple(spec["info"]["transform"]),
                         "band_names": tuple(spec["info"]["band_names"])})  # fmt: skip
    region = Region(0, 0, info.width, info.height, False)

    def load() -> dict:
        log = io.StringIO()
        s = mod.load_samples(job, info, region, Reporter(log))
        return {
            "wkb": [g.hex() for g in shapely.to_wkb(s.geoms)], "classes": s.classes.tolist(),
            "fids": s.fids, "bare": s.bare_point.tolist(), "areas": s.areas.tolist(),
            "outside": s.outside, "log": log.getvalue(),
        }  # fmt: skip

    bulk = load()
    mod._reader = lambda coords: None  # every feature as a dict, through shapely's shape()
    return {"bulk": bulk, "one_by_one": load()}


if __name__ == "__main__":
    what, spec_path = sys.argv[1], sys.argv[2]
    spec = json.loads(Path(spec_path).read_text())
    print(json.dumps({"chips": chips, "samples": samples}[what](spec)))
