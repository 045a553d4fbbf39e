"""``synth-scene``: a deterministic synthetic aerial scene with its labels.

Draws a textured background (bare soil and vegetation), straight and diagonal roads with lane
markings, trees, and buildings (rectangles with gabled roofs in a few roof colours, casting
shadows to the south-east). Writes:

- the image, a tiled, compressed GeoTIFF (uint8, RGB, or RGB + NIR with ``bands=4``) in a
  projected CRS, rendered window by window so memory stays bounded whatever the size;
- ``buildings.geojson``: one polygon per roof (property ``class`` = 1), and
- ``roads.geojson``: one polygon per road, clipped to the image (``class`` = 2),

both beside the image, in the raster's CRS (named in a ``crs`` member, which GDAL and QGIS
read). The same seed gives the same scene. Building edges fall on pixel edges, so a label
polygon covers exactly the roof pixels.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .protocol import InputError

if TYPE_CHECKING:  # the scene needs numpy: import it only when a scene is drawn
    from .scene import Layout

HELP = "draw a synthetic aerial scene (GeoTIFF) with buildings.geojson and roads.geojson"

DEFAULTS: dict = {
    "output": None,
    "size": 2048,
    "width": None,
    "height": None,
    "bands": 3,
    "crs": "EPSG:32611",
    "seed": 0,
    "pixel_size": 0.3,
    "origin": None,  # top-left corner in CRS units; default suits EPSG:32611 (Las Vegas)
    "buildings": None,
    "roads": None,
    "overviews": True,
}
DEFAULT_ORIGIN = (666000.0, 4005000.0)
WINDOW = 512
BLOCK = 256
BUILDING_CLASS, ROAD_CLASS = 1, 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    s = argparse.SUPPRESS
    parser.add_argument("-o", "--output", default=s, help="output GeoTIFF path (required)")
    parser.add_argument("--size", type=int, default=s, help="width and height in pixels (2048)")
    parser.add_argument("--width", type=int, default=s, help="width in pixels (overrides size)")
    parser.add_argument("--height", type=int, default=s, help="height in pixels")
    parser.add_argument("--bands", type=int, default=s, help="3 (RGB, default) or 4 (+NIR)")
    parser.add_argument("--crs", default=s, help="a projected CRS (EPSG:32611)")
    parser.add_argument("--seed", type=int, default=s, help="random seed (0)")
    parser.add_argument("--pixel-size", type=float, default=s, help="metres per pixel (0.3)")
    parser.add_argument("--origin", type=float, nargs=2, default=s, metavar=("X", "Y"),
                        help="top-left corner in CRS units")  # fmt: skip
    parser.add_argument("--buildings", default=s, help="buildings GeoJSON path")
    parser.add_argument("--roads", default=s, help="roads GeoJSON path")
    parser.add_argument("--no-overviews", dest="overviews", action="store_false", default=s)


# --- parameters ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    output: Path
    buildings: Path
    roads: Path
    width: int
    height: int
    bands: int
    crs: str
    seed: int
    pixel_size: float
    origin: tuple[float, float]
    overviews: bool


def _int(params: dict, key: str, lo: int, hi: int) -> int:
    value = params[key]
    try:
        ivalue = int(value)
    except (TypeError, ValueError):
        raise InputError(f"'{key}' must be an integer, not {value!r}.") from None
    if ivalue != value and not (isinstance(value, str) and value.strip().isdigit()):
        raise InputError(f"'{key}' must be an integer, not {value!r}.")
    if not lo <= ivalue <= hi:
        raise InputError(f"'{key}' must be between {lo} and {hi}, not {ivalue}.")
    return ivalue


def config(params: dict, reporter=None) -> Config:
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown and reporter is not None:
        reporter.log(f"synth-scene ignores unknown parameters: {', '.join(unknown)}", "warning")
    p = {**DEFAULTS, **{k: v for k, v in params.items() if v is not None}}
    if not p["output"]:
        raise InputError("synth-scene needs an output GeoTIFF path ('output' / --output).")
    output = Path(p["output"]).expanduser().absolute()
    if output.suffix.lower() not in (".tif", ".tiff"):
        raise InputError(f"The output '{output}' must end in .tif or .tiff.")
    size = _int(p, "size", 64, 65536)
    width = _int({**p, "width": p["width"] or size}, "width", 64, 65536)
    height = _int({**p, "height": p["height"] or size}, "height", 64, 65536)
    bands = _int(p, "bands", 3, 4)
    seed = _int(p, "seed", 0, 2**32 - 1)
    try:
        pixel_size = float(p["pixel_size"])
    except (TypeError, ValueError):
        raise InputError(f"'pixel_size' must be a number, not {p['pixel_size']!r}.") from None
    if not (math.isfinite(pixel_size) and pixel_size > 0):
        raise InputError("'pixel_size' must be a positive number of metres.")
    origin = p["origin"] or DEFAULT_ORIGIN
    try:
        origin = (float(origin[0]), float(origin[1]))
    except (TypeError, ValueError, IndexError):
        raise InputError(f"'origin' must be [x, y], not {p['origin']!r}.") from None
    folder = output.parent
    buildings = Path(p["buildings"]) if p["buildings"] else folder / "buildings.geojson"
    roads = Path(p["roads"]) if p["roads"] else folder / "roads.geojson"
    return Config(
        output=output,
        buildings=buildings.expanduser().absolute(),
        roads=roads.expanduser().absolute(),
        width=width, height=height, bands=bands, crs=str(p["crs"]), seed=seed,
        pixel_size=pixel_size, origin=origin, overviews=bool(p["overviews"]),
    )  # fmt: skip


# --- layout (pixel coordinates, y down) ----------------------------------------------------


# --- output --------------------------------------------------------------------------------


def _round(coords, nd: int = 3):
    if isinstance(coords, int | float):
        return round(float(coords), nd)
    return [_round(c, nd) for c in coords]


def _feature_collection(name: str, crs, features: list[dict]) -> dict:
    epsg = crs.to_epsg()
    fc: dict = {"type": "FeatureCollection", "name": name}
    if epsg:
        fc["crs"] = {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{epsg}"}}
    fc["features"] = features
    return fc


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(json.dumps(data, separators=(",", ":")) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def write_vectors(cfg: Config, layout: Layout, crs) -> tuple[int, int]:
    from shapely.affinity import affine_transform
    from shapely.geometry import mapping
    from shapely.geometry.polygon import orient

    from .scene import road_polygon

    px, (ox, oy) = cfg.pixel_size, cfg.origin
    to_map = [px, 0.0, 0.0, -px, ox, oy]
    buildings = []
    for i, b in enumerate(layout.buildings, 1):
        x0, x1 = ox + b.x0 * px, ox + b.x1 * px
        y0, y1 = oy - b.y1 * px, oy - b.y0 * px
        ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]  # counter-clockwise
        buildings.append({
            "type": "Feature", "id": i,
            "properties": {"id": i, "class": BUILDING_CLASS, "class_name": "building",
                           "roof": "#{:02x}{:02x}{:02x}".format(*b.roof),
                           "width_m": round((b.x1 - b.x0) * px, 2),
                           "height_m": round((b.y1 - b.y0) * px, 2),
                           "row": b.y0, "col": b.x0},
            "geometry": {"type": "Polygon", "coordinates": [_round(ring)]},
        })  # fmt: skip
    roads = []
    for i, road in enumerate(layout.roads, 1):
        geom = road_polygon(road, layout.width, layout.height)
        if geom.is_empty:
            continue
        geom = orient(affine_transform(geom, to_map), 1.0)
        gj = mapping(geom)
        roads.append({
            "type": "Feature", "id": i,
            "properties": {"id": i, "class": ROAD_CLASS, "class_name": "road",
                           "kind": road.kind, "width_m": round(2 * road.hw * px, 2)},
            "geometry": {"type": gj["type"], "coordinates": _round(gj["coordinates"])},
        })  # fmt: skip
    _write_json(cfg.buildings, _feature_collection("buildings", crs, buildings))
    _write_json(cfg.roads, _feature_collection("roads", crs, roads))
    return len(buildings), len(roads)


def run(params: dict, reporter) -> dict:
    import rasterio
    from rasterio.crs import CRS
    from rasterio.enums import ColorInterp, Resampling
    from rasterio.errors import CRSError
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    started = time.monotonic()
    cfg = config(params, reporter)
    try:
        crs = CRS.from_user_input(cfg.crs)
    except CRSError as e:
        raise InputError(f"Unknown CRS '{cfg.crs}': {e}.") from None
    if not crs.is_projected:
        raise InputError(
            f"The CRS '{cfg.crs}' is not projected; the scene is drawn in metres. Use a "
            "projected CRS such as EPSG:32611."
        )
    cfg.output.parent.mkdir(parents=True, exist_ok=True)
    reporter.log(
        f"Drawing a {cfg.width}x{cfg.height} scene (seed {cfg.seed}, {cfg.pixel_size} m "
        f"pixels, {cfg.crs}) into {cfg.output}"
    )
    from .scene import make_layout, render_window

    layout = make_layout(cfg.width, cfg.height, cfg.seed)
    reporter.log(
        f"Layout: {len(layout.roads)} roads, {len(layout.buildings)} buildings, "
        f"{len(layout.trees)} trees"
    )
    transform = from_origin(cfg.origin[0], cfg.origin[1], cfg.pixel_size, cfg.pixel_size)
    profile = {
        "driver": "GTiff", "width": cfg.width, "height": cfg.height, "count": cfg.bands,
        "dtype": "uint8", "crs": crs, "transform": transform, "tiled": True,
        "blockxsize": BLOCK, "blockysize": BLOCK, "compress": "deflate", "predictor": 2,
        "photometric": "RGB", "interleave": "pixel",
    }  # fmt: skip
    windows = [
        (c, r, min(WINDOW, cfg.width - c), min(WINDOW, cfg.height - r))
        for r in range(0, cfg.height, WINDOW)
        for c in range(0, cfg.width, WINDOW)
    ]
    tmp = cfg.output.with_name(f".{cfg.output.stem}.part{cfg.output.suffix}")
    try:
        with rasterio.open(tmp, "w", **profile) as dst:
            names = ("red", "green", "blue", "nir")[: cfg.bands]
            for i, name in enumerate(names, 1):
                dst.set_band_description(i, name)
            interp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue]
            dst.colorinterp = interp + [ColorInterp.undefined] * (cfg.bands - 3)
            dst.update_tags(DLSTUDIO_SYNTH_SEED=str(cfg.seed), DLSTUDIO_SYNTH="1")
            for k, (c, r, w, h) in enumerate(windows):
                data = render_window(layout, c, r, w, h, cfg.bands, cfg.seed)
                dst.write(data, window=Window(c, r, w, h))
                reporter.progress(90.0 * (k + 1) / len(windows))
            if cfg.overviews:
                factors = [f for f in (2, 4, 8, 16) if min(cfg.width, cfg.height) // f >= 128]
                if factors:
                    dst.build_overviews(factors, Resampling.average)
        os.replace(tmp, cfg.output)
    finally:
        tmp.unlink(missing_ok=True)
    reporter.progress(95)
    n_buildings, n_roads = write_vectors(cfg, layout, crs)
    reporter.progress(100)
    px = cfg.pixel_size
    ox, oy = cfg.origin
    return {
        "output": str(cfg.output),
        "buildings": str(cfg.buildings),
        "roads": str(cfg.roads),
        "width": cfg.width,
        "height": cfg.height,
        "bands": cfg.bands,
        "crs": crs.to_string(),
        "pixel_size": px,
        "extent": [ox, oy - cfg.height * px, ox + cfg.width * px, oy],
        "seed": cfg.seed,
        "n_buildings": n_buildings,
        "n_roads": n_roads,
        "n_trees": len(layout.trees),
        "seconds": round(time.monotonic() - started, 2),
    }
