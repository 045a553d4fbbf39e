"""Export: bad input is an InputError naming the fix, and leaves nothing behind."""

from __future__ import annotations

import pytest
from export_support import GT, export, point, rect, same_folder_state

FEATURES = [rect(10, 20, 40, 50, 1), rect(100, 100, 130, 120, 2)]
FAR = 10_000.0  # map units: the samples moved far off the raster


def shifted(feature: dict, dx: float) -> dict:
    ring = [[x + dx, y] for x, y in feature["geometry"]["coordinates"][0]]
    return {**feature, "geometry": {"type": "Polygon", "coordinates": [ring]}}


CASES = {
    "no crs": ("nocrs", FEATURES, {}, ["no coordinate reference system", "Assign"]),
    "no samples": ("rgb", [], {}, ["no samples"]),
    "samples elsewhere": ("rgb", [shifted(f, FAR) for f in FEATURES], {},
                          ["None of the 2 samples touches the raster", "CRS (EPSG:32611)"]),
    "unknown class": ("rgb", [*FEATURES, rect(0, 0, 5, 5, 7)], {},
                      ["class values that are not in the classes: 7", "1 (building), 2 (tree)"]),
    "tile larger than the raster": ("rgb", FEATURES, {"tile_size": [400, 200]},
                                    ["400 x 200", "300 x 260"]),
    "tile larger than the extent": ("rgb", FEATURES, {
        "extent": [GT[0], GT[3] - 50, GT[0] + 50, GT[3]]}, ["128 x 128", "100 x 100", "extent"]),
    "format for another tool": ("rgb", FEATURES, {
        "metadata_format": "Classified_Tiles", "inference_tool": "DETECT_OBJECTS"},
        ["Classified_Tiles", "PASCAL_VOC_rectangles"]),
    "points without buffer": ("rgb", [point(30, 30)], {}, ["BUFFER_RADIUS", "point"]),
    "jpeg of 16-bit data": ("u16", FEATURES, {"image_format": "JPEG"}, ["JPEG", "TIFF"]),
    "png of float data": ("f32", FEATURES, {"image_format": "PNG"}, ["PNG", "TIFF"]),
    "missing band": ("rgb", FEATURES, {"bands": [1, 4]}, ["Band 4", "3 bands"]),
    "class value not an integer": ("rgb", [{**FEATURES[0], "properties": {"class_value": "a"}}],
                                   {}, ["class_value 'a'"]),
    "all objects cut below min_overlap": ("rgb", [rect(100, 10, 160, 50)], {
        "tile_size": [64, 64], "stride": [64, 64], "min_overlap": 0.9}, ["MIN_OVERLAP"]),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_refused_and_leaves_no_folder(rasters, tmp_path, case):
    raster, features, params, words = CASES[case]
    ex = export(tmp_path, rasters[raster][0], features, **params)
    assert ex.run.rc == 1, ex.run.stdout
    assert ex.result["type"] == "error" and ex.result["kind"] == "input", ex.result
    for word in words:
        assert word in ex.result["message"], ex.result["message"]
    assert same_folder_state(tmp_path, "out") == []


def test_a_non_empty_output_folder_needs_overwrite(rasters, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    ex = export(tmp_path, rasters["rgb"][0], FEATURES)
    assert ex.run.rc == 1 and ex.result["kind"] == "input"
    assert "not empty" in ex.result["message"] and "OVERWRITE" in ex.result["message"]
    assert (out / "keep.txt").read_text() == "mine"
    assert same_folder_state(tmp_path, "out") == ["out"]

    ex = export(tmp_path, rasters["rgb"][0], FEATURES, overwrite=True)
    assert ex.ok, ex.run.stdout
    assert not (out / "keep.txt").exists() and (out / "map.txt").exists()
    assert same_folder_state(tmp_path, "out") == ["out"]


def test_an_empty_output_folder_is_used(rasters, tmp_path):
    (tmp_path / "out").mkdir()
    ex = export(tmp_path, rasters["rgb"][0], FEATURES)
    assert ex.ok, ex.run.stdout
    assert same_folder_state(tmp_path, "out") == ["out"]


def test_overwrite_never_removes_the_inputs(rasters, tmp_path):
    (tmp_path / "out").mkdir()
    inside = tmp_path / "out" / "samples.geojson"
    ex = export(tmp_path, rasters["rgb"][0], FEATURES, samples_at=inside, overwrite=True)
    assert ex.run.rc == 1 and "holds the input samples" in ex.result["message"]
    assert inside.exists() and same_folder_state(tmp_path, "out") == ["out"]


def test_samples_partly_off_the_raster_are_reported(rasters, tmp_path):
    ex = export(tmp_path, rasters["rgb"][0], [*FEATURES, shifted(FEATURES[0], FAR)])
    assert ex.ok, ex.run.stdout
    warnings = [m["message"] for m in ex.run.of("log") if m["level"] == "warning"]
    assert any("1 of 3 samples do not touch the raster" in w for w in warnings), warnings
