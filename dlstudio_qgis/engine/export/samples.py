"""The training samples: read from GeoJSON, checked, buffered, and moved into pixel space.

All tiling and clipping works in the raster's pixel coordinates (column, row; y down): an
affine map keeps area ratios, so overlap fractions are the same as in map units, and chip
coordinates are a translation (or a rotation) away.

The GeoJSON is parsed lean: simple polygons (one closed ring) go straight into one coordinate
buffer and become shapely geometries all at once, and each feature keeps only the properties
read here, so the whole JSON tree never exists (it weighed about six times the file).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from ..protocol import InputError
from .job import ExportJob
from .source import Region, SourceInfo

RECTANGLE_FORMATS = ("PASCAL_VOC_rectangles", "KITTI_rectangles")
MASK_FORMATS = ("Classified_Tiles", "RCNN_Masks")
TILE_FORMATS = ("Labeled_Tiles", "MultiLabeled_Tiles")
POINT_TYPES = ("Point", "MultiPoint")
POLYGON_TYPES = ("Polygon", "MultiPolygon")


@dataclass
class Samples:
    geoms: Any  # numpy array of shapely geometries, raster pixel coordinates
    classes: Any  # numpy int64 array
    bare_point: Any  # numpy bool array: points without a buffer (no area)
    areas: Any  # numpy float array, pixel units (0 for bare points)
    fids: list
    tree: Any  # shapely STRtree over geoms
    outside: int  # samples that do not touch the tiled region

    def __len__(self) -> int:
        return len(self.classes)


def _fid(feature: dict, index: int):
    props = feature.get("properties") or {}
    for key in ("fid", "id"):
        if props.get(key) is not None:
            return props[key]
    return feature.get("id", index)


def _class_value(value, fid) -> int:
    number = None
    if not isinstance(value, bool):
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = None
    if number is None or not math.isfinite(number) or number != int(number):
        raise InputError(
            f"Sample {fid} has class_value {value!r}; every sample needs an integer "
            "class_value property."
        )
    return int(number)


class _Ring:
    """A Polygon read as one closed 2-D ring: `count` points from point `start` of the
    reader's coordinate buffer (built into shapely geometries all at once, afterwards)."""

    __slots__ = ("start", "count")

    def __init__(self, start: int, count: int) -> None:
        self.start, self.count = start, count


#: the properties the export reads; a feature keeps only these
_PROPERTIES = ("fid", "id", "class_value")


def _reader(coords):
    """The json object_hook that keeps the parse lean: each Polygon of one closed 2-D ring goes
    into `coords` (an array of doubles) as a `_Ring`, and each Feature keeps only what the
    export reads, so the JSON tree never exists whole. Anything else is left as parsed (and
    checked by `load_samples` as before)."""
    from itertools import chain

    def hook(obj: dict):
        if obj.get("type") == "Polygon" and "coordinates" in obj:
            rings = obj["coordinates"]
            if type(rings) is list and len(rings) == 1 and type(rings[0]) is list:
                ring = rings[0]
                if len(ring) >= 4 and ring[0] == ring[-1]:
                    start = len(coords)
                    try:
                        coords.extend(chain.from_iterable(ring))
                    except TypeError:  # not numbers: left to shapely (and its message)
                        del coords[start:]
                        return obj
                    if len(coords) - start == 2 * len(ring):
                        return _Ring(start // 2, len(ring))
                    del coords[start:]  # 3-D, or ragged
            return obj
        if obj.get("type") == "Feature":
            props = obj.get("properties")
            if type(props) is dict:
                obj["properties"] = {k: props[k] for k in _PROPERTIES if k in props}
        return obj

    return hook


def read_features(path: str, coords=None) -> list[dict]:
    """The features of a GeoJSON file; with `coords` (an ``array("d")``), simple polygons are
    read as `_Ring` into it and features keep only the properties the export reads."""
    hook = None if coords is None else _reader(coords)
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh, object_hook=hook)
    except OSError as exc:
        raise InputError(f"Cannot read the samples '{path}': {exc.strerror or exc}.") from None
    except ValueError as exc:
        raise InputError(f"The samples '{path}' are not valid GeoJSON: {exc}.") from None
    if isinstance(data, dict) and data.get("type") == "FeatureCollection":
        features = data.get("features") or []
    elif isinstance(data, dict) and data.get("type") == "Feature":
        features = [data]
    else:
        raise InputError(f"The samples '{path}' must be a GeoJSON FeatureCollection.")
    return [f for f in features if isinstance(f, dict)]


def release_memory() -> None:
    """Give the memory freed after the parse back to the OS (glibc keeps it otherwise)."""
    import contextlib
    import ctypes
    import sys

    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):  # not glibc
            ctypes.CDLL("libc.so.6").malloc_trim(0)


def _rings_to_polygons(coords, rings: list[_Ring]):
    """The `_Ring`s as shapely Polygons, all at once."""
    import numpy as np
    import shapely

    xy = np.frombuffer(coords, dtype=np.float64).reshape(-1, 2)
    counts = np.fromiter((ring.count for ring in rings), dtype=np.int64, count=len(rings))
    starts = np.fromiter((ring.start for ring in rings), dtype=np.int64, count=len(rings))
    ends = np.cumsum(counts)  # the points of the rings asked for (skipped features' left out)
    xy = xy[np.arange(ends[-1]) + np.repeat(starts - (ends - counts), counts)]
    index = np.repeat(np.arange(len(rings)), counts)
    return shapely.polygons(shapely.linearrings(xy, indices=index))


def load_samples(job: ExportJob, info: SourceInfo, region: Region, reporter) -> Samples:
    """Read, check and prepare the samples; InputError for anything the export cannot use."""
    from array import array

    import numpy as np
    import shapely
    from affine import Affine

    coords = array("d")
    features = read_features(job.samples, coords)
    known = {c.value: c.name for c in job.classes}
    fmt = job.metadata_format
    r = job.buffer_radius
    # in feature order: a list of checked geometry parts, or a _Ring (checked below, in bulk)
    slots: list = []
    classes, fids, unknown = [], [], {}
    nulls = fixed = empty = 0
    for i, feature in enumerate(features):
        fid = _fid(feature, i)
        gj = feature.get("geometry")
        if not gj:
            nulls += 1
            continue
        props = feature.get("properties") or {}
        if "class_value" not in props:
            raise InputError(f"Sample {fid} has no class_value property.")
        value = _class_value(props["class_value"], fid)
        if value not in known:
            unknown.setdefault(value, fid)
            continue
        if type(gj) is _Ring:
            slots.append(gj)
            classes.append(value)
            fids.append(fid)
            continue
        gtype = gj.get("type")
        if gtype not in POINT_TYPES + POLYGON_TYPES:
            raise InputError(
                f"Sample {fid} is a {gtype}; training samples are points or polygons. "
                "Buffer lines into polygons first."
            )
        try:
            geom = shapely.geometry.shape(gj)
        except Exception as exc:  # malformed coordinates
            raise InputError(f"Sample {fid} has a malformed geometry: {exc}.") from None
        if geom.is_empty:
            empty += 1
            continue
        if gtype in POINT_TYPES:
            if r <= 0 and fmt not in TILE_FORMATS:
                raise InputError(
                    f"{fmt} needs an area for each sample, and sample {fid} is a point: set "
                    "BUFFER_RADIUS (map units) to turn each point into a "
                    f"{'box' if fmt in RECTANGLE_FORMATS else 'disc'}."
                )
            parts = list(shapely.get_parts(geom))
        else:
            if not geom.is_valid:
                geom = polygonal(shapely.make_valid(geom))
                fixed += 1
            if geom.is_empty or geom.area <= 0:
                empty += 1
                continue
            parts = [geom]
        out = []
        for part in parts:
            if part.geom_type == "Point" and r > 0:
                part = part.buffer(r, quad_segs=16) if fmt in MASK_FORMATS else _box(part, r)
            out.append(part)
        slots.append(out)
        classes.append(value)
        fids.append(fid)
    del features
    rings = [slot for slot in slots if type(slot) is _Ring]
    polygons = _rings_to_polygons(coords, rings) if rings else []
    del coords
    release_memory()
    if len(polygons):  # the checks above, in bulk
        invalid = np.flatnonzero(~shapely.is_valid(polygons))
        for k in invalid.tolist():
            polygons[k] = polygonal(shapely.make_valid(polygons[k]))
        fixed += len(invalid)
        usable = (shapely.area(polygons) > 0) & ~shapely.is_empty(polygons)
    geoms, kept_classes, kept_fids, k = [], [], [], 0
    for slot, value, fid in zip(slots, classes, fids, strict=True):
        if type(slot) is _Ring:
            k += 1
            if not usable[k - 1]:
                empty += 1
                continue
            slot = [polygons[k - 1]]
        for part in slot:
            geoms.append(part)
            kept_classes.append(value)
            kept_fids.append(fid)
    classes, fids = kept_classes, kept_fids
    if unknown:
        names = ", ".join(f"{v} ({n})" for v, n in sorted(known.items()))
        values = ", ".join(f"{v} (sample {f})" for v, f in sorted(unknown.items()))
        raise InputError(
            f"Samples have class values that are not in the classes: {values}. The known "
            f"classes are {names}."
        )
    if not geoms:
        raise InputError(
            f"There are no samples to export in '{job.samples}'"
            + (f" ({nulls + empty} have no geometry)" if nulls + empty else "")
            + ". Approve samples in Reviewed work units first."
        )
    for count, what in ((nulls, "have no geometry"), (empty, "are empty or have no area")):
        if count:
            reporter.warning(f"{count} sample{'s' if count > 1 else ''} {what}: skipped.")
    if fixed:
        reporter.warning(f"{fixed} invalid polygon{'s were' if fixed > 1 else ' was'} repaired.")

    map_geoms = np.array(geoms, dtype=object)
    inv = ~Affine(*info.transform)
    matrix = np.array([[inv.a, inv.b], [inv.d, inv.e]])
    offset = np.array([inv.c, inv.f])
    px = shapely.transform(map_geoms, lambda xy: xy @ matrix.T + offset)
    bare = shapely.get_type_id(px) == 0
    tree = shapely.STRtree(px)
    region_box = shapely.box(region.col0, region.row0, region.col1, region.row1)
    touching = tree.query(region_box, predicate="intersects")
    if len(touching) == 0:
        xmin, ymin, xmax, ymax = shapely.total_bounds(map_geoms)
        a, b, c, d, e, f = info.transform
        corners = [
            (c, f),
            (c + a * info.width + b * info.height, f + d * info.width + e * info.height),
        ]
        rx = sorted(p[0] for p in corners)
        ry = sorted(p[1] for p in corners)
        where = "the extent on the raster" if region.from_extent else "the raster"
        raise InputError(
            f"None of the {len(geoms)} samples touches {where}: the samples lie in "
            f"[{xmin:.6g}, {ymin:.6g}, {xmax:.6g}, {ymax:.6g}], the raster in "
            f"[{rx[0]:.6g}, {ry[0]:.6g}, {rx[1]:.6g}, {ry[1]:.6g}]. Check that the samples are "
            f"in the raster's CRS ({info.crs_name})."
        )
    outside = len(geoms) - len(touching)
    if outside:
        reporter.warning(
            f"{outside} of {len(geoms)} samples do not touch the "
            f"{'extent' if region.from_extent else 'raster'} and are not exported."
        )
    return Samples(
        geoms=px, classes=np.array(classes, dtype=np.int64), bare_point=bare,
        areas=shapely.area(px), fids=fids, tree=tree, outside=outside,
    )  # fmt: skip


def _box(point, r: float):
    import shapely

    return shapely.box(point.x - r, point.y - r, point.x + r, point.y + r)


def polygonal(geom):
    """The polygonal part of a geometry (make_valid may add lines or points)."""
    import shapely

    parts = [p for p in shapely.get_parts(geom) if p.geom_type in POLYGON_TYPES]
    if not parts:
        return shapely.Polygon()
    return parts[0] if len(parts) == 1 else shapely.MultiPolygon(_flat(parts))


def _flat(parts):
    out = []
    for p in parts:
        out.extend(p.geoms if p.geom_type == "MultiPolygon" else [p])
    return out
