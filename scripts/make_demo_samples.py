#!/usr/bin/env python3
"""Write the demo collectors' training samples from the synthetic scene's buildings.

Run with the venv's Python (it reads the scene with rasterio and shapely):

    .venv/bin/python scripts/make_demo_samples.py SCENE.tif OUT_DIR --cell PIXELS [--wrong N]

From ``buildings.geojson`` beside the scene it writes, in the scene's CRS, with a ``class``
field (1 = building):

- ``carla.geojson``: boxes for the buildings in the left half of the scene;
- ``colin.geojson``: boxes for the right half, N of them deliberately wrong (moved onto empty
  ground in the same work unit, so the building they belong to is not labelled);
- ``colin_fixed.geojson``: the correct boxes for those N buildings (what colin collects when
  the unit comes back to him);
- ``samples.json``: what was written, for the demo's summary.

Boxes are each building's bounding box, give or take a pixel (collectors are not perfect).
Deterministic: the same scene gives the same files.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import rasterio
from shapely.geometry import box, shape
from shapely.strtree import STRtree


def feature_collection(name: str, crs_name: str | None, boxes: list, note: str) -> dict:
    fc: dict = {"type": "FeatureCollection", "name": name}
    if crs_name:
        fc["crs"] = {"type": "name", "properties": {"name": crs_name}}
    fc["features"] = [
        {
            "type": "Feature",
            "id": i,
            "properties": {"id": i, "class": 1, "building": bid, "note": note},
            "geometry": {
                "type": "Polygon",
                "coordinates": [[[round(x, 3), round(y, 3)] for x, y in b.exterior.coords]],
            },
        }
        for i, (bid, b) in enumerate(boxes, 1)
    ]
    return fc


def jitter(geom, px: float, rng: random.Random):
    """The bounding box of `geom`, each edge moved by -1, 0 or +1 pixel."""
    x0, y0, x1, y1 = geom.bounds
    d = [rng.choice((-1, 0, 0, 1)) * px for _ in range(4)]
    return box(x0 + d[0], y0 + d[1], x1 + d[2], y1 + d[3])


def misplaced(geom, obstacles: STRtree, cell_bounds, image_bounds, margin: float):
    """The box moved onto empty ground inside its work unit, or None if there is no room."""
    x0, y0, x1, y1 = geom.bounds
    w, h = x1 - x0, y1 - y0
    for dist in (1.6, 2.2, 2.8, 3.5):
        for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, 1), (1, -1), (-1, -1)):
            cand = box(x0 + dx * dist * w, y0 + dy * dist * h, x1 + dx * dist * w,
                       y1 + dy * dist * h)  # fmt: skip
            cx0, cy0, cx1, cy1 = cand.bounds
            ux0, uy0, ux1, uy1 = cell_bounds
            if not (ux0 <= cx0 and cx1 <= ux1 and uy0 <= cy0 and cy1 <= uy1):
                continue
            ix0, iy0, ix1, iy1 = image_bounds
            if not (ix0 <= cx0 and cx1 <= ix1 and iy0 <= cy0 and cy1 <= iy1):
                continue
            if len(obstacles.query(cand.buffer(margin), predicate="intersects")):
                continue
            return cand
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scene", type=Path)
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--cell", type=float, required=True, help="work unit size in pixels")
    ap.add_argument("--wrong", type=int, default=4, help="wrong boxes in colin's samples")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)

    with rasterio.open(args.scene) as ds:
        left, bottom, right, top = ds.bounds
        px = ds.transform.a
        width = ds.width
    folder = args.scene.parent
    bfc = json.loads((folder / "buildings.geojson").read_text())
    rfc = json.loads((folder / "roads.geojson").read_text())
    crs_name = bfc.get("crs", {}).get("properties", {}).get("name")
    buildings = [(f["properties"]["id"], shape(f["geometry"])) for f in bfc["features"]]
    roads = [shape(f["geometry"]) for f in rfc["features"]]
    # roofs with their shadows (up to 10 px to the south-east), and the roads
    obstacles = STRtree(
        [box(g.bounds[0], g.bounds[1] - 12 * px, g.bounds[2] + 12 * px, g.bounds[3])
         for _, g in buildings] + roads
    )  # fmt: skip
    rng = random.Random(args.seed)
    mid_x = left + (width // 2) * px
    cell = args.cell * px

    def cell_of(g):
        c = g.centroid
        col, row = int((c.x - left) // cell), int((top - c.y) // cell)
        return (left + col * cell, max(bottom, top - (row + 1) * cell),
                min(right, left + (col + 1) * cell), top - row * cell)  # fmt: skip

    carla, colin = [], []
    for bid, g in buildings:
        (carla if g.centroid.x < mid_x else colin).append((bid, jitter(g, px, rng)))

    wrong, fixed = {}, []
    candidates = sorted(colin, key=lambda item: rng.random())
    for bid, g in candidates:
        if len(wrong) >= args.wrong:
            break
        moved = misplaced(g, obstacles, cell_of(g), (left, bottom, right, top), 2 * px)
        if moved is not None:
            wrong[bid] = moved
            fixed.append((bid, g))
    colin_out = [(bid, wrong.get(bid, g)) for bid, g in colin]

    args.out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "carla.geojson": feature_collection("carla", crs_name, carla, "collected by carla"),
        "colin.geojson": feature_collection("colin", crs_name, colin_out, "collected by colin"),
        "colin_fixed.geojson": feature_collection(
            "colin_fixed", crs_name, fixed, "re-collected by colin"
        ),
    }
    for name, fc in files.items():
        (args.out_dir / name).write_text(json.dumps(fc) + "\n", encoding="utf-8")
    summary = {
        "carla": len(carla),
        "colin": len(colin_out),
        "colin_wrong": sorted(wrong),
        "colin_fixed": len(fixed),
        "mid_x": mid_x,
    }
    (args.out_dir / "samples.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(
        f"carla: {len(carla)} boxes (left half); colin: {len(colin_out)} boxes (right half, "
        f"{len(wrong)} wrong on purpose: buildings {sorted(wrong)}); colin_fixed: {len(fixed)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
