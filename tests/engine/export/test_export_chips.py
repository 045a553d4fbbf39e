"""The export's fast paths give what the plain ones gave: GeoTIFF chips from a GDAL-made
template, band statistics in exact integers, samples parsed in bulk."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from engine_helpers import REPO, _env
from export_support import DATA, GT, point, rect, write_json
from osgeo import gdal, osr

from dlstudio_qgis.engine.export.stats import ExactSums, band_sums, combine, merge_moments

PROBE = Path(__file__).with_name("export_probe.py")
ALBERS = DATA / "landsat_albers" / "image.tif"


def probe(what: str, spec: dict, tmp_path: Path) -> dict:
    path = write_json(tmp_path / f"{what}_spec.json", spec)
    proc = subprocess.run(
        [sys.executable, str(PROBE), what, str(path)],
        capture_output=True, text=True, timeout=300, cwd=REPO, env=_env(),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def wkt(epsg: int) -> str:
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    return srs.ExportToWkt()


def custom_albers() -> str:
    """An Albers CRS without an EPSG code (the shared Landsat image's, or one like it)."""
    if ALBERS.exists():
        return gdal.Open(str(ALBERS)).GetProjection()
    srs = osr.SpatialReference()
    srs.SetWellKnownGeogCS("WGS84")
    srs.SetACEA(29.5, 45.5, 23.0, -96.0, 0.0, 0.0)
    return srs.ExportToWkt()


def rotated(gt, degrees: float) -> list[float]:
    """An affine (a, b, c, d, e, f) rotated by `degrees` about the origin."""
    r = np.radians(degrees)
    c, s = np.cos(r), np.sin(r)
    a, b = gt[1] * c, -gt[1] * s
    d, e = gt[5] * -s, gt[5] * c
    return [a, b, gt[0] + 12.25, d, e, gt[3] - 7.5]


CASES = [  # (name, dtype, (bands, rows, cols), crs, nodata, transform, rgb)
    ("rgb", "uint8", (3, 128, 96), wkt(32611), None, [0.5, 0, 500123.5, 0, -0.5, 4000321.0], True),
    ("rgb rotated", "uint8", (3, 64, 64), wkt(32611), None, rotated(GT, 30), True),
    ("albers int16 nodata", "int16", (3, 128, 128), custom_albers(), -9999.0,
     [30.0, 0, -673425.0, 0, -30.0, 2130165.0], False),
    ("albers rotated 90", "int16", (3, 32, 48), custom_albers(), -9999.0,
     [0.0, 30.0, -673425.0, 30.0, 0.0, 2130165.0], False),
    ("geographic uint16", "uint16", (1, 50, 70), wkt(4326), None,
     [1e-4, 0, -115.2, 0, -1e-4, 36.1], False),
    ("float32 nodata", "float32", (2, 40, 40), wkt(3857), -9999.0,
     [10.0, 0, -1e6, 0, -10.0, 4e6], False),
    ("four bands nodata 0", "uint8", (4, 64, 64), wkt(32611), 0.0,
     [0.3, 0, 666000.0, 0, -0.3, 4005000.0], True),
]  # fmt: skip


def test_template_chips_are_the_bytes_gdal_writes(tmp_path):
    cases = [{"dtype": d, "shape": s, "crs": c, "nodata": n, "transform": t, "rgb": r}
             for _, d, s, c, n, t, r in CASES]  # fmt: skip
    result = probe("chips", {"folder": str(tmp_path), "cases": cases}, tmp_path)
    for i, (name, dtype, shape, _, nodata, transform, _) in enumerate(CASES):
        case = result["cases"][i]
        assert case["template"], name  # written from the template, not by GDAL
        gdal_tif, tmpl_tif = tmp_path / f"gdal_{i}.tif", tmp_path / f"tmpl_{i}.tif"
        assert tmpl_tif.read_bytes() == gdal_tif.read_bytes(), name
        # and read back alike, by rasterio and by the GDAL QGIS uses
        for read in case["read"].values():
            assert read["crs_equal"] and read["same_pixels"], name
            assert read["transform"] == pytest.approx(transform, abs=1e-9), name
            assert read["nodata"] == nodata and read["dtype"] == dtype, name
        a, b = gdal.Open(str(gdal_tif)), gdal.Open(str(tmpl_tif))
        assert b.GetGeoTransform() == a.GetGeoTransform(), name
        assert b.GetSpatialRef().IsSame(a.GetSpatialRef()), name
        assert b.GetRasterBand(1).GetNoDataValue() == nodata, name
        assert (b.RasterCount, b.RasterYSize, b.RasterXSize) == tuple(shape), name
        np.testing.assert_array_equal(b.ReadAsArray(), a.ReadAsArray())


# --- band statistics -------------------------------------------------------------------------


def reference(data, valid=None, nodata=None):
    """(count, mean, M2, min, max) per band with numpy, float64."""
    rows = []
    for b in range(data.shape[0]):
        x = data[b].astype(np.float64)
        keep = np.ones(x.shape, bool) if valid is None else valid.copy()
        if nodata is not None:
            keep &= data[b] != nodata
        x = x[keep]
        rows.append((x.size, x.mean(), ((x - x.mean()) ** 2).sum(), x.min(), x.max()))
    return np.array(rows)


@pytest.mark.parametrize("dtype", ["uint8", "int8", "uint16", "int16"])
@pytest.mark.parametrize("layout", ["interleaved", "banded", "masked", "nodata"])
def test_band_sums_are_exact(dtype, layout):
    rng = np.random.default_rng(7)
    info = np.iinfo(dtype)
    pixels = rng.integers(info.min, info.max, size=(70, 90, 3), endpoint=True).astype(dtype)
    data = pixels.transpose(2, 0, 1)  # a view of pixel-interleaved pixels, as read
    if layout == "banded":
        data = np.ascontiguousarray(data)
    valid = nodata = None
    if layout == "masked":
        valid = np.zeros((70, 90), bool)
        valid[10:50, 5:80] = True
    if layout == "nodata":
        nodata = int(data[0, 0, 0])
    sums = ExactSums(3)
    sums.add(*band_sums(data, valid, nodata))
    want = reference(data, valid, nodata)
    got = sums.moments()
    np.testing.assert_array_equal(got[:, [0, 3, 4]], want[:, [0, 3, 4]])
    np.testing.assert_allclose(got[:, 1:3], want[:, 1:3], rtol=1e-12)


def test_exact_sums_merge_to_the_same_bits_in_any_order():
    rng = np.random.default_rng(3)
    chips = [rng.integers(0, 256, size=(3, 32, 32), dtype=np.uint8) for _ in range(12)]
    parts = []
    for chip in chips:
        part = ExactSums(3)
        part.add(*band_sums(chip, None, None))
        parts.append(part)
    forward = combine(parts)
    backward = combine(parts[::-1])
    assert forward.tobytes() == backward.tobytes()
    np.testing.assert_allclose(forward, reference(np.concatenate(chips, axis=1)), rtol=1e-12)
    # a band without any valid pixel keeps the neutral row, as merge_moments expects
    empty = ExactSums(3)
    empty.add(*band_sums(chips[0], np.zeros((32, 32), bool), None))
    assert empty.moments()[:, 0].tolist() == [0, 0, 0]
    np.testing.assert_array_equal(merge_moments(empty.moments(), forward), forward)


# --- samples -----------------------------------------------------------------------------------


def test_samples_parsed_in_bulk_are_those_parsed_one_by_one(tmp_path, rasters):
    hole = rect(100, 100, 160, 160, 2)
    inner = rect(120, 120, 140, 140)["geometry"]["coordinates"][0]
    hole["geometry"]["coordinates"].append(inner[::-1])
    multi = rect(10, 10, 20, 20)
    multi["geometry"] = {"type": "MultiPolygon", "coordinates": [
        rect(10, 10, 20, 20)["geometry"]["coordinates"], rect(30, 10, 40, 20)["geometry"][
            "coordinates"]]}  # fmt: skip
    bowtie = rect(50, 50, 70, 70)
    (x0, y1), (x1, y0) = (
        (GT[0] + 50 * GT[1], GT[3] + 50 * GT[5]),
        (GT[0] + 70 * GT[1], GT[3] + 70 * GT[5]),
    )
    bowtie["geometry"]["coordinates"] = [[[x0, y0], [x1, y1], [x1, y0], [x0, y1], [x0, y0]]]
    unclosed = rect(200, 20, 220, 40, 2)
    unclosed["geometry"]["coordinates"][0].pop()
    in_3d = rect(230, 20, 240, 40)
    in_3d["geometry"]["coordinates"][0] = [[x, y, 5.0] for x, y in
                                           in_3d["geometry"]["coordinates"][0]]  # fmt: skip
    flat = rect(10, 200, 10, 220)  # no area
    features = [
        rect(0, 0, 30, 30, fid=7), hole, multi, bowtie, unclosed, in_3d, flat,
        {"type": "Feature", "properties": {"class_value": 1}, "geometry": None},
        point(150, 30, cls=2), rect(250, 200, 290, 250, 2), {**rect(5, 5, 9, 9), "id": "x"},
    ]  # fmt: skip
    samples = write_json(tmp_path / "s.geojson", {"type": "FeatureCollection",
                                                  "features": features})  # fmt: skip
    job = {"raster": str(rasters["rgb"][0]), "samples": str(samples),
           "classes": [{"value": 1, "name": "a"}, {"value": 2, "name": "b"}],
           "output": str(tmp_path / "out"), "buffer_radius": 2.0}  # fmt: skip
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32611)
    info = {"path": job["raster"], "width": 300, "height": 260, "count": 3, "bands": [1, 2, 3],
            "dtype": "uint8", "nodata": None, "crs_wkt": srs.ExportToWkt(),
            "crs_name": "EPSG:32611", "transform": [GT[1], 0, GT[0], 0, GT[5], GT[3]],
            "band_names": ["r", "g", "b"]}  # fmt: skip
    result = probe("samples", {"job": job, "info": info}, tmp_path)
    assert result["bulk"] == result["one_by_one"]
    assert len(result["bulk"]["classes"]) == 9  # less the null and the flat one
    assert "2 invalid polygons were repaired" in result["bulk"]["log"]  # bowtie, flat
    assert "1 sample have no geometry" in result["bulk"]["log"]
    assert "1 sample are empty or have no area" in result["bulk"]["log"]


# --- the fast tile reader (engine/tiffread.py) ---------------------------------------------


def tiled_raster(path: Path, dtype: str, interleave: str, nodata, bands=3) -> Path:
    """A 700 x 600 GeoTIFF tiled 256 x 256 (partial edge tiles), DEFLATE, predictor 2."""
    rng = np.random.default_rng(11)
    hi = 255 if dtype == "uint8" else 4000
    data = rng.integers(0, hi, (bands, 600, 700)).astype(dtype)
    data += np.add.outer(np.arange(600), np.arange(700)).astype(dtype) % 50
    if nodata is not None:
        data[:, :70, :90] = nodata
    options = ["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "COMPRESS=DEFLATE", "PREDICTOR=2",
               f"INTERLEAVE={interleave}"]  # fmt: skip
    gdt = {"uint8": gdal.GDT_Byte, "int16": gdal.GDT_Int16}[dtype]
    ds = gdal.GetDriverByName("GTiff").Create(str(path), 700, 600, bands, gdt, options)
    ds.SetGeoTransform(GT)
    ds.SetProjection(wkt(32611))
    for b in range(bands):
        if nodata is not None:
            ds.GetRasterBand(b + 1).SetNoDataValue(nodata)
        ds.GetRasterBand(b + 1).WriteArray(data[b])
    ds = None
    return path


def folder_bytes(folder: Path) -> dict[str, bytes]:
    """Every file of an export: the metadata less its time and with the output path as "OUT"."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            data = p.read_bytes()
            if p.suffix in (".emd", ".txt", ".json") and p.name != "map.txt":
                lines = data.replace(str(folder).encode(), b"OUT").splitlines()
                skip = (b"ExportedAt", b"Seconds")
                data = b"\n".join(ln for ln in lines if not any(k in ln for k in skip))
            out[str(p.relative_to(folder))] = data
    return out


@pytest.mark.parametrize("dtype,interleave,nodata", [("uint8", "PIXEL", None),
                                                     ("int16", "BAND", -9999)])  # fmt: skip
def test_chips_read_with_libdeflate_are_those_read_with_gdal(tmp_path, monkeypatch, dtype,
                                                            interleave, nodata):  # fmt: skip
    from export_support import export

    raster = tiled_raster(tmp_path / "tiled.tif", dtype, interleave, nodata)
    feats = [rect(5, 5, 60, 40), rect(240, 250, 300, 270, 2), rect(650, 560, 699, 599),
             rect(500, 10, 560, 120, 2), rect(100, 400, 180, 470)]  # fmt: skip
    runs = {}
    for flag in ("0", "1"):
        monkeypatch.setenv("DLS_FAST_TIFF", flag)
        ex = export(tmp_path, raster, feats, name=f"fast{flag}", rotation_angle=90,
                    metadata_format="Classified_Tiles",
                    samples_at=tmp_path / "s.geojson")  # fmt: skip
        assert ex.ok, ex.run.stdout + ex.run.stderr
        runs[flag] = ex
    logs = {f: " ".join(m["message"] for m in ex.run.of("log")) for f, ex in runs.items()}
    assert "reading tiles with GDAL (DLS_FAST_TIFF=0)" in logs["0"]
    assert re.search(r"reading tiles with (libdeflate|zlib)\.", logs["1"]), logs["1"]
    slow, fast = folder_bytes(runs["0"].out), folder_bytes(runs["1"].out)
    assert sum(name.startswith("images") for name in fast) >= 20
    assert slow.keys() == fast.keys()
    assert [n for n in slow if slow[n] != fast[n]] == []
