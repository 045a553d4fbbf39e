"""Writes the GeoTIFFs of test_tiffread.py with rasterio, and digests rasterio's reads.

    python tiffread_probe.py spec.json     # -> <folder>/<name>.tif per file; JSON on stdout

The spec: {"folder", "windows": [[col, row, w, h], ...], "selections": [[1, 2, 3], [3, 1],
...], "files": [{"name", "dtype", "width", "height", "bands", "profile": {creation options},
"nodata", "sparse": [windows written, the rest never], "mask": bool, "overviews": bool}]}.
Prints JSON: per file, the SHA-1 of the bytes of rasterio's read of each window and band
selection (as (rows, cols, bands), C order, native byte order: comparing them is comparing
the arrays, NaN bits included; a band selection is sliced from the read of all bands;
none for a file with "digests": false), and whether GDAL sees a mask. Only digests travel: the
matrix is a hundred files. Run in a subprocess: the pytest process never imports rasterio
(it may import qgis).
"""

from __future__ import annotations

import hashlib
import json
import sys
import zlib
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window


def pixels(rng, dtype: str, bands: int, height: int, width: int) -> np.ndarray:
    """Smooth ramps plus full-range noise: predictor 2 sums wrap around, DEFLATE compresses."""
    dt = np.dtype(dtype)
    if dt.kind == "f":
        data = rng.normal(0, 1000, (bands, height, width)).astype(dt)
        data[:, ::7, ::5] = np.nan
        return data
    info = np.iinfo(dt)
    ramp = np.add.outer(np.arange(height), np.arange(width)) * 3 % (int(info.max) + 1)
    data = np.broadcast_to(ramp, (bands, height, width)).astype(np.int64) + info.min
    noise = rng.integers(info.min, int(info.max) + 1, (bands, height, width), dtype=np.int64)
    data = np.where(rng.random((bands, height, width)) < 0.3, noise, data)
    return data.astype(dt)


def write(spec: dict, folder: Path, windows, selections) -> dict:
    rng = np.random.default_rng(zlib.crc32(spec["name"].encode()))
    path = folder / f"{spec['name']}.tif"
    b, h, w = spec["bands"], spec["height"], spec["width"]
    profile = {
        "driver": "GTiff", "width": w, "height": h, "count": b, "dtype": spec["dtype"],
        "crs": "EPSG:32611", "transform": from_origin(500000, 4000000, 0.5, 0.5),
        **spec["profile"],
    }  # fmt: skip
    if spec.get("nodata") is not None:
        profile["nodata"] = spec["nodata"]
    data = pixels(rng, spec["dtype"], b, h, w)
    env = {"GDAL_TIFF_INTERNAL_MASK": True} if spec.get("mask") else {}
    with rasterio.Env(**env), rasterio.open(path, "w", **profile) as dst:
        if spec.get("sparse") is not None:
            for c, r, ww, hh in spec["sparse"]:
                dst.write(data[:, r : r + hh, c : c + ww], window=Window(c, r, ww, hh))
        else:
            dst.write(data)
        if spec.get("mask"):
            mask = np.full((h, w), 255, np.uint8)
            mask[: h // 3, : w // 4] = 0
            dst.write_mask(mask)
    if spec.get("overviews"):
        with rasterio.open(path, "r+") as dst:
            dst.build_overviews([2, 4])
    digests = {}
    with rasterio.open(path) as src:
        for i, (c, r, ww, hh) in enumerate(windows if spec.get("digests", True) else []):
            arr = src.read(window=Window(c, r, ww, hh)).transpose(1, 2, 0)
            for sel in selections:
                if max(sel) <= b:
                    part = np.ascontiguousarray(arr[..., [k - 1 for k in sel]])
                    key = f"{i}:{','.join(map(str, sel))}"
                    digests[key] = hashlib.sha1(part.tobytes()).hexdigest()
        flags = src.mask_flag_enums[0]
    return {"digests": digests, "masked": flags != [rasterio.enums.MaskFlags.all_valid]}


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    folder = Path(spec["folder"])
    out = {f["name"]: write(f, folder, spec["windows"], spec["selections"]) for f in spec["files"]}
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
