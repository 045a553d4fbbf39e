"""The synthetic scene itself: its layout (roads, buildings, trees) and its rendering.

Pure numpy, no I/O: `synth.py` drives it window by window and writes the files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

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

    i, j = np.floor(u).astype(np.intp), np.floor(v).astype(np.intp)
    fu, fv = u - i, v - j
    fu, fv = fu * fu * (3 - 2 * fu), fv * fv * (3 - 2 * fv)
    jj, ii = j[:, None], i[None, :]
    top = grid[jj, ii] * (1 - fu)[None, :] + grid[jj, ii + 1] * fu[None, :]
    bottom = grid[jj + 1, ii] * (1 - fu)[None, :] + grid[jj + 1, ii + 1] * fu[None, :]
    return top * (1 - fv)[:, None] + bottom * fv[:, None]


def render_window(layout: Layout, col: int, row: int, w: int, h: int, bands: int, seed: int):
    """The pixels of one window as a (bands, h, w) uint8 array."""

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
