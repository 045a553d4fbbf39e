"""Pixel classification accuracy, streamed: a confusion matrix accumulated window by window.

The classified raster is read in block-aligned windows of about ``window_size`` pixels a
side, so memory does not grow with the raster. The reference is brought onto the classified
raster's grid one window at a time: a reference raster on the same grid is read as it is;
one in another CRS or grid through a WarpedVRT (nearest neighbour, so classes are never
blended); reference polygons are rasterized per window (pixel centres inside a polygon
take its class). Reference pixels with 0 or nodata are not counted; a classified 0 (or
nodata) is "no class", a miss for the reference class.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from ..protocol import InputError
from . import metrics
from .detection import read_objects
from .job import AccuracyJob


def _open(path: str, what: str):
    import rasterio
    from rasterio.errors import RasterioIOError

    try:
        src = rasterio.open(path)
    except RasterioIOError as exc:
        raise InputError(f"Cannot open the {what} '{path}': {exc}.") from None
    if src.crs is None:
        src.close()
        raise InputError(
            f"The {what} '{path}' has no coordinate reference system, so it cannot be laid "
            "over the other data. Assign its CRS (Raster > Projections > Assign Projection, "
            "or gdal_edit.py -a_srs EPSG:xxxx) and run again."
        )
    if src.transform.is_identity:
        src.close()
        raise InputError(f"The {what} '{path}' has no georeferencing (no geotransform).")
    if src.dtypes[0].startswith("complex"):
        src.close()
        raise InputError(f"The {what} '{path}' has complex pixels; class values are integers.")
    return src


def region_of(src, extent) -> tuple[int, int, int, int]:
    """(col0, row0, col1, row1): the raster, or the part of it inside `extent`."""
    col0, row0, col1, row1 = 0, 0, src.width, src.height
    if extent is not None:
        xmin, ymin, xmax, ymax = (float(v) for v in extent)
        inv = ~src.transform
        pts = [inv * (x, y) for x in (xmin, xmax) for y in (ymin, ymax)]
        cs, rs = [p[0] for p in pts], [p[1] for p in pts]
        eps = 1e-6  # an extent on pixel edges must not grow by a pixel through rounding
        col0, row0 = max(0, math.floor(min(cs) + eps)), max(0, math.floor(min(rs) + eps))
        col1 = min(src.width, math.ceil(max(cs) - eps))
        row1 = min(src.height, math.ceil(max(rs) - eps))
        if col1 <= col0 or row1 <= row0:
            raise InputError(
                f"The extent {list(extent)} does not overlap the classified raster; give an "
                "extent inside it, in its CRS."
            )
    return col0, row0, col1, row1


def window_steps(src, window_size: int) -> tuple[int, int]:
    """Rows and columns per window: a multiple of the block size where blocks are smaller
    than the window (so no block is read twice), else `window_size`."""
    bh, bw = src.block_shapes[0]
    step_r = (window_size // bh) * bh if bh <= window_size else window_size
    step_c = (window_size // bw) * bw if bw <= window_size else window_size
    return step_r, step_c


def windows(region, steps) -> Iterator:
    """Windows over `region` starting on multiples of `steps` (the block grid)."""
    from rasterio.windows import Window

    col0, row0, col1, row1 = region
    step_r, step_c = steps
    for r in range((row0 // step_r) * step_r, row1, step_r):
        for c in range((col0 // step_c) * step_c, col1, step_c):
            r0, c0 = max(r, row0), max(c, col0)
            r1, c1 = min(r + step_r, row1), min(c + step_c, col1)
            yield Window(c0, r0, c1 - c0, r1 - r0)


def _classes(values, nodata, what: str):
    """Integer class values; nodata -> 0; non-integer values refused."""
    import numpy as np

    if values.dtype.kind == "f":
        bad = ~np.isfinite(values)
        if nodata is not None and not math.isnan(nodata):
            bad |= values == nodata
        values = np.where(bad, 0, values)
        rounded = np.rint(values)
        if not np.array_equal(rounded, values):
            raise InputError(
                f"The {what} holds non-integer values (e.g. {values[rounded != values][0]}); "
                "class values are whole numbers."
            )
        return rounded.astype(np.int64)
    values = values.astype(np.int64)
    if nodata is not None and not math.isnan(nodata) and float(nodata).is_integer():
        values[values == int(nodata)] = 0
    return values


class _ReferenceRaster:
    """Windows of a reference raster on the classified raster's grid."""

    def __init__(self, path: str, cls) -> None:
        from rasterio.enums import Resampling
        from rasterio.vrt import WarpedVRT

        self.src = _open(path, "reference raster")
        same = (self.src.crs == cls.crs and self.src.transform == cls.transform
                and self.src.shape == cls.shape)  # fmt: skip
        self.warped = not same
        self.nodata = self.src.nodata
        self.reader = self.src
        if self.warped:
            self.reader = WarpedVRT(
                self.src, crs=cls.crs, transform=cls.transform, width=cls.width,
                height=cls.height, resampling=Resampling.nearest,
                nodata=self.nodata if self.nodata is not None else 0,
            )  # fmt: skip

    def bounds(self, crs):
        from rasterio.warp import transform_bounds

        return transform_bounds(self.src.crs, crs, *self.src.bounds, densify_pts=21)

    def read(self, window, transform):
        return _classes(self.reader.read(1, window=window), self.nodata, "reference raster")

    def close(self) -> None:
        if self.reader is not self.src:
            self.reader.close()
        self.src.close()


class _ReferencePolygons:
    """Reference polygons rasterized window by window (pixel centres inside take the class)."""

    def __init__(self, path: str) -> None:
        import shapely

        objects = read_objects(path, "reference polygons")
        bad = [v for v in objects.values if not _whole(v)]
        if bad:
            raise InputError(
                f"Reference class values must be whole numbers (class values of the "
                f"classified raster), not {bad[0]!r}."
            )
        self.geoms = objects.geoms
        self.values = [int(v) for v in objects.values]
        self.tree = shapely.STRtree(self.geoms)
        self.warped = False

    def bounds(self, crs):
        import shapely

        # the polygons are in the classified raster's CRS already
        if len(self.geoms) == 0:
            return None
        return tuple(shapely.total_bounds(self.geoms))

    def read(self, window, transform):
        import numpy as np
        from rasterio.features import rasterize
        from rasterio.windows import bounds
        from rasterio.windows import transform as window_transform
        from shapely.geometry import box

        shape = (int(window.height), int(window.width))
        hits = np.sort(self.tree.query(box(*bounds(window, transform))))
        if hits.size == 0:
            return np.zeros(shape, dtype=np.int64)
        shapes = [(self.geoms[i], self.values[i]) for i in hits]  # later polygons win
        out = rasterize(shapes, out_shape=shape, transform=window_transform(window, transform),
                        fill=0, dtype="int32")  # fmt: skip
        return out.astype(np.int64)

    def close(self) -> None:
        pass


def _whole(value) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    try:
        return float(value).is_integer()
    except (TypeError, ValueError):
        return False


def _overlaps(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def evaluate(job: AccuracyJob, reporter) -> dict:
    """The confusion matrix of the classified raster against the reference, and its figures."""
    from rasterio.windows import Window
    from rasterio.windows import bounds as window_bounds

    cls = _open(job.classified, "classified raster")
    reference = None
    try:
        if job.reference_raster:
            reference = _ReferenceRaster(job.reference_raster, cls)
        else:
            reference = _ReferencePolygons(job.reference_features)
        region = region_of(cls, job.extent)
        steps = window_steps(cls, job.window_size)
        area = window_bounds(
            Window(region[0], region[1], region[2] - region[0], region[3] - region[1]),
            cls.transform,
        )
        ref_bounds = reference.bounds(cls.crs)
        if ref_bounds is None or not _overlaps(area, ref_bounds):
            what = "reference raster" if job.reference_raster else "reference polygons"
            raise InputError(
                f"The {what} do{'es' if job.reference_raster else ''} not overlap the "
                f"classified raster{' inside the extent' if job.extent else ''}: there is "
                "nothing to compare. Check that both cover the same place (and their CRSs)."
            )
        counter = metrics.ConfusionCounter()
        todo = list(windows(region, steps))
        counted = 0
        for n, window in enumerate(todo):
            pred = _classes(cls.read(1, window=window), cls.nodata, "classified raster")
            ref = reference.read(window, cls.transform)
            valid = ref != 0
            counted += int(valid.sum())
            counter.add(ref[valid], pred[valid])
            reporter.progress(95.0 * (n + 1) / len(todo))
        warped = reference.warped
    finally:
        if reference is not None:
            reference.close()
        cls.close()
    if counted == 0:
        raise InputError(
            "No pixel of the classified raster has a reference class (the reference is 0 or "
            "nodata everywhere they overlap). Check the reference's class values and extent."
        )
    labels, matrix = counter.matrix(no_class=0)
    summary = metrics.confusion_summary(labels, matrix)
    for row in summary["classes"]:
        row["name"] = job.classes.get(str(row["value"]), str(row["value"]))
    return {
        "tool": job.tool,
        **summary,
        "windows": len(todo),
        "window_shape": list(steps),
        "region": list(region),
        "warped": warped,
        "reference": "raster" if job.reference_raster else "features",
    }
