#!/usr/bin/env python3
"""Split the demo scene into a training area and a held-out area, and write the reference.

    .venv/bin/python scripts/demo_split.py SYNTH_RESULT.json OUT_DIR [--train-fraction 0.75]

SYNTH_RESULT.json is the result line of ``python -m dlstudio_qgis.engine synth-scene`` (the
scene's extent, size, pixel size and CRS, and its buildings.geojson and roads.geojson). The
split falls on a pixel row: training uses the top part, inference and accuracy run on the
bottom part (a wide strip, which shows well in a report), which no training chip touches.
Writes into OUT_DIR:

- ``areas.geojson``: the two areas as polygons (``area`` = training / held-out);
- ``land_cover.geojson``: every pixel of the scene in one class, as one polygon layer: the
  buildings and roads, and the ground (all the rest, one polygon with holes), with ``class``
  (building / ground / road: the names the pixel classifier learns, numbered 1, 2, 3 in that
  order by the export) and ``class_value`` (1 / 2 / 3). With ground labelled too, the pixel
  accuracy counts a building or road predicted on bare ground as the error it is;
- ``held_out.geojson``: the held-out area alone (the mask of the detection accuracy);
- ``split.json``: the split row and both extents, as [xmin, ymin, xmax, ymax] and as the
  ``xmin,xmax,ymin,ymax [CRS]`` text qgis_process takes for an EXTENT.

Run it with the venv's Python (it uses shapely for the ground polygon).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from shapely.geometry import box, mapping, shape
from shapely.ops import unary_union

CLASSES = {1: "building", 2: "ground", 3: "road"}


def extent_text(bounds: list[float], crs: str) -> str:
    xmin, ymin, xmax, ymax = bounds
    return f"{xmin!r},{xmax!r},{ymin!r},{ymax!r} [{crs}]"


def rectangle(bounds: list[float]) -> dict:
    xmin, ymin, xmax, ymax = bounds
    ring = [[xmin, ymin], [xmax, ymin], [xmax, ymax], [xmin, ymax], [xmin, ymin]]
    return {"type": "Polygon", "coordinates": [ring]}


def collection(name: str, crs: str, features: list[dict]) -> dict:
    return {
        "type": "FeatureCollection",
        "name": name,
        "crs": {"type": "name", "properties": {"name": crs}},
        "features": features,
    }


def split(scene: dict, fraction: float) -> dict:
    """The split row and the two areas' bounds, from the synth-scene result."""
    xmin, ymin, xmax, ymax = scene["extent"]
    height, px = int(scene["height"]), float(scene["pixel_size"])
    row = round(height * fraction)
    if not 0 < row < height:
        raise SystemExit(f"demo_split: --train-fraction {fraction} leaves an empty area.")
    split_y = ymax - row * px
    return {
        "crs": scene["crs"],
        "row": row,
        "rows": height,
        "split_y": split_y,
        "training": [xmin, split_y, xmax, ymax],
        "held_out": [xmin, ymin, xmax, split_y],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("synth_result", type=Path)
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--train-fraction", type=float, default=0.75)
    args = ap.parse_args(argv)
    scene = json.loads(args.synth_result.read_text().strip().splitlines()[-1])
    parts = split(scene, args.train_fraction)
    crs = parts["crs"]
    args.out_dir.mkdir(parents=True, exist_ok=True)

    areas = [
        {"type": "Feature", "properties": {"area": name}, "geometry": rectangle(parts[key])}
        for name, key in (("training", "training"), ("held-out", "held_out"))
    ]
    (args.out_dir / "areas.geojson").write_text(json.dumps(collection("areas", crs, areas)))

    features, covered = [], []
    for value, key in ((1, "buildings"), (3, "roads")):
        for f in json.loads(Path(scene[key]).read_text())["features"]:
            props = {"class": CLASSES[value], "class_value": value, "source_id": f.get("id")}
            features.append({"type": "Feature", "properties": props, "geometry": f["geometry"]})
            covered.append(shape(f["geometry"]))
    ground = box(*scene["extent"]).difference(unary_union(covered))
    props = {"class": CLASSES[2], "class_value": 2, "source_id": None}
    features.append({"type": "Feature", "properties": props, "geometry": mapping(ground)})
    held_out = [{"type": "Feature", "properties": {"area": "held-out"},
                 "geometry": rectangle(parts["held_out"])}]  # fmt: skip
    (args.out_dir / "held_out.geojson").write_text(
        json.dumps(collection("held_out", crs, held_out))
    )
    for i, f in enumerate(features, 1):
        f["id"] = i
    (args.out_dir / "land_cover.geojson").write_text(
        json.dumps(collection("land_cover", crs, features))
    )
    parts["training_text"] = extent_text(parts["training"], crs)
    parts["held_out_text"] = extent_text(parts["held_out"], crs)
    (args.out_dir / "split.json").write_text(json.dumps(parts, indent=1) + "\n")
    print(
        f"training area: rows 0-{parts['row'] - 1} (the top {args.train_fraction:.0%}); "
        f"held-out area: rows {parts['row']}-{parts['rows'] - 1}, y < {parts['split_y']:.1f}; "
        f"{len(features)} land cover polygons"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
