"""Writing inference outputs aside and moving them into place, so a cancelled or failed run
never leaves an output that looks complete.

The partial file of an output ``dir/name`` is ``dir/.name.<pid>.partial`` (the QGIS side
removes those a killed worker leaves: the pattern is :data:`PARTIAL_GLOB`).
"""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

from ..protocol import InputError

PARTIAL_GLOB = ".{name}.*.partial*"
BLOCK = 256  # output GeoTIFF tile size


def partial_path(output: str | os.PathLike) -> Path:
    out = Path(output)
    return out.with_name(f".{out.name}.{os.getpid()}.partial")


def check_output(output: str, overwrite: bool) -> None:
    out = Path(output)
    if not out.parent.is_dir():
        raise InputError(f"The output folder '{out.parent}' does not exist; create it first.")
    if out.exists() and not overwrite:
        raise InputError(f"The output '{out}' exists; remove it or allow overwriting.")


def move_into_place(partial: Path, output: str | os.PathLike, extras=(".aux.xml",)) -> None:
    """Rename `partial` (and its side files) onto `output`, the main file last."""
    out = Path(output)
    for ext in extras:
        side = Path(str(partial) + ext)
        target = Path(str(out) + ext)
        if side.exists():
            os.replace(side, target)
        else:
            with contextlib.suppress(FileNotFoundError):
                target.unlink()
    os.replace(partial, out)


def remove_partial(partial: Path, extras=(".aux.xml",)) -> None:
    for path in (partial, *(Path(str(partial) + e) for e in extras)):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def rgb(color) -> tuple[int, int, int]:
    """'#rrggbb', [r, g, b] or 'r,g,b' as a tuple; grey when unreadable."""
    try:
        if isinstance(color, str) and color.startswith("#") and len(color) >= 7:
            return tuple(int(color[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]
        if isinstance(color, str):
            color = [float(v) for v in color.split(",")]
        r, g, b = (int(round(float(v))) for v in list(color)[:3])
        return (min(max(r, 0), 255), min(max(g, 0), 255), min(max(b, 0), 255))
    except (TypeError, ValueError):
        return (128, 128, 128)


class ClassRasterWriter:
    """A tiled, compressed single-band GeoTIFF of class values written in whole rows of tiles.

    Rows arrive top to bottom in strips of any height; they are buffered until a full row of
    tiles can be written (so each tile is compressed once), on a background thread so that
    compression overlaps the model. Memory: about two rows of tiles of the output's width.
    """

    def __init__(self, path: Path, width: int, height: int, crs, transform, classes: list[dict]):
        import rasterio

        values = [int(c["Value"]) for c in classes]
        self.dtype = "uint8" if max(values, default=0) <= 255 else "uint16"
        self.path, self.width, self.height = path, width, height
        tiled = width >= BLOCK and height >= BLOCK
        profile = dict(
            driver="GTiff", width=width, height=height, count=1, dtype=self.dtype, crs=crs,
            transform=transform, nodata=0, compress="deflate", predictor=2, BIGTIFF="IF_SAFER",
            tiled=tiled, **({"blockxsize": BLOCK, "blockysize": BLOCK} if tiled else {}),
        )  # fmt: skip
        self.dst = rasterio.open(path, "w", **profile)
        self.dst.write_colormap(1, self._colormap(classes))
        self.dst.update_tags(1, CLASS_NAMES=",".join(f"{c['Value']}:{c['Name']}" for c in classes))
        self.classes = classes
        self._buf: list[np.ndarray] = []
        self._buffered = 0
        self._row = 0
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="dls-writer")
        self._pending: Future | None = None
        self._lock = threading.Lock()

    @staticmethod
    def _colormap(classes: list[dict]) -> dict:
        cmap = {0: (0, 0, 0, 0)}
        for c in classes:
            cmap[int(c["Value"])] = (*rgb(c.get("Color")), 255)
        return cmap

    def add(self, rows: np.ndarray) -> None:
        """The next `rows` (h, width) of the output."""
        self._buf.append(np.array(rows, dtype=self.dtype, copy=True))  # the caller reuses it
        self._buffered += rows.shape[0]
        while self._buffered >= BLOCK:
            self._emit(BLOCK)

    def _emit(self, n: int) -> None:
        data = np.concatenate(self._buf) if len(self._buf) > 1 else self._buf[0]
        head, rest = data[:n], data[n:]
        self._buf = [rest] if rest.shape[0] else []
        self._buffered = rest.shape[0]
        self._submit(head, self._row)
        self._row += n

    def _submit(self, data: np.ndarray, row: int) -> None:
        from rasterio.windows import Window

        if self._pending is not None:
            self._pending.result()  # at most one write in flight: memory stays bounded
        window = Window(0, row, self.width, data.shape[0])
        self._pending = self._pool.submit(self.dst.write, data, 1, window=window)

    def close(self) -> None:
        """Write what is buffered and close the file; then write the class names beside it."""
        try:
            if self._buffered:
                self._emit(self._buffered)
            if self._pending is not None:
                self._pending.result()
            if self._row != self.height:
                raise RuntimeError(f"wrote {self._row} of {self.height} rows")
        finally:
            self._pool.shutdown(wait=True)
            self.dst.close()
        self._write_category_names()

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._pool.shutdown(wait=True, cancel_futures=True)
        with contextlib.suppress(Exception):
            self.dst.close()

    def _write_category_names(self) -> None:
        """GDAL's category names (QGIS and GDAL show them) in the .aux.xml beside the file."""
        top = max(int(c["Value"]) for c in self.classes)
        names = [""] * (top + 1)
        names[0] = "No class"
        for c in self.classes:
            names[int(c["Value"])] = str(c["Name"])
        cats = "".join(f"<Category>{escape(n)}</Category>" for n in names)
        xml = (
            '<PAMDataset><PAMRasterBand band="1"><CategoryNames>'
            f"{cats}</CategoryNames></PAMRasterBand></PAMDataset>\n"
        )
        Path(str(self.path) + ".aux.xml").write_text(xml, encoding="utf-8")
