"""Just enough planar geometry for the store: WKB, GeoPackage blobs, centroids, containment.

The QGIS process has no shapely, so the core carries its own small implementation. The
Processing layer repairs and reprojects with QGIS before geometries reach here.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import GeometryError

Ring = tuple[tuple[float, float], ...]

_WKB_POINT, _WKB_POLYGON, _WKB_MULTIPOINT, _WKB_MULTIPOLYGON = 1, 3, 4, 6


@dataclass(frozen=True)
class Geometry:
    """A Point (`rings` is one ring of one coordinate) or a Polygon (exterior ring first)."""

    kind: str
    rings: tuple[Ring, ...]

    @property
    def is_point(self) -> bool:
        return self.kind == "Point"

    @property
    def xy(self) -> tuple[float, float]:
        return self.rings[0][0]

    def bounds(self) -> tuple[float, float, float, float]:
        xs = [x for x, _ in self.rings[0]]
        ys = [y for _, y in self.rings[0]]
        return min(xs), min(ys), max(xs), max(ys)

    def area(self) -> float:
        if self.is_point:
            return 0.0
        return abs(_signed_area(self.rings[0])) - sum(abs(_signed_area(r)) for r in self.rings[1:])

    def centroid(self) -> tuple[float, float]:
        """Area-weighted centroid (holes subtracted); the point itself for a Point."""
        if self.is_point:
            return self.xy
        total = cx = cy = 0.0
        for i, ring in enumerate(self.rings):
            a, x, y = _ring_moments(ring)
            # exterior counts positive, holes negative, whatever their orientation
            sign = 1.0 if i == 0 else -1.0
            a, x, y = (
                abs(a) * sign,
                x * math.copysign(1, a) * sign,
                y * math.copysign(1, a) * sign,
            )
            total += a
            cx += x
            cy += y
        if total == 0:
            raise GeometryError("A polygon with zero area has no centroid; redraw it.")
        return cx / total, cy / total

    def contains_point(self, x: float, y: float) -> bool:
        """True when (x, y) is inside or on the boundary (the closed polygon)."""
        if self.is_point:
            return self.xy == (x, y)
        if not _in_ring(self.rings[0], x, y):
            return False
        # a point on a hole's boundary is on the polygon's boundary, hence contained
        return not any(_in_ring(h, x, y) and not _on_ring(h, x, y) for h in self.rings[1:])

    def is_rectangle(self) -> bool:
        """An axis-aligned rectangle without holes (Detect Objects samples)."""
        if self.is_point or len(self.rings) != 1:
            return False
        xmin, ymin, xmax, ymax = self.bounds()
        pts = set(self.rings[0])
        return (
            xmax > xmin
            and ymax > ymin
            and pts <= {(xmin, ymin), (xmin, ymax), (xmax, ymin), (xmax, ymax)}
            and len(pts) == 4
        )


def point(x: float, y: float) -> Geometry:
    return Geometry("Point", (((float(x), float(y)),),))


def polygon(exterior: Sequence[Sequence[float]], holes: Sequence = ()) -> Geometry:
    """A Polygon; rings are closed if they are not already."""
    rings = []
    for ring in (exterior, *holes):
        pts = tuple((float(x), float(y)) for x, y, *_ in ring)
        if pts and pts[0] != pts[-1]:
            pts = (*pts, pts[0])
        rings.append(pts)
    return Geometry("Polygon", tuple(rings))


def rectangle(xmin: float, ymin: float, xmax: float, ymax: float) -> Geometry:
    return polygon([(xmin, ymin), (xmax, ymin), (xmax, ymax), (xmin, ymax)])


def validate(geom: Geometry) -> list[str]:
    """Problems that make a geometry unusable as a sample or work unit; empty when valid."""
    problems = []
    for ring in geom.rings:
        for x, y in ring:
            if not (math.isfinite(x) and math.isfinite(y)):
                return ["has a coordinate that is not a finite number"]
    if geom.is_point:
        return problems
    for i, ring in enumerate(geom.rings):
        what = "exterior ring" if i == 0 else f"hole {i}"
        if len(ring) < 4 or len(set(ring)) < 3:
            problems.append(f"{what} has fewer than 3 distinct points")
        elif _signed_area(ring) == 0:
            problems.append(f"{what} has zero area")
        # the O(n^2) check is bounded so a huge polygon cannot stall the store
        elif len(ring) <= 2000 and _self_intersects(ring):
            problems.append(f"{what} crosses itself")
    return problems


# --- WKB and GeoPackage binary -------------------------------------------------------------


def to_wkb(geom: Geometry) -> bytes:
    if geom.is_point:
        return struct.pack("<BIdd", 1, _WKB_POINT, *geom.xy)
    parts = [struct.pack("<BII", 1, _WKB_POLYGON, len(geom.rings))]
    for ring in geom.rings:
        parts.append(struct.pack("<I", len(ring)))
        parts.append(struct.pack(f"<{2 * len(ring)}d", *(c for xy in ring for c in xy)))
    return b"".join(parts)


def from_wkb(data: bytes) -> list[Geometry]:
    """Points and polygons (single or multi, Z/M dropped) as a list of single parts."""
    parts, _ = _read_wkb(memoryview(data), 0)
    return parts


def to_gpkg(geom: Geometry, srs_id: int) -> bytes:
    """GeoPackage binary: 'GP', version 0, little-endian, envelope [minx,maxx,miny,maxy]."""
    xmin, ymin, xmax, ymax = geom.bounds()
    if geom.is_point:
        return struct.pack("<2sBBi", b"GP", 0, 0b00000001, srs_id) + to_wkb(geom)
    header = struct.pack("<2sBBi4d", b"GP", 0, 0b00000011, srs_id, xmin, xmax, ymin, ymax)
    return header + to_wkb(geom)


def from_gpkg(blob: bytes) -> Geometry:
    if blob is None or len(blob) < 8 or blob[:2] != b"GP":
        raise GeometryError("Not a GeoPackage geometry blob.")
    flags = blob[3]
    env = (0, 32, 48, 48, 64)[(flags >> 1) & 0b111]
    parts = from_wkb(bytes(blob[8 + env :]))
    if len(parts) != 1:
        raise GeometryError("Expected a single-part geometry in the project file.")
    return parts[0]


def _read_wkb(buf: memoryview, pos: int) -> tuple[list[Geometry], int]:
    order = "<" if buf[pos] == 1 else ">"
    (gtype,) = struct.unpack_from(order + "I", buf, pos + 1)
    pos += 5
    has_z = bool(gtype & 0x80000000) or (gtype % 10000) // 1000 in (1, 3)
    has_m = bool(gtype & 0x40000000) or (gtype % 10000) // 1000 in (2, 3)
    base = (gtype & 0x0FFFFFFF) % 1000
    dims = 2 + has_z + has_m
    if base == _WKB_POINT:
        coords = struct.unpack_from(order + f"{dims}d", buf, pos)
        return [point(coords[0], coords[1])], pos + 8 * dims
    if base == _WKB_POLYGON:
        (nrings,) = struct.unpack_from(order + "I", buf, pos)
        pos += 4
        rings = []
        for _ in range(nrings):
            (n,) = struct.unpack_from(order + "I", buf, pos)
            pos += 4
            vals = struct.unpack_from(order + f"{n * dims}d", buf, pos)
            pos += 8 * n * dims
            rings.append(tuple((vals[i], vals[i + 1]) for i in range(0, n * dims, dims)))
        if not rings:
            raise GeometryError("Empty polygon.")
        return [Geometry("Polygon", tuple(rings))], pos
    if base in (_WKB_MULTIPOINT, _WKB_MULTIPOLYGON):
        (n,) = struct.unpack_from(order + "I", buf, pos)
        pos += 4
        out: list[Geometry] = []
        for _ in range(n):
            parts, pos = _read_wkb(buf, pos)
            out.extend(parts)
        return out, pos
    raise GeometryError(
        f"Unsupported geometry type (WKB type {gtype}); samples and work units are points "
        "or polygons."
    )


# --- helpers -------------------------------------------------------------------------------


def _signed_area(ring: Ring) -> float:
    return _ring_moments(ring)[0]


def _ring_moments(ring: Ring) -> tuple[float, float, float]:
    """Signed area and first moments (area * centroid) of a closed ring."""
    a = cx = cy = 0.0
    x0, y0 = ring[0]
    # coordinates relative to the first point keep precision for large map coordinates
    for (x1, y1), (x2, y2) in zip(ring, ring[1:], strict=False):
        x1, y1, x2, y2 = x1 - x0, y1 - y0, x2 - x0, y2 - y0
        cross = x1 * y2 - x2 * y1
        a += cross
        cx += (x1 + x2) * cross
        cy += (y1 + y2) * cross
    a /= 2.0
    return a, cx / 6.0 + a * x0, cy / 6.0 + a * y0


def _on_segment(x: float, y: float, a: tuple, b: tuple, eps: float = 1e-9) -> bool:
    (x1, y1), (x2, y2) = a, b
    scale = max(abs(x1), abs(x2), abs(y1), abs(y2), 1.0)
    cross = (x2 - x1) * (y - y1) - (y2 - y1) * (x - x1)
    if abs(cross) > eps * scale * max(abs(x2 - x1) + abs(y2 - y1), 1e-300):
        return False
    return (
        min(x1, x2) - eps <= x <= max(x1, x2) + eps and min(y1, y2) - eps <= y <= max(y1, y2) + eps
    )


def _on_ring(ring: Ring, x: float, y: float) -> bool:
    return any(_on_segment(x, y, a, b) for a, b in zip(ring, ring[1:], strict=False))


def _in_ring(ring: Ring, x: float, y: float) -> bool:
    """Closed containment: inside by ray casting, or on the boundary."""
    if _on_ring(ring, x, y):
        return True
    inside = False
    for (x1, y1), (x2, y2) in zip(ring, ring[1:], strict=False):
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def _segments_cross(p1, p2, p3, p4) -> bool:
    def orient(a, b, c):
        v = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
        return (v > 0) - (v < 0)

    o1, o2, o3, o4 = orient(p1, p2, p3), orient(p1, p2, p4), orient(p3, p4, p1), orient(p3, p4, p2)
    if o1 != o2 and o3 != o4:
        return True
    # collinear overlaps count as crossings
    return (
        (o1 == 0 and _on_segment(*p3, p1, p2))
        or (o2 == 0 and _on_segment(*p4, p1, p2))
        or (o3 == 0 and _on_segment(*p1, p3, p4))
        or (o4 == 0 and _on_segment(*p2, p3, p4))
    )


def _self_intersects(ring: Ring) -> bool:
    segs = list(zip(ring, ring[1:], strict=False))
    n = len(segs)
    for i in range(n):
        for j in range(i + 1, n):
            # neighbours share an end point; the first and last segment too
            if j == i + 1 or (i == 0 and j == n - 1):
                continue
            if _segments_cross(*segs[i], *segs[j]):
                return True
    return False


def clip_to_rect(geom: Geometry, xmin: float, ymin: float, xmax: float, ymax: float):
    """The polygon clipped to a rectangle (Sutherland-Hodgman per ring); None if nothing left.

    Exact for convex polygons; for concave ones it can leave zero-width slivers along the
    rectangle's edge, which is why the Processing layer clips with QGIS first.
    """
    bx0, by0, bx1, by1 = geom.bounds()
    if bx0 >= xmin and by0 >= ymin and bx1 <= xmax and by1 <= ymax:
        return geom
    rings = []
    for ring in geom.rings:
        pts = list(ring[:-1])
        for inside, inter in _CLIP_EDGES:
            if not pts:
                break
            out = []
            for k, cur in enumerate(pts):
                prev = pts[k - 1]
                cin, pin = inside(cur, xmin, ymin, xmax, ymax), inside(prev, xmin, ymin, xmax, ymax)
                if cin:
                    if not pin:
                        out.append(inter(prev, cur, xmin, ymin, xmax, ymax))
                    out.append(cur)
                elif pin:
                    out.append(inter(prev, cur, xmin, ymin, xmax, ymax))
            pts = out
        if len(pts) >= 3:
            clipped = polygon(pts).rings[0]
            if _signed_area(clipped) != 0:
                rings.append(clipped)
        elif not rings:
            return None
    if not rings:
        return None
    return Geometry("Polygon", tuple(rings))


def _lerp_x(p, q, x):
    t = (x - p[0]) / (q[0] - p[0])
    return (x, p[1] + t * (q[1] - p[1]))


def _lerp_y(p, q, y):
    t = (y - p[1]) / (q[1] - p[1])
    return (p[0] + t * (q[0] - p[0]), y)


_CLIP_EDGES = (
    (lambda p, x0, y0, x1, y1: p[0] >= x0, lambda p, q, x0, y0, x1, y1: _lerp_x(p, q, x0)),
    (lambda p, x0, y0, x1, y1: p[0] <= x1, lambda p, q, x0, y0, x1, y1: _lerp_x(p, q, x1)),
    (lambda p, x0, y0, x1, y1: p[1] >= y0, lambda p, q, x0, y0, x1, y1: _lerp_y(p, q, y0)),
    (lambda p, x0, y0, x1, y1: p[1] <= y1, lambda p, q, x0, y0, x1, y1: _lerp_y(p, q, y1)),
)
