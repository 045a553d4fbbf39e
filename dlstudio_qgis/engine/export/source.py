"""The source raster: what the export reads from it, checked before anything is written.

Everything here is read from the header (no pixel is read). `SourceInfo` is small and
picklable: the pool's worker processes get it in their initializer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..protocol import InputError
from .job import ExportJob

#: numpy dtype -> the pixel type names ArcGIS writes in a model definition
PIXEL_TYPES = {
    "uint8": "U8", "int8": "S8", "uint16": "U16", "int16": "S16", "uint32": "U32",
    "int32": "S32", "float32": "F32", "float64": "F64", "int64": "S64", "uint64": "U64",
}  # fmt: skip

#: what the PNG and JPEG drivers can hold (ArcGIS has the same limits)
PNG_DTYPES, PNG_BANDS = ("uint8", "uint16"), (1, 3, 4)
JPEG_DTYPES, JPEG_BANDS = ("uint8",), (1, 3)


@dataclass(frozen=True)
class SourceInfo:
    path: str
    width: int
    height: int
    count: int
    bands: tuple[int, ...]  # 1-based, the ones exported
    dtype: str
    nodata: float | None
    crs_wkt: str
    crs_name: str
    transform: tuple[float, float, float, float, float, float]  # a, b, c, d, e, f
    band_names: tuple[str, ...]

    @property
    def pixel_type(self) -> str:
        return PIXEL_TYPES.get(self.dtype, self.dtype)

    @property
    def cell_size(self) -> tuple[float, float]:
        a, b, _, d, e, _ = self.transform
        return math.hypot(a, d), math.hypot(b, e)

    @property
    def pixel_area(self) -> float:
        a, b, _, d, e, _ = self.transform
        return abs(a * e - b * d)


def inspect_raster(job: ExportJob) -> SourceInfo:
    """Open the raster header and refuse what cannot be exported (InputError)."""
    import numpy as np
    import rasterio
    from rasterio.errors import RasterioIOError

    try:
        src = rasterio.open(job.raster)
    except RasterioIOError as exc:
        raise InputError(f"Cannot open the raster '{job.raster}': {exc}.") from None
    with src:
        if src.crs is None:
            raise InputError(
                f"The raster '{job.raster}' has no coordinate reference system, so its chips "
                "cannot be georeferenced. Assign its CRS (e.g. Raster > Projections > Assign "
                "Projection) and export again."
            )
        if src.transform.is_identity and not src.gcps[0]:
            raise InputError(
                f"The raster '{job.raster}' has no georeferencing (no geotransform). "
                "Georeference it and export again."
            )
        bands = job.bands or tuple(range(1, src.count + 1))
        bad = [b for b in bands if b > src.count]
        if bad:
            raise InputError(
                f"Band {', '.join(map(str, bad))} does not exist: the raster has "
                f"{src.count} band{'s' if src.count > 1 else ''} (1 to {src.count})."
            )
        dtypes = {src.dtypes[b - 1] for b in bands}
        dtype = str(np.result_type(*dtypes)) if len(dtypes) > 1 else dtypes.pop()
        if dtype.startswith("complex"):
            raise InputError(f"The raster has complex pixels ({dtype}); export needs real ones.")
        nodata = src.nodatavals[bands[0] - 1]
        names = []
        for b in bands:
            desc = src.descriptions[b - 1]
            interp = src.colorinterp[b - 1].name
            names.append(desc or (interp if interp not in ("undefined", "gray") else f"Band_{b}"))
        name = src.crs.to_string() if src.crs.to_epsg() else (src.crs.to_wkt()[:60] + "...")
        info = SourceInfo(
            path=str(job.raster), width=src.width, height=src.height, count=src.count,
            bands=tuple(bands), dtype=dtype,
            nodata=None if nodata is None else float(nodata),
            crs_wkt=src.crs.to_wkt(), crs_name=name, transform=tuple(src.transform)[:6],
            band_names=tuple(names),
        )  # fmt: skip
    check_image_format(job, info)
    return info


def check_image_format(job: ExportJob, info: SourceInfo) -> None:
    n = len(info.bands)
    fmt = job.image_format
    if fmt == "JPEG" and (info.dtype not in JPEG_DTYPES or n not in JPEG_BANDS):
        raise InputError(
            f"JPEG chips take 8-bit data with 1 or 3 bands; this export has {n} band"
            f"{'s' if n > 1 else ''} of {info.dtype}. Use TIFF (IMAGE_FORMAT=TIFF), which keeps "
            "any data type and band count, or choose 1 or 3 bands of an 8-bit raster."
        )
    if fmt == "PNG" and (info.dtype not in PNG_DTYPES or n not in PNG_BANDS):
        raise InputError(
            f"PNG chips take 8- or 16-bit unsigned data with 1, 3 or 4 bands; this export has "
            f"{n} band{'s' if n > 1 else ''} of {info.dtype}. Use TIFF (IMAGE_FORMAT=TIFF), "
            "which keeps any data type and band count."
        )


@dataclass(frozen=True)
class Region:
    """The pixel window tiled: the raster, or the job's extent intersected with it."""

    col0: int
    row0: int
    col1: int
    row1: int
    from_extent: bool

    @property
    def width(self) -> int:
        return self.col1 - self.col0

    @property
    def height(self) -> int:
        return self.row1 - self.row0


def region_of(job: ExportJob, info: SourceInfo) -> Region:
    """The tiled window, refusing an extent outside the raster or a tile larger than it."""
    from affine import Affine

    col0, row0, col1, row1 = 0, 0, info.width, info.height
    if job.extent is not None:
        xmin, ymin, xmax, ymax = job.extent
        inv = ~Affine(*info.transform)
        pts = [inv * (x, y) for x in (xmin, xmax) for y in (ymin, ymax)]
        cs, rs = [p[0] for p in pts], [p[1] for p in pts]
        eps = 1e-6  # an extent on pixel edges must not grow by a pixel through rounding
        col0 = max(0, math.floor(min(cs) + eps))
        row0 = max(0, math.floor(min(rs) + eps))
        col1 = min(info.width, math.ceil(max(cs) - eps))
        row1 = min(info.height, math.ceil(max(rs) - eps))
        if col1 <= col0 or row1 <= row0:
            raise InputError(
                f"The extent {list(job.extent)} does not overlap the raster; give an extent "
                f"inside it, in the raster's CRS ({info.crs_name})."
            )
    region = Region(col0, row0, col1, row1, job.extent is not None)
    tx, ty = job.tile_size
    if tx > region.width or ty > region.height:
        what = "the extent on the raster" if region.from_extent else "the raster"
        raise InputError(
            f"The tile size {tx} x {ty} pixels is larger than {what} ({region.width} x "
            f"{region.height} pixels). Choose a tile size of at most {region.width} x "
            f"{region.height}."
        )
    return region
