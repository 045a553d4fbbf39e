"""Which chips to write and what their labels are; runs in the main process, reads no pixel.

Tiles follow the raster (or the extent) row by row; the last tile of a row or column ends at
the region's edge instead of padding past it. A tile is kept when an object is in it (or
always, with output_nofeature_tiles); each kept tile gives a chip, plus one per rotation
(k * angle around the tile centre). Labels are computed here in chip pixel coordinates, so
chip names are deterministic and the worker processes only read, resample and write. The
unrotated tiles of a row are clipped together (one array call for all tile-sample pairs); the
workers get each label's box and area, and its geometry only where a mask is painted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .job import ExportJob
from .samples import MASK_FORMATS, Samples, polygonal
from .source import Region, SourceInfo

AREA_EPS = 1e-6  # pixel units: slivers below this are float noise along a tile edge
FRAC_EPS = 1e-9


@dataclass
class Label:
    cls: int
    geom: Any  # shapely geometry in chip pixel coordinates: polygonal, or a bare Point;
    # None for the formats that write boxes only (the workers get area and bounds)
    frac: float  # the share of the object inside the chip (1.0 = whole)
    area: float = 0.0  # of geom, pixel units
    bounds: tuple = (0.0, 0.0, 0.0, 0.0)  # of geom: xmin, ymin, xmax, ymax


@dataclass
class ChipPlan:
    name: str
    angle: float
    to_raster: tuple  # affine (a, b, c, d, e, f): chip pixel -> raster pixel
    labels: list[Label]


@dataclass
class TilePlan:
    col: int  # tile window in raster pixels
    row: int
    window: tuple[int, int, int, int]  # what to read: col, row, width, height (may overhang)
    chips: list[ChipPlan]


@dataclass
class Tally:
    """What the plan decided, for the result line, the stats files and the logs."""

    classes: tuple[int, ...]
    tiles: int = 0
    chips: int = 0
    dropped: int = 0
    objects: Counter = field(default_factory=Counter)
    images: Counter = field(default_factory=Counter)  # chips holding a class
    area: dict = field(default_factory=dict)  # class -> [min, max, sum] in map units
    per_chip: list = field(default_factory=lambda: [None, None, 0])  # min, max, sum

    def add_chip(self, labels: list[Label], pixel_area: float) -> None:
        self.chips += 1
        n = len(labels)
        lo, hi, total = self.per_chip
        self.per_chip = [
            n if lo is None else min(lo, n),
            n if hi is None else max(hi, n),
            total + n,
        ]
        for cls in {lb.cls for lb in labels}:
            self.images[cls] += 1
        for lb in labels:
            self.objects[lb.cls] += 1
            a = lb.area * pixel_area
            cur = self.area.get(lb.cls)
            self.area[lb.cls] = [a, a, a] if cur is None else [
                min(cur[0], a), max(cur[1], a), cur[2] + a]  # fmt: skip


def rotation_angles(angle: float) -> list[float]:
    """0, then k * angle for k = 1, 2, ... while below 360 degrees."""
    out = [0.0]
    if angle > 0:
        k = 1
        while k * angle < 360 - 1e-9:
            out.append(k * angle)
            k += 1
    return out


def offsets(start: int, length: int, tile: int, stride: int) -> list[int]:
    """Tile origins along one axis; the last tile ends at the edge (no padding)."""
    last = start + length - tile
    out = list(range(start, last + 1, stride))
    if out[-1] != last:
        out.append(last)
    return out


def _affine_geoms(geoms, aff):
    import numpy as np
    import shapely

    m = np.array([[aff.a, aff.b], [aff.d, aff.e]])
    t = np.array([aff.c, aff.f])
    return shapely.transform(geoms, lambda xy: xy @ m.T + t)


class Planner:
    def __init__(self, job: ExportJob, info: SourceInfo, samples: Samples, region: Region):
        import numpy as np
        import shapely

        self.job, self.info, self.samples, self.region = job, info, samples, region
        self.fmt = job.metadata_format
        self.tx, self.ty = job.tile_size
        self.angles = rotation_angles(job.rotation_angle)
        self.cols = offsets(region.col0, region.width, self.tx, job.stride[0])
        self.rows = offsets(region.row0, region.height, self.ty, job.stride[1])
        self.tally = Tally(classes=tuple(c.value for c in job.classes))
        self._np, self._shapely = np, shapely
        box = shapely.box(region.col0, region.row0, region.col1, region.row1)
        self._in_region = np.sort(samples.tree.query(box, predicate="intersects"))

    # --- counts -----------------------------------------------------------------------------

    @property
    def labeled(self) -> bool:
        return self.fmt == "Labeled_Tiles"

    @property
    def grid_tiles(self) -> int:
        return len(self._in_region) if self.labeled else len(self.cols) * len(self.rows)

    def candidates(self) -> int:
        """Tiles the plan will look at (for progress): those touching a sample, or all."""
        if self.labeled or self.job.output_nofeature_tiles:
            return self.grid_tiles
        n = 0
        for row in self.rows:
            pairs = self.samples.tree.query(self._row_boxes(row), predicate="intersects")
            n += len(self._np.unique(pairs[0]))
        return n

    def _row_boxes(self, row: int):
        cols = self._np.asarray(self.cols, dtype=float)
        return self._shapely.box(cols, row, cols + self.tx, row + self.ty)

    # --- the plan ---------------------------------------------------------------------------

    def plans(self) -> Iterator[TilePlan | None]:
        """Kept tiles in order; None for a looked-at tile that holds no object (skipped)."""
        yield from self._labeled_tiles() if self.labeled else self._grid_tiles()

    def _grid_tiles(self) -> Iterator[TilePlan | None]:
        nofeature = self.job.output_nofeature_tiles
        for row in self.rows:
            boxes = self._row_boxes(row)
            pairs = self.samples.tree.query(boxes, predicate="intersects")
            met, labels = self._row_labels(row, boxes, pairs)
            for j, col in enumerate(self.cols):
                if j not in met and not nofeature:
                    continue
                base = labels.get(j, [])
                if not base and not nofeature:
                    yield None
                    continue
                yield self._tile(col, row, base, None)

    def _row_labels(self, row: int, boxes, pairs) -> tuple[set, dict[int, list[Label]]]:
        """`_labels` of every tile of a row (no rotation) at once, from the (tile, sample)
        pairs that intersect: the tiles met, and tile -> labels (those with any)."""
        np, shapely, s = self._np, self._shapely, self.samples
        order = np.lexsort((pairs[1], pairs[0]))  # by tile, then by sample (as `_labels`)
        tile, idx = pairs[0][order], pairs[1][order]
        if len(idx) == 0:
            return set(), {}
        inter = shapely.intersection(s.geoms[idx], boxes[tile])
        keep, frac, bare = self._keep(idx, inter, single=False)
        labels: dict[int, list[Label]] = {}
        if keep.any():
            cols = np.asarray(self.cols, dtype=np.float64)[tile[keep]]
            offsets = np.stack([cols, np.full(len(cols), float(row))], axis=1)
            chip_geoms = _translate(inter[keep], -offsets)
            for j, label in zip(
                tile[keep].tolist(), _make_labels(chip_geoms, s.classes[idx][keep], frac[keep],
                                                  bare[keep], self.fmt), strict=True,
            ):  # fmt: skip
                labels.setdefault(j, []).append(label)
        return set(tile.tolist()), labels

    def _labeled_tiles(self) -> Iterator[TilePlan | None]:
        """One chip centred on each sample (kept inside the region), labelled with its class."""
        r = self.region
        for i in self._in_region.tolist():
            xmin, ymin, xmax, ymax = self.samples.geoms[i].bounds
            cx = (max(xmin, r.col0) + min(xmax, r.col1)) / 2
            cy = (max(ymin, r.row0) + min(ymax, r.row1)) / 2
            col = min(max(round(cx - self.tx / 2), r.col0), r.col1 - self.tx)
            row = min(max(round(cy - self.ty / 2), r.row0), r.row1 - self.ty)
            base = self._labels(self._foot(col, row, 0.0), col, row, 0.0, [i], single=True)
            if not base:
                yield None
                continue
            yield self._tile(col, row, base, i)

    def _tile(self, col: int, row: int, base: list[Label], single) -> TilePlan:
        chips = [self._chip(col, row, 0.0, base)]
        for angle in self.angles[1:]:
            foot = self._foot(col, row, angle)
            idx = None if single is None else [single]
            labels = self._labels(foot, col, row, angle, idx, single=single is not None)
            chips.append(self._chip(col, row, angle, labels))
        self.tally.tiles += 1
        return TilePlan(col, row, self._window(col, row), chips)

    def _chip(self, col: int, row: int, angle: float, labels: list[Label]) -> ChipPlan:
        name = f"{self.tally.chips:09d}"
        self.tally.add_chip(labels, self.info.pixel_area)
        return ChipPlan(name, angle, tuple(self.to_raster(col, row, angle))[:6], labels)

    def to_raster(self, col: int, row: int, angle: float):
        from affine import Affine

        aff = Affine.translation(col, row)
        if angle:
            aff = aff * Affine.rotation(angle, pivot=(self.tx / 2, self.ty / 2))
        return aff

    def _foot(self, col: int, row: int, angle: float):
        if not angle:
            return self._shapely.box(col, row, col + self.tx, row + self.ty)
        aff = self.to_raster(col, row, angle)
        corners = [aff * p for p in ((0, 0), (self.tx, 0), (self.tx, self.ty), (0, self.ty))]
        return self._shapely.Polygon(corners)

    def _window(self, col: int, row: int) -> tuple[int, int, int, int]:
        if len(self.angles) == 1:
            return col, row, self.tx, self.ty
        import math

        xs, ys = [], []
        for angle in self.angles:
            aff = self.to_raster(col, row, angle)
            for p in ((0, 0), (self.tx, 0), (self.tx, self.ty), (0, self.ty)):
                x, y = aff * p
                xs.append(x)
                ys.append(y)
        c0, r0 = math.floor(min(xs)) - 1, math.floor(min(ys)) - 1
        return c0, r0, math.ceil(max(xs)) + 1 - c0, math.ceil(max(ys)) + 1 - r0

    def _keep(self, idx, inter, single: bool):
        """Which clipped objects a chip keeps (min_overlap), their share inside, bare points;
        counts the dropped ones."""
        np, shapely, s = self._np, self._shapely, self.samples
        area = shapely.area(inter)
        bare = s.bare_point[idx]
        full = s.areas[idx]
        frac = np.ones(len(idx))
        np.divide(area, full, out=frac, where=full > 0)
        present = (bare & ~shapely.is_empty(inter)) | (area > AREA_EPS)
        if self.fmt == "Classified_Tiles" or single:
            keep = present
        else:
            keep = present & (frac >= self.job.min_overlap - FRAC_EPS)
        self.tally.dropped += int((present & ~keep).sum())
        return keep, frac, bare

    def _labels(self, foot, col, row, angle, idx=None, single=False) -> list[Label]:
        """Objects in a chip footprint, clipped to it, in chip pixel coordinates."""
        np, shapely, s = self._np, self._shapely, self.samples
        if idx is None:
            idx = s.tree.query(foot, predicate="intersects")
        idx = np.sort(np.asarray(idx, dtype=np.int64))
        if len(idx) == 0:
            return []
        inter = shapely.intersection(s.geoms[idx], foot)
        keep, frac, bare = self._keep(idx, inter, single)
        if not keep.any():
            return []
        chip_geoms = _affine_geoms(inter[keep], ~self.to_raster(col, row, angle))
        return _make_labels(chip_geoms, s.classes[idx][keep], frac[keep], bare[keep], self.fmt)


def _make_labels(geoms, classes, fracs, bare, fmt: str) -> list[Label]:
    """Labels of clipped objects in chip pixels: polygonal (Polygon, MultiPolygon), or points;
    their geometry only for the mask formats (the others write boxes: less to send)."""
    import shapely

    out = []
    kinds = shapely.get_type_id(geoms).tolist()
    areas = shapely.area(geoms).tolist()
    bounds = shapely.bounds(geoms).tolist()
    for geom, cls, f, b, kind, area, box in zip(
        geoms, classes.tolist(), fracs.tolist(), bare.tolist(), kinds, areas, bounds, strict=True
    ):
        if not b and kind not in (3, 6):  # not a Polygon, a MultiPolygon: its polygons
            geom = polygonal(geom)
            area, box = geom.area, list(geom.bounds)
        keep = geom if fmt in MASK_FORMATS else None
        out.append(Label(int(cls), keep, min(1.0, float(f)), area, tuple(box)))
    return out


def _translate(geoms, offsets):
    """Each geometry moved by its own (dx, dy) (rows of `offsets`)."""
    import shapely

    xy, index = shapely.get_coordinates(geoms, return_index=True)
    return shapely.set_coordinates(geoms.copy(), xy + offsets[index])
