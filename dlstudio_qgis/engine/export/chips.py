"""Reading a tile's pixels and writing georeferenced rasters (worker side).

A tile's window is read once, all bands in one call, pixel-interleaved as the chips are
written; a rotated chip is resampled from it with `rasterio.warp.reproject` into a tile-size
array whose affine transform is the rotated one, so its georeferencing is exact. GeoTIFF keeps
the data type and nodata, and is written from a header GDAL made once (`ChipWriter`); PNG and
JPEG get a world file (.pgw / .jgw) and the CRS in a `.aux.xml` beside them.
"""

from __future__ import annotations

import os
from pathlib import Path

IMAGE_EXT = {"TIFF": "tif", "PNG": "png", "JPEG": "jpg"}
WORLD_EXT = {"png": "pgw", "jpg": "jgw", "tif": "tfw"}
DRIVERS = {"tif": "GTiff", "png": "PNG", "jpg": "JPEG"}


def label_raster_ext(image_format: str) -> str:
    """Label rasters stay lossless: TIFF beside TIFF chips, PNG beside PNG or JPEG chips."""
    return "tif" if image_format == "TIFF" else "png"


def read_window(ds, bands, window, fill, dtype=None, fast=None):
    """The pixels of `window` (col, row, width, height), padded with `fill` where it overhangs
    the raster, and a validity mask (None when the window lies inside the raster).

    The array is (bands, rows, cols), a view of a pixel-interleaved (rows, cols, bands) buffer:
    GDAL interleaves while it reads (no slower than a band-sequential read), and a chip that is
    the whole window is then written as it lies in memory (`ChipWriter`), without a copy.
    `fast`, a `tiffread.FastTiffReader` of the same file and bands, reads the pixels when
    given (libdeflate inflates DEFLATE tiles about twice as fast as GDAL's zlib); GDAL (`ds`)
    reads them otherwise, and where a tile fails to decode.
    """
    import numpy as np
    from rasterio.windows import Window

    col, row, w, h = window
    dtype = dtype or ds.dtypes[bands[0] - 1]
    c0, r0 = max(col, 0), max(row, 0)
    c1, r1 = min(col + w, ds.width), min(row + h, ds.height)
    if (c0, r0, c1, r1) == (col, row, col + w, row + h):
        buf = np.empty((h, w, len(bands)), dtype=dtype)
        if not _fast_read(fast, bands, (col, row, w, h), buf):
            ds.read(list(bands), window=Window(col, row, w, h), out=buf.transpose(2, 0, 1))
        return buf.transpose(2, 0, 1), None
    buf = np.full((h, w, len(bands)), fill, dtype=dtype)
    valid = np.zeros((h, w), dtype=bool)
    if c1 > c0 and r1 > r0:
        part = buf[r0 - row : r1 - row, c0 - col : c1 - col]
        inside = (c0, r0, c1 - c0, r1 - r0)
        if not _fast_read(fast, bands, inside, part):
            ds.read(list(bands), window=Window(*inside), out=part.transpose(2, 0, 1))
        valid[r0 - row : r1 - row, c0 - col : c1 - col] = True
    return buf.transpose(2, 0, 1), valid


def _fast_read(fast, bands, window, out) -> bool:
    """Read `window` into `out` with the fast reader; False where GDAL is to read it."""
    if fast is None or out.dtype != fast.dtype or tuple(bands) != fast.bands:
        return False
    from ..tiffread import TileError

    try:
        fast.read(window, out)
    except TileError:
        return False
    return True


def open_fast_reader(path, bands, dtype):
    """(`tiffread.FastTiffReader` or None, what reads the tiles, said in the export's log)."""
    from ..tiffread import FastTiffReader

    reader, why = FastTiffReader.probe(path, bands)
    if reader is not None and reader.dtype.name != dtype:
        reader, why = None, f"{reader.dtype.name} read as {dtype}"
    if reader is None:
        return None, f"reading tiles with GDAL ({why})"
    if reader.decoder_name == "none":
        return reader, "reading uncompressed tiles directly"
    return reader, f"reading tiles with {reader.decoder_name}"


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


def raster_profile(ext: str, data, transform, crs, nodata=None, *, rgb=False, compress=False):
    """The rasterio creation profile of `write_raster`."""
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
    return profile


def write_raster(path: Path, data, transform, crs, nodata=None, *, rgb=False, compress=False):
    """Write (bands, rows, cols) as GeoTIFF, PNG or JPEG (by extension), georeferenced.

    Image chips are written uncompressed, as ArcGIS writes them: five times faster to write
    than deflate and faster to read in training; label rasters (mostly zeros) are deflated.
    """
    import rasterio

    ext = path.suffix[1:].lower()
    profile = raster_profile(ext, data, transform, crs, nodata, rgb=rgb, compress=compress)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    if ext != "tif":
        path.with_suffix("." + WORLD_EXT[ext]).write_text(world_file_text(transform))


class ChipWriter:
    """Writes image chips; GeoTIFF chips from a header GDAL wrote once (`TiffTemplate`).

    Creating and closing a GDAL dataset costs about 0.7 ms a chip, more than reading it. An
    uncompressed GeoTIFF chip is a header, then the pixels: the header depends only on the
    chip's size, type, CRS, nodata and the linear part of its transform, and the translation
    is two doubles in it. So the first chip of each kind is written by GDAL (to memory), and
    every chip of that kind is that header with its own translation, then its pixels: the same
    bytes as GDAL would write. PNG and JPEG chips, and any layout the template cannot
    reproduce exactly (see `TiffTemplate.build`), go through GDAL.
    """

    def __init__(self, crs, nodata=None, *, rgb=False) -> None:
        self.crs, self.nodata, self.rgb = crs, nodata, rgb
        self._templates: dict = {}

    def write(self, path: str, data, transform) -> None:
        """Write (bands, rows, cols) `data` at `path` (the format by extension)."""
        if not path.lower().endswith(".tif"):
            write_raster(Path(path), data, transform, self.crs, self.nodata, rgb=self.rgb)
            return
        count, height, width = data.shape
        a, b, c, d, e, f = tuple(transform)[:6]
        key = (width, height, count, data.dtype.str, a, b, d, e)
        if key not in self._templates:
            self._templates[key] = TiffTemplate.build(
                width, height, count, data.dtype, (a, b, d, e), self.crs, self.nodata, self.rgb
            )
        template = self._templates[key]
        if template is None:
            write_raster(Path(path), data, transform, self.crs, self.nodata, rgb=self.rgb)
        else:
            template.write(path, data, c, f)


#: ModelTiepointTag (north-up) and ModelTransformationTag (rotated): where GDAL writes the
#: translation of the geotransform
GEO_TRANSFORM_TAGS = (33922, 34264)


class TiffTemplate:
    """An uncompressed, pixel-interleaved GeoTIFF as GDAL writes it, less its pixels and its
    translation: ``head`` + pixels + ``tail``, with the translation (c, f) as two
    little-endian doubles at ``head[at_c]`` and ``head[at_f]``."""

    def __init__(self, head: bytes, tail: bytes, at_c: int, at_f: int) -> None:
        self.head, self.tail, self.at_c, self.at_f = head, tail, at_c, at_f

    @classmethod
    def build(cls, width, height, count, dtype, linear, crs, nodata, rgb) -> TiffTemplate | None:
        """Have GDAL write a chip twice, at two translations; the template if the files differ
        only in the translation doubles of the georeferencing tags and hold the pixels as one
        run in row order (checked here, so any other layout falls back to GDAL)."""
        import io
        import struct
        import sys

        import numpy as np
        from affine import Affine
        from rasterio.io import MemoryFile

        try:
            import tifffile
        except ImportError:  # a worker Python set up before it was required: GDAL writes
            return None
        dtype = np.dtype(dtype)
        if sys.byteorder != "little" or not dtype.isnative:
            return None
        size = width * height * count * dtype.itemsize
        pixels = np.frombuffer(np.random.default_rng(0).bytes(size), dtype=dtype)
        pixels = pixels.reshape(height, width, count)
        a, b, d, e = linear
        blobs, places = [], []
        for c, f in ((12345.5, -6789.25), (-98765.75, 4321.125)):  # distinct, exact doubles
            profile = raster_profile(
                "tif", pixels.transpose(2, 0, 1), Affine(a, b, c, d, e, f), crs, nodata, rgb=rgb
            )
            with MemoryFile(ext=".tif") as mem:
                with mem.open(**profile) as dst:
                    dst.write(pixels.transpose(2, 0, 1))
                blob = bytes(mem.getbuffer())
            with tifffile.TiffFile(io.BytesIO(blob)) as tif:
                if tif.byteorder != "<" or len(tif.pages) != 1:
                    return None
                page = tif.pages[0]
                offsets, counts = list(page.dataoffsets), list(page.databytecounts)
                geo = [tag for tag in page.tags.values() if tag.code in GEO_TRANSFORM_TAGS]
            start = offsets[0] if offsets else 0
            ends = np.cumsum([start, *counts])
            if ends[-1] - start != size or offsets != ends[:-1].tolist():  # not one run
                return None
            if blob[start : start + size] != pixels.tobytes() or len(geo) != 1:
                return None
            tag = geo[0]
            if tag.dtype != 12:  # not DOUBLE
                return None
            values = struct.unpack_from(f"<{tag.count}d", blob, tag.valueoffset)
            at = {v: tag.valueoffset + 8 * i for i, v in enumerate(values) if v in (c, f)}
            if len(at) != 2 or start < max(at.values()) + 8:
                return None
            blobs.append(blob)
            places.append((start, at[c], at[f]))
        (start, at_c, at_f), (start2, at_c2, at_f2) = places
        if (start, at_c, at_f) != (start2, at_c2, at_f2) or len(blobs[0]) != len(blobs[1]):
            return None
        differ = np.frombuffer(blobs[0], np.uint8) != np.frombuffer(blobs[1], np.uint8)
        differ[at_c : at_c + 8] = differ[at_f : at_f + 8] = False
        if differ.any():  # something else depends on the translation
            return None
        blob = blobs[0]
        return cls(blob[:start], blob[start + size :], at_c, at_f)

    def write(self, path: str, data, c: float, f: float) -> None:
        """Write (bands, rows, cols) `data` with translation (c, f) at `path`."""
        import struct

        import numpy as np

        head = bytearray(self.head)
        struct.pack_into("<d", head, self.at_c, c)
        struct.pack_into("<d", head, self.at_f, f)
        pixels = data.transpose(1, 2, 0)
        if not pixels.flags.c_contiguous:
            pixels = np.ascontiguousarray(pixels)
        write_file(path, (head, pixels.reshape(-1).view(np.uint8), self.tail))


def write_file(path: str | Path, parts) -> None:
    """Create `path` holding the byte buffers `parts`, one after the other."""
    if not hasattr(os, "writev"):  # Windows
        with open(path, "wb") as fh:
            for part in parts:
                fh.write(part)
        return
    parts = [memoryview(p).cast("B") for p in parts if len(p)]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    try:
        done = os.writev(fd, parts)
        total = sum(len(p) for p in parts)
        if done < total:  # a short write: the rest, one buffer at a time
            for part in parts:
                if done >= len(part):
                    done -= len(part)
                    continue
                view = part[done:]
                while len(view):
                    view = view[os.write(fd, view) :]
                done = 0
    finally:
        os.close(fd)


def band_moments(data, valid, nodata):
    """Per band: count, mean, M2 (sum of squared deviations), min, max of the valid pixels, in
    float64 (integers of up to 16 bits are summed exactly instead: `stats.band_sums`)."""
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
        x = x.astype(np.float64)
        mean = x.mean()
        out[b] = (x.size, mean, ((x - mean) ** 2).sum(), x.min(), x.max())
    return out
