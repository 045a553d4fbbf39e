"""A fast reader of plain tiled GeoTIFFs: windows from DEFLATE or uncompressed tiles.

    reader = FastTiffReader.open(path, bands=(1, 2, 3))   # None: read with rasterio instead
    buf = np.empty((h, w, 3), reader.dtype)
    reader.read((col, row, w, h), buf)                      # pixel-interleaved, like GDAL

Reading a DEFLATE tile is almost all decompression, and the zlib in rasterio's GDAL inflates
at about half the speed of libdeflate, which is on most Linux systems (libtiff links it).
So this reader takes the tile offsets from tifffile, reads the raw tiles with ``os.pread``
and inflates them with libdeflate through ctypes (no Python binding of it works with our
numpy 1.x; zlib when libdeflate cannot be loaded). It opens only what GDAL reads to the very
same values: tiled, one image, compression none or DEFLATE, predictor 1 (2 for integers),
8 to 32-bit integers or float32 in either byte order, no mask and no alpha; anything else
gives None and the caller keeps rasterio. Missing (sparse) tiles read as nodata, or 0, as
GDAL reads them. Decoded tiles are kept in a small LRU cache bounded in bytes. The file and
the decompressor belong to the process that made them: after a fork, both are made afresh.
``DLS_FAST_TIFF=0`` in the environment turns the reader off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
import zlib
from collections import OrderedDict

import numpy as np

DTYPES = ("uint8", "uint16", "int16", "uint32", "int32", "float32")
DEFLATE = (8, 32946)
CACHE_BYTES = 64 * 2**20
_LIB_NAMES = ("libdeflate.so.0", "libdeflate.0.dylib", "libdeflate.dll", "deflate.dll")
_process: dict = {}  # pid -> the decompressor of that process (see `decompressor`)


class TileError(OSError):
    """A tile could not be read or decoded: the caller reads the window with GDAL instead."""


def enabled() -> bool:
    return os.environ.get("DLS_FAST_TIFF", "1").strip().lower() not in ("0", "false", "no", "off")


def _load_libdeflate():
    names = list(_LIB_NAMES)
    found = ctypes.util.find_library("deflate")
    if found:
        names.insert(1, found)
    for name in names:
        try:
            lib = ctypes.CDLL(name)
            alloc, inflate = lib.libdeflate_alloc_decompressor, lib.libdeflate_zlib_decompress
        except (OSError, AttributeError):
            continue
        alloc.restype, alloc.argtypes = ctypes.c_void_p, []
        inflate.restype = ctypes.c_int
        inflate.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p,
                            ctypes.c_size_t, ctypes.c_void_p]  # fmt: skip
        handle = alloc()
        if handle:
            return inflate, handle
    return None


class Decompressor:
    """zlib-wrapped DEFLATE into a numpy buffer of the exact decoded size: libdeflate when it
    loads (`name` "libdeflate"), else Python's zlib ("zlib")."""

    def __init__(self) -> None:
        loaded = _load_libdeflate()
        self._inflate, self._handle = loaded or (None, None)
        self.name = "libdeflate" if loaded else "zlib"

    def into(self, raw: bytes, out: np.ndarray) -> None:
        if self._inflate is not None:
            rc = self._inflate(self._handle, raw, len(raw), out.ctypes.data, out.nbytes, None)
            if rc == 0:
                return
            if rc != 3:  # 1 bad data, 2 short output; 3: more data than the tile holds
                raise TileError(f"libdeflate could not inflate a tile (error {rc})")
        try:
            data = zlib.decompressobj().decompress(raw, out.nbytes)  # extra bytes: ignored
        except zlib.error as exc:
            raise TileError(f"zlib could not inflate a tile: {exc}") from None
        if len(data) != out.nbytes:
            raise TileError(f"a tile holds {len(data)} bytes instead of {out.nbytes}")
        out.reshape(-1).view(np.uint8)[:] = np.frombuffer(data, np.uint8)


def decompressor() -> Decompressor:
    """This process's decompressor, made on first use (a forked child makes its own)."""
    pid = os.getpid()
    if pid not in _process:
        _process.clear()
        _process[pid] = Decompressor()
    return _process[pid]


def _nodata(page, dtype: np.dtype):
    """GDAL's nodata tag as a value of `dtype`; None when absent; ValueError if it does not
    fit `dtype` (GDAL would clamp or round it: this reader does not guess how)."""
    tag = page.tags.get(42113)
    if tag is None:
        return None
    text = str(tag.value).strip("\x00 ")
    value = float(text)
    if dtype.kind == "f":
        if math.isfinite(value) and abs(value) > float(np.finfo(np.float32).max):
            raise ValueError(f"nodata {text} does not fit {dtype}")
        return np.float32(value)
    if not value.is_integer() or not np.iinfo(dtype).min <= value <= np.iinfo(dtype).max:
        raise ValueError(f"nodata {text} does not fit {dtype}")
    return dtype.type(int(value))


class FastTiffReader:
    """Windows of a plain tiled GeoTIFF (see the module docstring); `open` or None."""

    def __init__(self, path: str, page, byteorder: str, bands, nodata, cache_bytes: int) -> None:
        self.path, self.bands = str(path), tuple(bands)
        self.width, self.height = page.imagewidth, page.imagelength
        self.tile_w, self.tile_h = page.tilewidth, page.tilelength
        self.samples = page.samplesperpixel
        self.planar = page.planarconfig == 2
        self.compression, self.predictor = int(page.compression), int(page.predictor)
        self.dtype = np.dtype(page.dtype).newbyteorder("=")
        self.file_dtype = self.dtype.newbyteorder(byteorder)
        self.nodata = nodata
        self.fill = self.dtype.type(0) if nodata is None else nodata
        self.offsets = np.asarray(page.dataoffsets, dtype=np.int64)
        self.counts = np.asarray(page.databytecounts, dtype=np.int64)
        self.across = math.ceil(self.width / self.tile_w)
        self.per_plane = self.across * math.ceil(self.height / self.tile_h)
        idx = [b - 1 for b in self.bands]
        if self.planar:
            self.tile_shape = (self.tile_h, self.tile_w)
        else:
            self.tile_shape = (self.tile_h, self.tile_w, self.samples)
        if idx == list(range(self.samples)):
            self._pick = slice(None)
        elif idx == list(range(idx[0], idx[0] + len(idx))):
            self._pick = slice(idx[0], idx[0] + len(idx))
        else:
            self._pick = idx
        self.cache_bytes = cache_bytes
        self._cache: OrderedDict = OrderedDict()
        self.cached_bytes = 0
        self._pid, self._fd = None, None

    @classmethod
    def open(cls, path, bands, cache_bytes: int = CACHE_BYTES) -> FastTiffReader | None:
        """The reader of `bands` (1-based) of `path`, or None where GDAL is to read it."""
        return cls.probe(path, bands, cache_bytes)[0]

    @classmethod
    def probe(cls, path, bands, cache_bytes: int = CACHE_BYTES):
        """(reader, "") or (None, why the file is left to GDAL)."""
        if not enabled():
            return None, "DLS_FAST_TIFF=0"
        if not hasattr(os, "pread"):
            return None, "no os.pread on this system"
        try:
            import tifffile

            with tifffile.TiffFile(str(path)) as tif:
                why = cls._refuse(tif, path, bands)
                if why:
                    return None, why
                page, odd_nodata = tif.pages[0], ""
                try:
                    nodata = _nodata(page, np.dtype(page.dtype))
                except ValueError as exc:  # it matters only to sparse tiles
                    nodata, odd_nodata = None, str(exc)
                reader = cls(path, page, tif.byteorder, bands, nodata, cache_bytes)
        except Exception as exc:  # not a TIFF tifffile reads, or a tag it cannot parse
            return None, f"{type(exc).__name__}: {exc}"
        if not (reader.offsets.all() and reader.counts.all()):  # sparse: nodata fills tiles
            if odd_nodata:
                return None, f"sparse tiles and {odd_nodata}"
            if os.path.exists(f"{path}.aux.xml"):  # GDAL might take nodata from there
                return None, "sparse tiles and a .aux.xml beside the file"
        return reader, ""

    @staticmethod
    def _refuse(tif, path, bands) -> str:
        """Why GDAL might read the file differently from this reader ("" if it will not)."""
        page = tif.pages[0]
        comp, pred = int(page.compression), int(page.predictor)
        dtype = np.dtype(page.dtype) if page.dtype is not None else None
        if dtype is None or dtype.name not in DTYPES:
            return f"{page.dtype} data"
        checks = (
            (tif.is_shaped or tif.is_imagej or tif.is_ome, "not a plain TIFF"),
            (not page.is_tiled or page.tiledepth != 1 or page.imagedepth != 1, "not tiled"),
            (comp not in (1, *DEFLATE), f"{getattr(page.compression, 'name', comp)} tiles"),
            (pred not in (1, 2), f"predictor {pred}"),
            (pred == 2 and (comp == 1 or dtype.kind == "f"), "predictor 2 on these samples"),
            (page.bitspersample != dtype.itemsize * 8, f"{page.bitspersample}-bit samples"),
            (int(page.planarconfig) not in (1, 2), "planar configuration"),
            (int(page.photometric) not in (1, 2, 3), f"photometric {int(page.photometric)}"),
            (int(page.fillorder) != 1, "fill order 2"),
            (page.subfiletype != 0, "the first image is not full resolution"),
            (any(int(s) in (1, 2) for s in page.extrasamples), "an alpha band"),
            (any(p.subfiletype & 4 for p in tif.pages[1:]), "an internal mask"),
            (os.path.exists(f"{path}.msk"), "a mask file beside it"),
            (not bands or any(not 1 <= b <= page.samplesperpixel for b in bands), "band numbers"),
        )
        for failed, why in checks:
            if failed:
                return why
        tiles = math.ceil(page.imagewidth / page.tilewidth)
        tiles *= math.ceil(page.imagelength / page.tilelength)
        tiles *= page.samplesperpixel if page.planarconfig == 2 else 1
        if len(page.dataoffsets) != tiles or len(page.databytecounts) != tiles:
            return "tile offsets do not match the tiling"
        return ""

    @property
    def decoder_name(self) -> str:
        """What decodes the tiles: "libdeflate", "zlib", or "none" (uncompressed tiles)."""
        return "none" if self.compression == 1 else decompressor().name

    def close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd, self._pid = None, None
        self._cache.clear()
        self.cached_bytes = 0

    def _file(self) -> int:
        if self._pid != os.getpid():  # first use, or a forked child: its own fd and cache
            self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            self._pid = os.getpid()
            self._cache.clear()
            self.cached_bytes = 0
        return self._fd

    def _decode(self, index: int):
        """Tile `index` decoded, (rows, cols[, samples]) native, from the cache if there;
        None for a sparse tile."""
        fd = self._file()
        tile = self._cache.get(index)
        if tile is not None:
            self._cache.move_to_end(index)
            return tile
        offset, count = int(self.offsets[index]), int(self.counts[index])
        if offset == 0 or count == 0:
            return None
        raw = os.pread(fd, count, offset)
        if len(raw) != count:
            raise TileError(f"tile {index} of {self.path} is cut short")
        tile = np.empty(self.tile_shape, self.file_dtype)
        if self.compression == 1:
            if count < tile.nbytes:
                raise TileError(f"tile {index} of {self.path} holds too few bytes")
            tile.reshape(-1).view(np.uint8)[:] = np.frombuffer(raw, np.uint8, tile.nbytes)
        else:
            decompressor().into(raw, tile)
        if not self.file_dtype.isnative:
            tile = tile.byteswap().view(self.dtype)
        if self.predictor == 2:  # undo horizontal differencing; integers wrap as TIFF's do
            np.cumsum(tile, axis=1, dtype=self.dtype, out=tile)
        if tile.nbytes <= self.cache_bytes:
            self._cache[index] = tile
            self.cached_bytes += tile.nbytes
            while self.cached_bytes > self.cache_bytes:
                self.cached_bytes -= self._cache.popitem(last=False)[1].nbytes
        return tile

    def read(self, window, out: np.ndarray) -> np.ndarray:
        """Fill `out` (rows, cols, bands) with `window` (col, row, width, height), which must
        lie inside the raster; returns `out`."""
        col, row, w, h = (int(v) for v in window)
        if col < 0 or row < 0 or w <= 0 or h <= 0 or col + w > self.width or row + h > self.height:
            raise ValueError(
                f"window {window} is not inside the raster ({self.width} x {self.height})"
            )
        if out.shape != (h, w, len(self.bands)):
            raise ValueError(f"out is {out.shape}, the window needs {(h, w, len(self.bands))}")
        tw, th = self.tile_w, self.tile_h
        for ty in range(row // th, (row + h - 1) // th + 1):
            r0, r1 = max(row, ty * th), min(row + h, (ty + 1) * th)
            for tx in range(col // tw, (col + w - 1) // tw + 1):
                c0, c1 = max(col, tx * tw), min(col + w, (tx + 1) * tw)
                dst = out[r0 - row : r1 - row, c0 - col : c1 - col]
                src = np.s_[r0 - ty * th : r1 - ty * th, c0 - tx * tw : c1 - tx * tw]
                index = ty * self.across + tx
                if not self.planar:
                    tile = self._decode(index)
                    dst[...] = self.fill if tile is None else tile[src][..., self._pick]
                    continue
                for i, band in enumerate(self.bands):
                    tile = self._decode((band - 1) * self.per_plane + index)
                    dst[..., i] = self.fill if tile is None else tile[src]
        return out
