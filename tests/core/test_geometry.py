import struct

import pytest

from dlstudio_qgis.core import GeometryError, point, polygon, rectangle
from dlstudio_qgis.core.geometry import (
    clip_to_rect,
    from_gpkg,
    from_wkb,
    to_gpkg,
    to_wkb,
    validate,
)


def test_polygon_area_and_centroid_subtract_holes():
    p = polygon([(0, 0), (10, 0), (10, 10), (0, 10)], [[(2, 2), (4, 2), (4, 4), (2, 4)]])
    assert p.area() == 96
    cx, cy = p.centroid()
    assert cx == pytest.approx((100 * 5 - 4 * 3) / 96)
    assert cy == pytest.approx((100 * 5 - 4 * 3) / 96)


def test_centroid_keeps_precision_far_from_origin():
    r = rectangle(600000.0, 4000000.0, 600000.5, 4000000.5)
    assert r.centroid() == pytest.approx((600000.25, 4000000.25), abs=1e-9)


def test_containment_is_closed_and_holes_are_excluded():
    p = polygon([(0, 0), (10, 0), (10, 10), (0, 10)], [[(2, 2), (4, 2), (4, 4), (2, 4)]])
    assert p.contains_point(5, 5)
    assert p.contains_point(10, 5)  # on the boundary
    assert p.contains_point(0, 0)  # a vertex
    assert not p.contains_point(3, 3)  # in the hole
    assert p.contains_point(2, 3)  # on the hole's boundary
    assert not p.contains_point(11, 5)


def test_validate_reports_self_intersection_and_degenerate_rings():
    bowtie = polygon([(0, 0), (10, 10), (10, 0), (0, 10)])
    assert validate(bowtie)
    crossing = polygon([(0, 0), (10, 0), (10, 10), (5, -5), (0, 10)])
    assert any("crosses itself" in p for p in validate(crossing))
    assert any("fewer than 3" in p for p in validate(polygon([(0, 0), (1, 1), (0, 0)])))
    assert validate(point(float("nan"), 0))
    assert validate(rectangle(0, 0, 1, 1)) == []


def test_rectangle_detection():
    assert rectangle(0, 0, 2, 1).is_rectangle()
    assert not polygon([(0, 0), (2, 0), (1, 1)]).is_rectangle()
    assert not polygon([(0, 0), (2, 1), (2, 3), (0, 2)]).is_rectangle()


@pytest.mark.parametrize(
    "geom",
    [point(1.5, -2.25), rectangle(0, 0, 3, 4),
     polygon([(0, 0), (9, 0), (9, 9), (0, 9)], [[(1, 1), (2, 1), (2, 2)]])],
)  # fmt: skip
def test_wkb_and_gpkg_round_trip(geom):
    assert from_wkb(to_wkb(geom)) == [geom]
    blob = to_gpkg(geom, 32611)
    assert blob[:2] == b"GP"
    assert struct.unpack("<i", blob[4:8])[0] == 32611
    assert from_gpkg(blob) == geom


def test_wkb_reads_multi_parts_big_endian_and_z():
    # MultiPolygon (type 6) of two squares, and a big-endian PointZ (1001)
    sq = to_wkb(rectangle(0, 0, 1, 1))
    multi = struct.pack("<BII", 1, 6, 2) + sq + sq
    assert len(from_wkb(multi)) == 2
    pz = struct.pack(">BIddd", 0, 1001, 3.0, 4.0, 5.0)
    assert from_wkb(pz) == [point(3, 4)]
    with pytest.raises(GeometryError, match="points or polygons"):
        from_wkb(struct.pack("<BII", 1, 2, 0))  # a LineString


def test_clip_to_rect():
    assert clip_to_rect(rectangle(-5, -5, 5, 5), 0, 0, 10, 10) == rectangle(0, 0, 5, 5).__class__(
        "Polygon", (((0.0, 0.0), (5.0, 0.0), (5.0, 5.0), (0.0, 5.0), (0.0, 0.0)),)
    )
    assert clip_to_rect(rectangle(20, 20, 30, 30), 0, 0, 10, 10) is None
    inside = rectangle(1, 1, 2, 2)
    assert clip_to_rect(inside, 0, 0, 10, 10) is inside
    assert clip_to_rect(rectangle(-5, -5, 5, 5), 0, 0, 10, 10).area() == 25
