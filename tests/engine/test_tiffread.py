"""`tiffread.FastTiffReader` reads exactly what rasterio (GDAL) reads, or declines the file.

The GeoTIFFs are written, and read for reference, by rasterio in a subprocess
(tiffread_probe.py: this process never imports rasterio); the reader under test runs here.
Byte-identical reads are compared through SHA-1 digests of (rows, cols, bands) arrays.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from engine_helpers import REPO, _env

from dlstudio_qgis.engine import tiffread
from dlstudio_qgis.engine.tiffread import FastTiffReader, TileError

PROBE = Path(__file__).with_name("tiffread_probe.py")
W, H = 600, 520  # neither 256 nor 512 divides them: the last tile column and row are partial
SELECTIONS = [[1, 2, 3], [3, 1], [2], [2, 3], [1]]  # [1]: only for one-band files


def _windows() -> list[tuple[int, int, int, int]]:
    out = [
        (0, 0, W, H), (0, 0, 1, 1), (W - 1, H - 1, 1, 1), (255, 0, 1, H), (256, 0, 1, H),
        (0, 511, W, 1), (0, 512, W, 1), (0, 0, 256, 256), (256, 256, 256, 256),
        (512, 0, W - 512, 256), (512, 512, W - 512, H - 512), (W - 100, H - 80, 100, 80),
        (255, 255, 2, 2), (511, 511, 2, 2), (250, 260, 300, 200), (1, 1, W - 2, H - 2),
        (W - 1, 0, 1, H), (0, H - 1, W, 1),
    ]  # fmt: skip
    rng = np.random.default_rng(3)
    for _ in range(20):
        w, h = (int(v) for v in rng.integers(1, 320, 2))
        out.append((int(rng.integers(0, W - w + 1)), int(rng.integers(0, H - h + 1)), w, h))
    return out


WINDOWS = _windows()


def _tiled(tile=256, compress="deflate", predictor=1, interleave="pixel", **more) -> dict:
    level = {"zlevel": 1} if compress == "deflate" else {}  # quick to write
    return {"tiled": True, "blockxsize": tile, "blockysize": tile, "compress": compress,
            "predictor": predictor, "interleave": interleave, **level, **more}  # fmt: skip


def _spec(name, dtype="uint8", bands=3, **kw) -> dict:
    return {"name": name, "dtype": dtype, "width": W, "height": H, "bands": bands,
            "profile": _tiled(), **kw}  # fmt: skip


MATRIX = [
    _spec(f"{c}_p{p}_{il}_{dt}_t{t}", dt, profile=_tiled(t, c, p, il))
    for c in ("deflate", "none", "lzw") for p in (1, 2) for il in ("pixel", "band")
    for dt in ("uint8", "uint16", "int16", "float32") for t in (256, 512)
]  # fmt: skip
TILE = (0, 0, 256, 256)
EXTRA = [  # (spec, must the reader decline it)
    (_spec("sparse_nodata", "uint16", nodata=7, profile=_tiled(predictor=2, sparse_ok=True),
           sparse=[TILE, (300, 260, 100, 100)]), False),
    (_spec("sparse_zero", "int16", profile=_tiled(512, interleave="band", sparse_ok=True),
           sparse=[(0, 0, 512, 512)]), False),
    (_spec("sparse_nan", "float32", nodata=float("nan"), profile=_tiled(sparse_ok=True),
           sparse=[(512, 256, 88, 256)]), False),
    (_spec("big_endian_u16", "uint16", profile=_tiled(predictor=2, endianness="BIG")), False),
    (_spec("big_endian_f32", "float32", profile=_tiled(interleave="band", endianness="BIG")),
     False),
    (_spec("uint32", "uint32", profile=_tiled(predictor=2)), False),
    (_spec("int32", "int32", profile=_tiled(512, predictor=2, interleave="band")), False),
    (_spec("one_band", "uint16", bands=1, profile=_tiled(predictor=2)), False),
    (_spec("overviews", overviews=True), False),
    (_spec("whole_tiles", "int16", width=768, height=768, profile=_tiled(interleave="band")),
     False),  # 3 x 3 tiles exactly (the windows lie in its top left part)
    (_spec("nodata_255", nodata=255), False),
    (_spec("internal_mask", mask=True), True),
    (_spec("alpha", bands=4, profile=_tiled(photometric="RGB", alpha="YES")), True),
    (_spec("jpeg", profile=_tiled(compress="jpeg")), True),
    (_spec("float_predictor_3", "float32", profile=_tiled(predictor=3)), True),
    (_spec("strips", profile={"compress": "deflate"}), True),
]  # fmt: skip
FILES = {s["name"]: s for s in MATRIX + [s for s, _ in EXTRA]}
DECLINED = {s["name"] for s, declined in EXTRA if declined}


def must_decline(spec: dict) -> bool:
    """LZW, predictor 2 on floats, and the EXTRA marked so (GDAL writes no predictor on
    uncompressed tiles)."""
    p = spec["profile"]
    float_p2 = p.get("predictor") == 2 and spec["dtype"] == "float32" and p["compress"] != "none"
    return spec["name"] in DECLINED or p["compress"] == "lzw" or float_p2


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("tiffread")
    spec = {"folder": str(folder), "windows": WINDOWS, "selections": SELECTIONS,
            "files": [{**f, "digests": not must_decline(f)} for f in FILES.values()]}  # fmt: skip
    (folder / "spec.json").write_text(json.dumps(spec))
    argv = [sys.executable, str(PROBE), str(folder / "spec.json")]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=REPO, env=_env())
    assert proc.returncode == 0, proc.stderr
    return folder, json.loads(proc.stdout)


def digest(arr: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(arr).tobytes()).hexdigest()


def check_reads(reader: FastTiffReader, sel, digests: dict, name: str, windows=None) -> None:
    for i, window in windows or enumerate(WINDOWS):
        c, r, w, h = window
        out = reader.read(window, np.empty((h, w, len(sel)), reader.dtype))
        key = f"{i}:{','.join(map(str, sel))}"
        assert digest(out) == digests[key], f"{name} bands {sel} window {window}"


@pytest.mark.parametrize("name", sorted(FILES))
def test_reads_what_rasterio_reads_or_declines(files, name):
    folder, ref = files
    spec, path = FILES[name], folder / f"{name}.tif"
    selections = [s for s in SELECTIONS if max(s) <= spec["bands"]]
    selections = selections[:-1] if spec["bands"] > 1 else selections
    if must_decline(spec):
        assert all(FastTiffReader.open(path, s) is None for s in selections), name
        if spec.get("mask"):  # GDAL does see the mask: the case means what it says
            assert ref[name]["masked"]
        return
    for sel in selections:
        reader = FastTiffReader.open(path, sel)
        assert reader is not None, FastTiffReader.probe(path, sel)[1]
        assert reader.dtype == np.dtype(spec["dtype"]) and reader.bands == tuple(sel)
        check_reads(reader, sel, ref[name]["digests"], name)
        reader.close()
    if spec.get("sparse"):  # tiles were left out, as the case intends
        reader = FastTiffReader.open(path, [1])
        assert not (reader.offsets.all() and reader.counts.all())
    # into a view of a larger buffer, as read_window does for windows that overhang the raster
    reader = FastTiffReader.open(path, selections[0])
    for window in WINDOWS[:8]:
        c, r, w, h = window
        buf = np.zeros((h + 3, w + 5, len(selections[0])), reader.dtype)
        reader.read(window, buf[1 : h + 1, 2 : w + 2])
        whole = reader.read(window, np.empty((h, w, len(selections[0])), reader.dtype))
        assert np.array_equal(buf[1 : h + 1, 2 : w + 2], whole, equal_nan=True)
        assert not buf[0].any() and not buf[h + 1 :].any()
        assert not buf[:, :2].any() and not buf[:, w + 2 :].any()


def test_the_matrix_is_read_fast_where_it_should(files):
    folder, _ = files
    fast = {n for n in FILES if FastTiffReader.open(folder / f"{n}.tif", [1]) is not None}
    assert fast == {n for n, s in FILES.items() if not must_decline(s)}
    assert len(fast) >= 50


def test_cache_stays_within_its_byte_budget(files, monkeypatch):
    folder, ref = files
    name = "deflate_p2_pixel_uint16_t256"
    tile_bytes = 256 * 256 * 3 * 2
    reads = []
    real_pread = tiffread.os.pread
    monkeypatch.setattr(tiffread.os, "pread", lambda *a: reads.append(a) or real_pread(*a))
    for budget in (0, tile_bytes - 1, int(2.5 * tile_bytes), 64 * 2**20):
        reader = FastTiffReader.open(folder / f"{name}.tif", [1, 2, 3], cache_bytes=budget)
        for i, window in enumerate(WINDOWS):
            check_reads(reader, [1, 2, 3], ref[name]["digests"], name, [(i, window)])
            assert reader.cached_bytes <= budget
            assert reader.cached_bytes == sum(t.nbytes for t in reader._cache.values())
        assert (len(reader._cache) > 0) == (budget >= tile_bytes)
        reader = FastTiffReader.open(folder / f"{name}.tif", [1, 2, 3], cache_bytes=budget)
        reads.clear()
        reader.read((0, 0, W, H), np.empty((H, W, 3), reader.dtype))
        reader.read((0, 0, W, H), np.empty((H, W, 3), reader.dtype))
        if budget >= 64 * 2**20:  # the 9 tiles once: the second read is all from the cache
            assert len(reads) == 9
        elif budget < tile_bytes:
            assert len(reads) == 18


def test_zlib_when_libdeflate_cannot_be_loaded(files, monkeypatch):
    folder, ref = files
    name = "deflate_p2_band_int16_t512"
    monkeypatch.setattr(tiffread, "_load_libdeflate", lambda: None)
    tiffread._process.clear()
    try:
        reader = FastTiffReader.open(folder / f"{name}.tif", [1, 2, 3])
        assert reader.decoder_name == "zlib"
        check_reads(reader, [1, 2, 3], ref[name]["digests"], name)
    finally:
        tiffread._process.clear()


def test_libdeflate_is_used_where_installed(files):
    if tiffread._load_libdeflate() is None:
        pytest.skip("no libdeflate on this system")
    reader = FastTiffReader.open(files[0] / "deflate_p1_pixel_uint8_t256.tif", [1, 2, 3])
    assert reader.decoder_name == "libdeflate"
    none = FastTiffReader.open(files[0] / "none_p1_pixel_uint8_t256.tif", [1, 2, 3])
    assert none.decoder_name == "none"


def test_off_by_the_environment(files, monkeypatch):
    monkeypatch.setenv("DLS_FAST_TIFF", "0")
    path = files[0] / "deflate_p1_pixel_uint8_t256.tif"
    assert FastTiffReader.probe(path, [1]) == (None, "DLS_FAST_TIFF=0")
    monkeypatch.setenv("DLS_FAST_TIFF", "1")
    assert FastTiffReader.open(path, [1]) is not None


def test_bad_windows_and_damaged_tiles(files, tmp_path):
    folder, _ = files
    reader = FastTiffReader.open(folder / "deflate_p1_pixel_uint8_t256.tif", [1])
    for window in ((-1, 0, 5, 5), (0, 0, W + 1, 5), (W - 4, H - 4, 5, 4), (0, 0, 0, 3)):
        with pytest.raises(ValueError):
            reader.read(window, np.empty((max(window[3], 1), max(window[2], 1), 1), np.uint8))
    with pytest.raises(ValueError):  # out of the wrong shape
        reader.read((0, 0, 4, 4), np.empty((4, 5, 1), np.uint8))
    damaged = tmp_path / "damaged.tif"
    shutil.copy(folder / "deflate_p1_pixel_uint8_t256.tif", damaged)
    reader = FastTiffReader.open(damaged, [1])
    with open(damaged, "r+b") as fh:  # garbage in the middle of tile 4's stream
        fh.seek(int(reader.offsets[4]) + 40)
        fh.write(b"\xff" * 400)
    reader.read((0, 0, 10, 10), np.empty((10, 10, 1), np.uint8))  # tile 0 is fine
    with pytest.raises(TileError):
        reader.read((256, 256, 10, 10), np.empty((10, 10, 1), np.uint8))


FORK_CHECK = """
import json, multiprocessing, os, sys
import numpy as np
from dlstudio_qgis.engine import tiffread
from dlstudio_qgis.engine.tiffread import FastTiffReader
reader = FastTiffReader.open(sys.argv[1], [1, 2, 3])
def read(window):
    c, r, w, h = window
    return reader.read(window, np.empty((h, w, 3), reader.dtype))
parent = read((100, 100, 300, 300))
def child():
    a, b = read((100, 100, 300, 300)), read((0, 0, 600, 520))
    return a.tobytes(), b.tobytes(), reader._pid, list(tiffread._process), os.getpid()
with multiprocessing.get_context("fork").Pool(1) as pool:
    a, b, fd_pid, dec_pids, pid = pool.apply(child)
print(json.dumps({"same": a == parent.tobytes(), "whole": b == read((0, 0, 600, 520)).tobytes(),
                  "own_fd": fd_pid == pid != os.getpid(), "own_decompressor": dec_pids == [pid]}))
"""


def test_a_forked_process_reads_with_its_own_file_and_decompressor(files):
    path = files[0] / "deflate_p2_pixel_uint16_t256.tif"
    proc = subprocess.run([sys.executable, "-c", FORK_CHECK, str(path)], capture_output=True,
                          text=True, timeout=120, cwd=REPO, env=_env())  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"same": True, "whole": True, "own_fd": True,
                                       "own_decompressor": True}  # fmt: skip


def test_sparse_tiles_with_an_aux_xml_are_left_to_gdal(files, tmp_path):
    """GDAL may take the nodata that fills missing tiles from a .aux.xml: not guessed here."""
    for name, sparse in (("sparse_nodata", True), ("deflate_p1_pixel_uint8_t256", False)):
        shutil.copy(files[0] / f"{name}.tif", tmp_path / f"{name}.tif")
        (tmp_path / f"{name}.tif.aux.xml").write_text("<PAMDataset/>")
        reader, why = FastTiffReader.probe(tmp_path / f"{name}.tif", [1])
        assert (reader is None) == sparse, why
