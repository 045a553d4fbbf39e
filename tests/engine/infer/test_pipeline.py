"""The inference pipeline, checked exactly: real reader, tiling, writer and suppression, run
with models whose answers are known (see pipeline_probe.py), in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from engine_helpers import REPO, _env

PROBE = Path(__file__).with_name("pipeline_probe.py")


def probe(case: str, folder: Path, **args) -> dict:
    proc = subprocess.run(
        [sys.executable, str(PROBE), case, str(folder), json.dumps(args)],
        capture_output=True, text=True, timeout=300, cwd=REPO, env=_env(),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.mark.parametrize(("padding", "reader_thread"), [(0, False), (8, False), (20, False),
                                                        (8, True)])  # fmt: skip
def test_classified_raster_is_seamless_and_exact(tmp_path, padding, reader_thread):
    """Each pixel's class depends on that pixel only, so any seam, shifted chip or lost row
    would show up as a mismatch against the whole-raster answer. With `reader_thread`, chips
    are read ahead in a thread, as on a GPU."""
    out = probe("pixels", tmp_path, extent=None, padding=padding, reader_thread=reader_thread)
    info = out["info"]
    assert info["mismatches"] == 0
    assert info["shape"] == [190, 200] and info["offset"] == [0, 0]
    assert info["values"] == [0, 3, 7]  # class values, not model indexes; nodata -> 0
    assert info["dtype"] == "uint8" and info["nodata"] == 0 and info["crs"] == 32633
    assert info["compress"].lower() == "deflate"
    assert info["colormap"]["3"] == [255, 0, 0, 255] and info["colormap"]["7"] == [0, 255, 0, 255]
    assert "<Category>red</Category>" in info["aux"] and "<Category>green</Category>" in info["aux"]
    counts = out["result"]["pixel_counts"]
    assert sum(counts.values()) == 190 * 200
    assert out["partials"] == []


def test_extent_limits_and_georeferences_the_output(tmp_path):
    # columns 20..130, rows 30..110 of the 0.5 m raster whose origin is (500000, 4100000)
    extent = [500010.0, 4099945.0, 500065.0, 4099985.0]
    out = probe("pixels", tmp_path, extent=extent, padding=8)
    info = out["info"]
    assert info["offset"] == [20, 30]
    assert info["shape"] == [80, 110]
    assert info["mismatches"] == 0


@pytest.mark.parametrize("reader_thread", [False, True])
def test_objects_on_chip_borders_come_out_once_where_they_are(tmp_path, reader_thread):
    """Squares straddling the 48-px cores' borders (chips of 64, padding 8) are detected by two
    or four chips; each must come out once, with its exact map coordinates and class (chips
    read in turn, as on the CPU, or ahead in a thread, as on a GPU)."""
    out = probe("objects", tmp_path, exclude_pad=True, run_nms=False, reader_thread=reader_thread)
    key = lambda d: (d["bounds"], d["class_value"])  # noqa: E731
    assert sorted(map(key, out["got"])) == sorted(map(key, out["expected"]))
    assert {g["class_name"] for g in out["got"]} == {"red", "green"}
    assert all(g["confidence"] == pytest.approx(0.9) for g in out["got"])
    assert out["result"]["detections"] == len(out["expected"]) == 8


def test_without_pad_exclusion_suppression_keeps_every_object(tmp_path):
    """Keeping detections in the padding, the class-aware suppression removes the duplicates
    of whole objects; every object is still there exactly (partial views may remain)."""
    out = probe("objects", tmp_path, exclude_pad=False, run_nms=False)
    got = {(tuple(g["bounds"]), g["class_value"]) for g in out["got"]}
    for e in out["expected"]:
        assert (tuple(e["bounds"]), e["class_value"]) in got
    whole = [g for g in out["got"] if (tuple(g["bounds"]), g["class_value"]) in
             {(tuple(e["bounds"]), e["class_value"]) for e in out["expected"]}]  # fmt: skip
    assert len(whole) == len(out["expected"])  # no whole object twice
