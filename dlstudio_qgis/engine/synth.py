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

from .protocol import InputError

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

ROOFS = (
    (178, 84, 60),  # terracotta
    (96, 96, 102),  # dark grey
    (186, 186, 180),  # light grey
    (222, 220, 212),  # white
    (132, 96, 70),  # brown
    (96, 112, 132),  # blue-grey
)
SOIL, GRASS, TREE = (188, 168, 132), (92, 118, 68), (46, 76, 42)
ASPHALT, MARKING = (104, 104, 108), (228, 226, 214)
SHADOW = 0.55


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


@dataclass(frozen=True)
class Road:
    cx: float
    cy: float
    tx: float  # unit direction along the road
    ty: float
    hw: float  # half width, pixels
    kind: str  # "straight" or "diagonal"

    @property
    def normal(self) -> tuple[float, float]:
        return -self.ty, self.tx

    def distances(self, xs, ys):
        nx, ny = self.normal
        return (xs - self.cx) * nx + (ys - self.cy) * ny

    def hits_box(self, x0: float, y0: float, x1: float, y1: float, margin: float) -> bool:
        nx, ny = self.normal
        d = [(x - self.cx) * nx + (y - self.cy) * ny for x in (x0, x1) for y in (y0, y1)]
        return min(d) <= self.hw + margin and max(d) >= -(self.hw + margin)


@dataclass(frozen=True)
class Building:
    x0: int  # pixel edges; x1, y1 exclusive
    y0: int
    x1: int
    y1: int
    roof: tuple[int, int, int]
    shadow: int  # offset of the shadow to the south-east, pixels
    ridge_along_x: bool


@dataclass(frozen=True)
class Tree:
    cx: float
    cy: float
    r: float


@dataclass(frozen=True)
class Layout:
    width: int
    height: int
    roads: tuple[Road, ...]
    buildings: tuple[Building, ...]
    trees: tuple[Tree, ...]
    low: object  # coarse noise grids for the background
    mid: object


def make_layout(width: int, height: int, seed: int) -> Layout:
    import numpy as np

    rng = np.random.default_rng(seed)
    roads: list[Road] = []
    for vertical, length in ((True, width), (False, height)):
        n = max(1, round(length / 480))
        cell = length / n
        for i in range(n):
            pos = round((i + 0.5 + rng.uniform(-0.2, 0.2)) * cell)
            hw = int(rng.integers(11, 17))
            if vertical:
                roads.append(Road(pos, height / 2, 0.0, 1.0, hw, "straight"))
            else:
                roads.append(Road(width / 2, pos, 1.0, 0.0, hw, "straight"))
    for _ in range(1 if min(width, height) < 1024 else 2):
        angle = math.radians(rng.uniform(25, 65) * rng.choice((-1, 1)))
        cx, cy = rng.uniform(0.3, 0.7) * width, rng.uniform(0.3, 0.7) * height
        roads.append(Road(cx, cy, math.cos(angle), math.sin(angle), rng.uniform(9, 13),
                          "diagonal"))  # fmt: skip

    boxes = np.zeros((0, 4))  # x0, y0, x1, y1 with the shadow
    buildings: list[Building] = []
    gap = 12
    for _ in range(int(width * height / 1500)):
        w, h = int(rng.integers(26, 81)), int(rng.integers(26, 81))
        shadow = int(rng.integers(4, 11))
        roof = ROOFS[int(rng.integers(len(ROOFS)))]
        jitter = rng.integers(-10, 11, size=3)
        xmax, ymax = width - w - shadow - 8, height - h - shadow - 8
        if xmax <= 8 or ymax <= 8:
            continue
        x0, y0 = int(rng.integers(8, xmax)), int(rng.integers(8, ymax))
        x1, y1 = x0 + w, y0 + h
        if any(r.hits_box(x0, y0, x1, y1, 6) for r in roads):
            continue
        if len(boxes) and np.any(
            (x0 - gap < boxes[:, 2]) & (x1 + shadow + gap > boxes[:, 0])
            & (y0 - gap < boxes[:, 3]) & (y1 + shadow + gap > boxes[:, 1])
        ):  # fmt: skip
            continue
        boxes = np.vstack([boxes, [x0, y0, x1 + shadow, y1 + shadow]])
        color = tuple(int(c) for c in np.clip(np.array(roof) + jitter, 0, 255))
        buildings.append(Building(x0, y0, x1, y1, color, shadow, w >= h))

    trees: list[Tree] = []
    for _ in range(int(width * height / 4000)):
        r = rng.uniform(3, 9)
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        if any(abs(float(road.distances(cx, cy))) <= road.hw + r + 2 for road in roads):
            continue
        if len(boxes) and np.any(
            (cx + r + 2 > boxes[:, 0]) & (cx - r - 2 < boxes[:, 2])
            & (cy + r + 2 > boxes[:, 1]) & (cy - r - 2 < boxes[:, 3])
        ):  # fmt: skip
            continue
        trees.append(Tree(cx, cy, r))

    low = rng.random((height // 64 + 3, width // 64 + 3))
    mid = rng.random((height // 12 + 3, width // 12 + 3))
    return Layout(width, height, tuple(roads), tuple(buildings), tuple(trees), low, mid)


def road_polygon(road: Road, width: int, height: int):
    """The road's strip clipped to the image, in pixel coordinates (a shapely Polygon)."""
    from shapely.geometry import Polygon, box

    length = 2.0 * math.hypot(width, height)
    nx, ny = road.normal
    ex, ey = road.tx * length, road.ty * length
    hx, hy = nx * road.hw, ny * road.hw
    strip = Polygon([
        (road.cx + ex + hx, road.cy + ey + hy), (road.cx + ex - hx, road.cy + ey - hy),
        (road.cx - ex - hx, road.cy - ey - hy), (road.cx - ex + hx, road.cy - ey + hy),
    ])  # fmt: skip
    return strip.intersection(box(0, 0, width, height))


# --- rendering -----------------------------------------------------------------------------


def _hash01(xi, yi, salt: int):
    """Per-pixel white noise in [0, 1] from integer coordinates: the same in any window."""
    import numpy as np

    with np.errstate(over="ignore"):
        h = (xi.astype(np.uint32) * np.uint32(0x8DA6B343)) ^ (
            yi.astype(np.uint32) * np.uint32(0xD8163841)
        )
        h = h ^ np.uint32(salt & 0xFFFFFFFF)
        h = h ^ (h >> np.uint32(13))
        h = h * np.uint32(0x5BD1E995)
        h = h ^ (h >> np.uint32(15))
    return h.astype(np.float32) / np.float32(4294967295.0)


def _bilinear(grid, u, v):
    """Smoothly interpolated value noise at grid coordinates u (columns), v (rows)."""
    import numpy as np

    i, j = np.floor(u).astype(np.intp), np.floor(v).astype(np.intp)
    fu, fv = u - i, v - j
    fu, fv = fu * fu * (3 - 2 * fu), fv * fv * (3 - 2 * fv)
    jj, ii = j[:, None], i[None, :]
    top = grid[jj, ii] * (1 - fu)[None, :] + grid[jj, ii + 1] * fu[None, :]
    bottom = grid[jj + 1, ii] * (1 - fu)[None, :] + grid[jj + 1, ii + 1] * fu[None, :]
    return top * (1 - fv)[:, None] + bottom * fv[:, None]


def render_window(layout: Layout, col: int, row: int, w: int, h: int, bands: int, seed: int):
    """The pixels of one window as a (bands, h, w) uint8 array."""
    import numpy as np

    cols, rows = np.arange(col, col + w), np.arange(row, row + h)
    xs, ys = (cols + 0.5)[None, :], (rows + 0.5)[:, None]
    noise = _hash01(cols[None, :], rows[:, None], seed * 7919 + 1) * 2 - 1  # (h, w)
    low = _bilinear(layout.low, (cols + 0.5) / 64, (rows + 0.5) / 64)
    mid = _bilinear(layout.mid, (cols + 0.5) / 12, (rows + 0.5) / 12)
    veg = np.clip((low - 0.45) / 0.2, 0, 1)
    veg = veg * veg * (3 - 2 * veg)
    rgb = (
        np.asarray(SOIL, np.float32) * (1 - veg)[..., None]
        + np.asarray(GRASS, np.float32) * veg[..., None]
    )
    rgb *= (0.9 + 0.2 * mid)[..., None]
    rgb += 7 * noise[..., None]
    nir = 115 + 85 * veg + 6 * noise

    x_end, y_end = col + w, row + h
    for road in layout.roads:
        d = road.distances(xs, ys)
        on = np.abs(d) <= road.hw
        if not on.any():
            continue
        rgb[on] = np.asarray(ASPHALT, np.float32) + 4 * noise[on][:, None]
        nir[on] = 55
        t = (xs - road.cx) * road.tx + (ys - road.cy) * road.ty
        dash = (np.abs(d) <= 1.0) & (np.mod(t, 26) < 13)
        rgb[dash] = MARKING
        nir[dash] = 150

    for tree in layout.trees:
        x0, x1 = max(col, int(tree.cx - tree.r)), min(x_end, int(tree.cx + tree.r) + 1)
        y0, y1 = max(row, int(tree.cy - tree.r)), min(y_end, int(tree.cy + tree.r) + 1)
        if x0 >= x1 or y0 >= y1:
            continue
        sx, sy = slice(x0 - col, x1 - col), slice(y0 - row, y1 - row)
        dx = cols[sx][None, :] + 0.5 - tree.cx
        dy = rows[sy][:, None] + 0.5 - tree.cy
        disc = dx * dx + dy * dy <= tree.r * tree.r
        shade = 0.85 + 0.3 * np.clip(-(dx + dy) / (2 * tree.r) + 0.5, 0, 1)
        patch = np.asarray(TREE, np.float32) * shade[..., None] + 5 * noise[sy, sx][..., None]
        rgb[sy, sx][disc] = patch[disc]
        nir[sy, sx][disc] = 200

    def clip(x0, y0, x1, y1):
        x0, x1, y0, y1 = max(col, x0), min(x_end, x1), max(row, y0), min(y_end, y1)
        if x0 >= x1 or y0 >= y1:
            return None
        return slice(y0 - row, y1 - row), slice(x0 - col, x1 - col)

    for b in layout.buildings:  # all shadows first, so no shadow darkens a roof
        s = b.shadow
        region = clip(b.x0 + s, b.y0 + s, b.x1 + s, b.y1 + s)
        if region:
            rgb[region] *= SHADOW
            nir[region] *= SHADOW
    for b in layout.buildings:
        region = clip(b.x0, b.y0, b.x1, b.y1)
        if not region:
            continue
        sy, sx = region
        roof = np.asarray(b.roof, np.float32)
        if b.ridge_along_x:  # the north half catches the light
            lit = (rows[sy] + 0.5 < (b.y0 + b.y1) / 2)[:, None]
        else:
            lit = (cols[sx] + 0.5 < (b.x0 + b.x1) / 2)[None, :]
        shade = np.where(lit, 14.0, -14.0).astype(np.float32)
        rgb[sy, sx] = roof + shade[..., None] + 3 * noise[sy, sx][..., None]
        nir[sy, sx] = 85 + 3 * noise[sy, sx]

    planes = [rgb[..., 0], rgb[..., 1], rgb[..., 2]] + ([nir] if bands == 4 else [])
    return np.clip(np.rint(np.stack(planes)), 0, 255).astype(np.uint8)


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
