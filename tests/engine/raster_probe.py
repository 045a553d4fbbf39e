"""Facts about a synthetic scene, as JSON on stdout: ``python raster_probe.py scene.tif``.

Run in a subprocess by the tests, so the pytest process never imports rasterio (it may also
import qgis, and two GDALs in one process do not mix).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import rasterio
from rasterio.features import rasterize
from shapely.geometry import box, shape


def probe(tif: str, buildings: str, roads: str) -> dict:
    with rasterio.open(tif) as ds:
        data = ds.read()
        bounds = box(*ds.bounds)
        out = {
            "width": ds.width, "height": ds.height, "count": ds.count,
            "dtypes": list(ds.dtypes), "epsg": ds.crs.to_epsg() if ds.crs else None,
            "is_projected": bool(ds.crs and ds.crs.is_projected),
            "transform": list(ds.transform)[:6], "bounds": list(ds.bounds),
            "tiled": ds.profile.get("tiled"), "blockxsize": ds.profile.get("blockxsize"),
            "compress": str(ds.compression.value if ds.compression else None).lower(),
            "overviews": ds.overviews(1),
            "colorinterp": [c.name for c in ds.colorinterp],
            "sha256": hashlib.sha256(data.tobytes()).hexdigest(),
        }  # fmt: skip
        transform, shape_ = ds.transform, (ds.height, ds.width)
    bfc = json.loads(Path(buildings).read_text())
    rfc = json.loads(Path(roads).read_text())
    out["buildings_crs"] = bfc.get("crs", {}).get("properties", {}).get("name")
    out["roads_crs"] = rfc.get("crs", {}).get("properties", {}).get("name")
    rows = []
    for f in bfc["features"]:
        g = shape(f["geometry"])
        mask = rasterize([(g, 1)], out_shape=shape_, transform=transform, dtype="uint8")
        inner = rasterize([(g.buffer(-2 * transform.a), 1)], out_shape=shape_,
                          transform=transform, dtype="uint8")  # fmt: skip
        pix = data[:3, inner.astype(bool)]
        rows.append({
            "id": f["properties"]["id"], "class": f["properties"]["class"],
            "roof": f["properties"]["roof"], "within": bool(bounds.contains(g)),
            "area_px": int(mask.sum()), "area_geom_px": g.area / transform.a**2,
            "mean": pix.mean(axis=1).tolist(), "std": float(pix.std(axis=1).max()),
        })  # fmt: skip
    out["buildings"] = rows
    road_rows = []
    for f in rfc["features"]:
        g = shape(f["geometry"])
        inner = rasterize([(g.buffer(-2 * transform.a), 1)], out_shape=shape_,
                          transform=transform, dtype="uint8")  # fmt: skip
        pix = data[:3, inner.astype(bool)]
        road_rows.append({
            "class": f["properties"]["class"], "kind": f["properties"]["kind"],
            "within": bool(bounds.buffer(1e-6).contains(g)),
            "median": np.median(pix, axis=1).tolist(),
        })  # fmt: skip
    out["roads"] = road_rows
    return out


if __name__ == "__main__":
    tif = sys.argv[1]
    folder = Path(tif).parent
    print(json.dumps(probe(tif, str(folder / "buildings.geojson"), str(folder / "roads.geojson"))))
