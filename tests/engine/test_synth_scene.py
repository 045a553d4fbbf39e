"""synth-scene: a georeferenced, deterministic scene whose labels match its pixels."""

from __future__ import annotations

import json
from itertools import pairwise

import numpy as np
import pytest
from engine_helpers import probe, run_engine

from dlstudio_qgis.engine.scene import ROOFS, make_layout, render_window


def hex_rgb(h: str) -> np.ndarray:
    return np.array([int(h[i : i + 2], 16) for i in (1, 3, 5)], float)


def test_run_reports_progress_and_a_result(scene):
    run, res = scene["run"], scene["result"]
    assert all(run.messages), run.stdout
    values = [m["value"] for m in run.of("progress")]
    assert values == sorted(values) and values[-1] == 100.0
    assert res["type"] == "result" and res["command"] == "synth-scene"
    assert res["output"] == str(scene["tif"])
    assert (res["width"], res["height"], res["bands"]) == (768, 640, 3)
    assert res["n_buildings"] > 20 and res["n_roads"] >= 3
    assert not list(scene["tif"].parent.glob(".*part*"))


def test_image_is_georeferenced_tiled_and_compressed(scene):
    p, res = scene["probe"], scene["result"]
    assert (p["width"], p["height"], p["count"]) == (768, 640, 3)
    assert p["dtypes"] == ["uint8"] * 3
    assert p["epsg"] == 32611 and p["is_projected"]
    a, b, c, d, e, f = p["transform"]
    assert (a, b, d, e) == (0.3, 0.0, 0.0, -0.3)
    assert (c, f) == (666000.0, 4005000.0)
    assert p["bounds"] == pytest.approx(res["extent"])
    assert p["tiled"] and p["blockxsize"] == 256
    assert p["compress"] == "deflate"
    assert p["overviews"] == [2, 4]
    assert p["colorinterp"] == ["red", "green", "blue"]


def test_vectors_are_in_the_raster_crs(scene):
    p = scene["probe"]
    assert p["buildings_crs"] == p["roads_crs"] == "urn:ogc:def:crs:EPSG::32611"
    fc = json.loads((scene["tif"].parent / "buildings.geojson").read_text())
    assert (
        fc["type"] == "FeatureCollection" and len(fc["features"]) == scene["result"]["n_buildings"]
    )
    ring = fc["features"][0]["geometry"]["coordinates"][0]
    area2 = sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in pairwise(ring))
    assert area2 > 0  # exterior ring counter-clockwise (RFC 7946)


def test_buildings_lie_inside_the_raster_over_roof_pixels(scene):
    rows = scene["probe"]["buildings"]
    assert rows
    for b in rows:
        assert b["class"] == 1 and b["within"], b
        # edges on pixel edges: the polygon covers whole pixels exactly
        assert b["area_px"] == pytest.approx(b["area_geom_px"], abs=1e-6), b
        mean = np.array(b["mean"])
        assert np.abs(mean - hex_rgb(b["roof"])).max() < 6, b
        assert b["std"] < 20, b  # two roof halves (+-14) and a little noise
        assert min(np.abs(hex_rgb(b["roof"]) - np.array(r)).max() for r in ROOFS) <= 10


def test_roads_are_grey_polygons_inside_the_raster(scene):
    roads = scene["probe"]["roads"]
    assert {r["kind"] for r in roads} == {"straight", "diagonal"}
    for r in roads:
        assert r["class"] == 2 and r["within"], r
        med = np.array(r["median"])
        assert np.abs(med - 106).max() < 12 and np.ptp(med) < 8, r


def test_same_seed_same_scene_other_seed_other_scene(scene, tmp_path):
    tif = tmp_path / "again" / "scene.tif"
    run = run_engine("synth-scene", "-o", tif, "--width", 768, "--height", 640, "--seed", 7)
    assert run.rc == 0, run.stderr
    assert probe(tif)["sha256"] == scene["probe"]["sha256"]
    for name in ("buildings.geojson", "roads.geojson"):
        assert (tif.parent / name).read_bytes() == (scene["tif"].parent / name).read_bytes()
    other = tmp_path / "other" / "scene.tif"
    run = run_engine("synth-scene", "-o", other, "--width", 768, "--height", 640, "--seed", 8)
    assert run.rc == 0, run.stderr
    assert probe(other)["sha256"] != scene["probe"]["sha256"]


def test_windows_join_seamlessly():
    """A window's pixels do not depend on how the image is cut into windows."""
    layout = make_layout(300, 200, seed=5)
    whole = render_window(layout, 0, 0, 300, 200, 3, 5)
    left = render_window(layout, 0, 0, 137, 200, 3, 5)
    right_top = render_window(layout, 137, 0, 163, 91, 3, 5)
    right_bottom = render_window(layout, 137, 91, 163, 109, 3, 5)
    assembled = np.concatenate([left, np.concatenate([right_top, right_bottom], axis=1)], axis=2)
    assert np.array_equal(whole, assembled)


def test_four_bands_add_nir(tmp_path):
    tif = tmp_path / "nir.tif"
    run = run_engine("synth-scene", "-o", tif, "--size", 256, "--bands", 4)
    assert run.rc == 0, run.stderr
    p = probe(tif)
    assert p["count"] == 4 and p["colorinterp"][:3] == ["red", "green", "blue"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--crs", "EPSG:4326"], "not projected"),
        (["--crs", "EPSG:999999"], "Unknown CRS"),
        (["--size", "10"], "between"),
        (["--bands", "2"], "between"),
        (["--pixel-size", "-1"], "positive"),
    ],
)
def test_bad_parameters_are_input_errors(tmp_path, args, words):
    run = run_engine("synth-scene", "-o", tmp_path / "x.tif", *args)
    assert run.rc == 1
    assert run.last["kind"] == "input" and words in run.last["message"], run.last
    assert not (tmp_path / "x.tif").exists()


def test_output_must_be_a_tiff(tmp_path):
    run = run_engine("synth-scene", "-o", tmp_path / "x.png")
    assert run.rc == 1 and ".tif" in run.last["message"]
