"""Reading a tile's pixels and writing georeferenced rasters (worker side).

A tile's window is read once, all bands in one call; a rotated chip is resampled from it with
`rasterio.warp.reproject` into a tile-size array whose affine transform is the rotated one,
so its georeferencing is exact. GeoTIFF keeps the data type and nodata; PNG and JPEG get a
world file (.pgw / .jgw) and the CRS in a `.aux.xml` beside them.
"""

from __future__ import annotations

from pathlib import Path

IMAGE_EXT = {"TIFF": "tif", "PNG": "png", "JPEG": "jpg"}
WORLD_EXT = {"png": "pgw", "jpg": "jgw", "tif": "tfw"}
DRIVERS = {"tif": "GTiff", "png": "PNG", "jpg": "JPEG"}


def label_raster_ext(image_format: str) -> str:
    """Label rasters stay lossless: TIFF beside TIFF chips, PNG beside PNG or JPEG chips."""
    return "tif" if image_format == "TIFF" else "png"


def read_window(ds, bands, window, fill):
    """The pixels of `window` (col, row, width, height), padded with `fill` where it overhangs
    the raster, and a validity mask (None when the window lies inside the raster)."""
    import numpy as np
    from rasterio.windows import Window

    col, row, w, h = window
    c0, r0 = max(col, 0), max(row, 0)
    c1, r1 = min(col + w, ds.width), min(row + h, ds.height)
    if (c0, r0, c1, r1) == (col, row, col + w, row + h):
        return ds.read(list(bands), window=Window(col, row, w, h)), None
    data = np.full((len(bands), h, w), fill, dtype=ds.dtypes[bands[0] - 1])
    valid = np.zeros((h, w), dtype=bool)
    if c1 > c0 and r1 > r0:
        part = ds.read(list(bands), window=Window(c0, r0, c1 - c0, r1 - r0))
        data[:, r0 - row : r1 - row, c0 - col : c1 - col] = part
        valid[r0 - row : r1 - row, c0 - col : c1 - col] = True
    return data, valid


def chip_pixels(data, valid, window, tile, to_raster, angle, src_transform, crs, nodata):
    """The chip array (bands, rows, cols) and its validity mask (None = all valid)."""
    import numpy as np
    from affine import Affine
    from rasterio.enums import Resampling
    from rasterio.warp import reproject

    wcol, wrow = window[0], window[1]
    col, row, tx, ty = tile
    if not angle:
        r, c = row - wrow, col - wcol
        out = data[:, r : r + ty, c : c + tx]
        return out, None if valid is None else valid[r : r + ty, c : c + tx]
    src_t = Affine(*src_transform) * Affine.translation(wcol, wrow)
    dst_t = Affine(*src_transform) * Affine(*to_raster)
    fill = 0 if nodata is None else nodata
    out = np.full((data.shape[0], ty, tx), fill, dtype=data.dtype)
    exact = float(angle) % 90 == 0
    reproject(
        data, out, src_transform=src_t, src_crs=crs, dst_transform=dst_t, dst_crs=crs,
        src_nodata=nodata, dst_nodata=nodata,
        resampling=Resampling.nearest if exact else Resampling.bilinear,
        XSCALE=1, YSCALE=1,  # a rotation keeps the scale: no wider (blurring) kernel
    )  # fmt: skip
    out_valid = None
    if valid is not None:
        v = np.zeros((1, ty, tx), dtype=np.uint8)
        reproject(
            valid[None].astype(np.uint8), v, src_transform=src_t, src_crs=crs,
            dst_transform=dst_t, dst_crs=crs, resampling=Resampling.nearest,
        )  # fmt: skip
        out_valid = v[0].astype(bool)
    return out, out_valid


def world_file_text(transform) -> str:
    a, b, c, d, e, f = tuple(transform)[:6]
    # a world file names the centre of the upper-left pixel
    values = (a, d, b, e, c + a / 2 + b / 2, f + d / 2 + e / 2)
    return "".join(f"{v:.12f}\n" for v in values)


def write_raster(path: Path, data, transform, crs, nodata=None, *, rgb=False, compress=False):
    """Write (bands, rows, cols) as GeoTIFF, PNG or JPEG (by extension), georeferenced.

    Image chips are written uncompressed, as ArcGIS writes them: five times faster to write
    than deflate and faster to read in training; label rasters (mostly zeros) are deflated.
    """
    import rasterio

    ext = path.suffix[1:].lower()
    count, height, width = data.shape
    profile = {
        "driver": DRIVERS[ext], "width": width, "height": height, "count": count,
        "dtype": str(data.dtype), "crs": crs, "transform": transform,
    }  # fmt: skip
    if nodata is not None:
        profile["nodata"] = nodata
    if ext == "tif":
        profile["interleave"] = "pixel"
        if compress:
            profile.update(compress="deflate", zlevel=1)
        if rgb and count == 3 and str(data.dtype) == "uint8":
            profile["photometric"] = "RGB"
    elif ext == "jpg":
        profile["quality"] = 90
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    if ext != "tif":
        path.with_suffix("." + WORLD_EXT[ext]).write_text(world_file_text(transform))


def band_moments(data, valid, nodata):
    """Per band: count, mean, M2 (sum of squared deviations), min, max of the valid pixels.

    8- and 16-bit unsigned data go through a histogram (exact integer sums, one pass).
    """
    import numpy as np

    bands = data.shape[0]
    flat = data.reshape(bands, -1)
    mask = None
    if nodata is not None:
        mask = ~np.isnan(flat) if nodata != nodata else flat != nodata
    elif flat.dtype.kind == "f":
        mask = ~np.isnan(flat)
    if valid is not None:
        v = np.broadcast_to(valid.reshape(1, -1), flat.shape)
        mask = v if mask is None else mask & v
    out = np.zeros((bands, 5))
    out[:, 3], out[:, 4] = np.inf, -np.inf
    for b in range(bands):
        x = flat[b] if mask is None else flat[b][mask[b]]
        if x.size == 0:
            continue
        if x.dtype in (np.uint8, np.uint16):
            hist = np.bincount(x, minlength=256)
            values = np.nonzero(hist)[0]
            counts = hist[values].astype(np.int64)
            n = int(counts.sum())
            total = int(counts @ values.astype(np.int64))
            squares = int(counts @ (values.astype(np.int64) ** 2))
            # exact: M2 = sum(x^2) - sum(x)^2 / n, computed on Python integers
            out[b] = (n, total / n, (n * squares - total * total) / n, values[0], values[-1])
        else:
            x = x.astype(np.float64)
            mean = x.mean()
            out[b] = (x.size, mean, ((x - mean) ** 2).sum(), x.min(), x.max())
    return out
