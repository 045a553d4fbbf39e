"""Export geometry: objects cut by chip edges, point buffers, rotation, extent, tiling."""

from __future__ import annotations

import math

import numpy as np
import pytest
from export_support import GT, boxes_of, chip_to_source, export, point, read, rect


def origin(path):
    c, r = chip_to_source(read(path)[1], 0, 0)
    return round(c), round(r)


def labels_by_origin(ex) -> dict:
    return {origin(ex.out / img): boxes_of(ex.out / lab) for img, lab in ex.map_lines()}


# a 40 x 40 object at columns 100-140, rows 10-50: tile 64 (cols 64-192) holds all of it, tile 0
# (cols 0-128) 70 %, tile 128 (cols 128-256) 30 %
CUT = rect(100, 10, 140, 50, 1)


@pytest.mark.parametrize("min_overlap,tiles", [(0.5, [(0, 0), (64, 0)]),
                                               (0.2, [(0, 0), (64, 0), (128, 0)]),
                                               (1.0, [(64, 0)])])  # fmt: skip
def test_objects_cut_by_a_chip_edge_are_kept_by_min_overlap(rasters, tmp_path, min_overlap, tiles):
    ex = export(tmp_path, rasters["rgb"][0], [CUT], min_overlap=min_overlap)
    assert ex.ok, ex.run.stdout
    got = labels_by_origin(ex)
    assert sorted(got) == tiles
    assert ex.result["dropped"] == 3 - len(tiles)
    for ox, oy in tiles:  # clipped to the chip
        assert got[(ox, oy)] == [("1", max(100 - ox, 0), 10, min(140 - ox, 128), 50)]


def test_points_with_a_buffer_become_boxes(rasters, tmp_path):
    # 5 m buffer = 10 pixels around the point at column 50, row 40
    ex = export(tmp_path, rasters["rgb"][0], [point(50, 40, 2)], buffer_radius=5.0)
    assert ex.ok, ex.run.stdout
    assert labels_by_origin(ex) == {(0, 0): [("2", 40, 30, 60, 50)]}


def test_points_with_a_buffer_become_discs_in_masks(rasters, tmp_path):
    ex = export(tmp_path, rasters["rgb"][0], [point(50, 40, 2)], buffer_radius=5.0,
                metadata_format="Classified_Tiles")  # fmt: skip
    assert ex.ok, ex.run.stdout
    (img, lab), *_ = ex.map_lines()
    assert origin(ex.out / img) == (0, 0)
    label = read(ex.out / lab)[0][0]
    rows, cols = np.mgrid[0:128, 0:128]
    dist = np.hypot(cols + 0.5 - 50, rows + 0.5 - 40)
    assert (label[dist < 9.8] == 2).all() and (label[dist > 10] == 0).all()
    assert abs(int((label == 2).sum()) - math.pi * 100) < 12


def test_points_need_no_buffer_for_multilabeled_tiles(rasters, tmp_path):
    ex = export(tmp_path, rasters["rgb"][0], [point(50, 40, 2), point(52, 45, 1)],
                metadata_format="MultiLabeled_Tiles")  # fmt: skip
    assert ex.ok, ex.run.stdout
    got = labels_by_origin(ex)
    assert got == {(0, 0): [("1", 0, 0, 128, 128), ("2", 0, 0, 128, 128)]}


@pytest.fixture(scope="module")
def rot90(rasters, tmp_path_factory):
    folder = tmp_path_factory.mktemp("rot90")
    feats = [rect(10, 20, 40, 50, 1), rect(70, 60, 100, 70, 2)]
    out = {}
    for fmt in ("PASCAL_VOC_rectangles", "Classified_Tiles"):
        out[fmt] = export(folder, rasters["rgb"][0], feats, name=fmt, rotation_angle=90,
                          metadata_format=fmt, min_overlap=1.0, stride=[128, 128])  # fmt: skip
        assert out[fmt].ok, out[fmt].run.stdout
    return out


def test_rotation_adds_chips_rotated_by_multiples_of_the_angle(rot90):
    ex = rot90["PASCAL_VOC_rectangles"]
    lines = ex.map_lines()
    assert ex.result["tiles"] == 1 and ex.result["chips"] == len(lines) == 4  # 0, 90, 180, 270
    chips = [read(ex.out / img) for img, _ in lines]
    for k in range(1, 4):
        np.testing.assert_array_equal(chips[k][0], np.rot90(chips[0][0], k, axes=(1, 2)))


def test_rotated_chips_carry_a_rotated_geotransform(rot90):
    ex = rot90["PASCAL_VOC_rectangles"]
    gt = read(ex.out / ex.map_lines()[1][0])[1]
    assert gt[1] == pytest.approx(0, abs=1e-12) and gt[5] == pytest.approx(0, abs=1e-12)
    assert abs(gt[2]) == abs(gt[4]) == pytest.approx(GT[1])
    # the 90-degree chip's top-left corner is the tile's top-right corner, its top edge the
    # tile's right edge
    assert chip_to_source(gt, 0, 0) == pytest.approx((128, 0))
    assert chip_to_source(gt, 128, 0) == pytest.approx((128, 128))
    assert chip_to_source(gt, 0, 128) == pytest.approx((0, 0))


def test_rotated_labels_follow_the_pixels(rot90):
    ex = rot90["PASCAL_VOC_rectangles"]
    boxes = [boxes_of(ex.out / lab) for _, lab in ex.map_lines()]
    assert sorted(boxes[0]) == [("1", 10, 20, 40, 50), ("2", 70, 60, 100, 70)]
    # content turned 90 degrees: a point (x, y) of chip 0 is at (y, 128 - x) in chip 1
    assert sorted(boxes[1]) == sorted(
        (n, y0, 128 - x1, y1, 128 - x0) for n, x0, y0, x1, y1 in boxes[0])  # fmt: skip
    cl = rot90["Classified_Tiles"]
    labels = [read(cl.out / lab)[0][0] for _, lab in cl.map_lines()]
    for k in range(1, 4):
        np.testing.assert_array_equal(labels[k], np.rot90(labels[0], k))


def bilinear(src, c, r):
    """GDAL's bilinear sample of src (rows, cols) at pixel coordinates (c, r)."""
    x, y = c - 0.5, r - 0.5
    x0, y0 = math.floor(x), math.floor(y)
    fx, fy = x - x0, y - y0
    s = src[y0 : y0 + 2, x0 : x0 + 2].astype(float)
    return (s[0, 0] * (1 - fx) * (1 - fy) + s[0, 1] * fx * (1 - fy) + s[1, 0] * (1 - fx) * fy
            + s[1, 1] * fx * fy)  # fmt: skip


def test_rotation_by_45_degrees_resamples_around_the_tile_centre(rasters, tmp_path):
    _, src = rasters["rgb"]
    ex = export(tmp_path, rasters["rgb"][0], [rect(140, 100, 160, 120, 1)], tile_size=[64, 64],
                stride=[64, 64], rotation_angle=45, min_overlap=1.0)  # fmt: skip
    assert ex.ok, ex.run.stdout
    lines = ex.map_lines()
    assert ex.result["tiles"] == 1 and len(lines) == 8
    data, gt, _, _ = read(ex.out / lines[1][0])
    assert gt[2] != 0 and gt[4] != 0 and math.hypot(gt[1], gt[4]) == pytest.approx(GT[1])
    assert chip_to_source(gt, 32, 32) == pytest.approx((160, 96))  # the tile (128, 64) centre
    # the 20 x 20 object turned 45 degrees: its box is 20 * sqrt(2) wide, centred where the
    # object's centre went
    ((name, x0, y0, x1, y1),) = boxes_of(ex.out / lines[1][1])
    assert name == "1" and x1 - x0 == pytest.approx(20 * math.sqrt(2), abs=0.02)
    assert y1 - y0 == pytest.approx(20 * math.sqrt(2), abs=0.02)
    assert chip_to_source(gt, (x0 + x1) / 2, (y0 + y1) / 2) == pytest.approx((150, 110), abs=0.02)
    # each pixel of the rotated chip is the source resampled (bilinear) under its centre
    for row, col in ((30, 20), (5, 40), (60, 33), (32, 32)):
        c, r = chip_to_source(gt, col + 0.5, row + 0.5)
        for b in range(3):
            assert abs(int(data[b, row, col]) - bilinear(src[b], c, r)) <= 1


@pytest.mark.parametrize("raster,fill", [("rgb", 0), ("f32", -9999.0)])
def test_rotated_chips_at_the_raster_edge_are_padded_and_stats_skip_the_padding(
    rasters, tmp_path, raster, fill
):
    path, src = rasters[raster]
    ex = export(tmp_path, path, [rect(280, 256, 290, 260, 1)], tile_size=[64, 64],
                stride=[64, 64], rotation_angle=45, metadata_format="Classified_Tiles")  # fmt: skip
    assert ex.ok, ex.run.stdout
    lines = ex.map_lines()
    assert origin(ex.out / lines[0][0]) == (236, 196) and len(lines) == 8
    rotated = read(ex.out / lines[1][0])[0]
    assert (rotated[:, -1, -1] == fill).all()  # the corner beyond the raster edge
    inside = np.concatenate([read(ex.out / img)[0][0].ravel() for img, _ in lines])
    valid = int((inside != fill).sum()) if raster == "f32" else None
    row = ex.json("esri_accumulated_stats.json")["BandStats"][0]
    assert row["Count"] < 8 * 64 * 64
    if valid is not None:
        assert row["Count"] == valid
    assert row["Min"] >= 1  # the test rasters hold 1 and up: padding never counts


def test_extent_limits_the_tiles(rasters, tmp_path):
    x0, y1 = GT[0] + 50 * GT[1], GT[3] + 40 * GT[5]
    x1, y0 = GT[0] + 250 * GT[1], GT[3] + 240 * GT[5]
    ex = export(tmp_path, rasters["rgb"][0], [rect(100, 100, 110, 110, 1)],
                extent=[x0, y0, x1, y1], output_nofeature_tiles=True)  # fmt: skip
    assert ex.ok, ex.run.stdout
    origins = sorted({origin(ex.out / img) for img, _ in ex.map_lines()})
    assert origins == sorted((c, r) for c in (50, 114, 122) for r in (40, 104, 112))


def test_labeled_tiles_near_the_edge_stay_inside_the_raster(rasters, tmp_path):
    ex = export(tmp_path, rasters["rgb"][0], [rect(0, 0, 10, 10, 2), rect(290, 250, 300, 260)],
                metadata_format="Labeled_Tiles")  # fmt: skip
    assert ex.ok, ex.run.stdout
    assert labels_by_origin(ex) == {(0, 0): [("2", 0, 0, 10, 10)],
                                    (172, 132): [("1", 118, 118, 128, 128)]}  # fmt: skip


def test_stride_larger_than_a_tile_still_ends_at_the_edge(rasters, tmp_path):
    ex = export(tmp_path, rasters["rgb"][0], [rect(0, 0, 10, 10)], tile_size=[100, 100],
                stride=[150, 150], output_nofeature_tiles=True)  # fmt: skip
    assert ex.ok, ex.run.stdout
    origins = [origin(ex.out / img) for img, _ in ex.map_lines()]
    assert origins == [(0, 0), (150, 0), (200, 0), (0, 150), (150, 150), (200, 150), (0, 160),
                       (150, 160), (200, 160)]  # fmt: skip
