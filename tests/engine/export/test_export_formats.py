"""Export: each metadata format's chips and labels match the known samples to the pixel."""

from __future__ import annotations

import numpy as np
import pytest
from export_support import (
    CLASSES,
    GT,
    boxes_of,
    chip_to_source,
    export,
    read,
    rect,
)

# pixel rectangles (c0, r0, c1, r1, class) on the 300 x 260 rasters
RECTS = [(10, 20, 40, 50, 1), (100, 100, 130, 120, 2), (200, 150, 260, 200, 1), (60, 30, 70, 90, 2)]
COLS, ROWS = [0, 64, 128, 172], [0, 64, 128, 132]  # 128-pixel tiles, stride 64, edge-aligned


def features(rects=RECTS):
    return [rect(*r, fid=i) for i, r in enumerate(rects)]


def expected_objects(ox, oy, rects=RECTS, min_overlap=0.5, tile=128):
    """(class, xmin, ymin, xmax, ymax) in chip pixels of the objects a tile keeps."""
    out = []
    for c0, r0, c1, r1, cls in rects:
        a0, b0, a1, b1 = max(c0, ox), max(r0, oy), min(c1, ox + tile), min(r1, oy + tile)
        if a1 <= a0 or b1 <= b0:
            continue
        if (a1 - a0) * (b1 - b0) / ((c1 - c0) * (r1 - r0)) >= min_overlap:
            out.append((str(cls), a0 - ox, b0 - oy, a1 - ox, b1 - oy))
    return sorted(out)


def kept_tiles(rects=RECTS, min_overlap=0.5):
    return [(c, r) for r in ROWS for c in COLS if expected_objects(c, r, rects, min_overlap)]


def origin(path) -> tuple[int, int]:
    _, gt, _, _ = read(path)
    c, r = chip_to_source(gt, 0, 0)
    assert (round(c), round(r)) == pytest.approx((c, r), abs=1e-6)
    return round(c), round(r)


@pytest.fixture(scope="module")
def voc(rasters, tmp_path_factory):
    return export(tmp_path_factory.mktemp("voc"), rasters["rgb"][0], features())


def test_voc_chips_are_the_tiles_holding_objects_in_order(voc):
    assert voc.ok, voc.run.stdout + voc.run.stderr
    tiles = kept_tiles()
    lines = voc.map_lines()
    assert lines == [[f"images/{i:09d}.tif", f"labels/{i:09d}.xml"] for i in range(len(tiles))]
    assert [origin(voc.out / img) for img, _ in lines] == tiles
    res = voc.result
    assert res["chips"] == res["tiles"] == len(tiles)
    assert res["skipped_tiles"] == len(COLS) * len(ROWS) - len(tiles)
    assert res["objects"] == sum(len(expected_objects(c, r)) for c, r in tiles)
    assert res["objects_per_class"] == {
        "1": sum(o[0] == "1" for c, r in tiles for o in expected_objects(c, r)),
        "2": sum(o[0] == "2" for c, r in tiles for o in expected_objects(c, r)),
    }
    assert res["metadata_format"] == "PASCAL_VOC_rectangles"
    assert res["emd"] == str(voc.out / "esri_model_definition.emd")
    assert res["dropped"] > 0 and res["seconds"] >= 0
    progress = [m["value"] for m in voc.run.of("progress")]
    assert progress == sorted(progress) and progress[0] == 0 and progress[-1] == 100
    assert len(progress) >= 3  # as tiles complete


def test_voc_boxes_are_the_clipped_rectangles_in_chip_pixels(voc):
    for img, lab in voc.map_lines():
        ox, oy = origin(voc.out / img)
        assert sorted(boxes_of(voc.out / lab)) == expected_objects(ox, oy), img
    text = (voc.out / "labels" / "000000000.xml").read_text()
    assert "<width>128</width>" in text and "<depth>3</depth>" in text


def test_chips_keep_the_source_pixels_and_georeferencing(voc, rasters):
    _, src = rasters["rgb"]
    for img, _ in voc.map_lines():
        data, gt, wkt, nodata = read(voc.out / img)
        ox, oy = origin(voc.out / img)
        assert data.dtype == np.uint8 and data.shape == (3, 128, 128)
        np.testing.assert_array_equal(data, src[:, oy : oy + 128, ox : ox + 128])
        assert (gt[1], gt[2], gt[4], gt[5]) == (GT[1], 0.0, 0.0, GT[5])
        assert 'AUTHORITY["EPSG","32611"]' in wkt and nodata is None


def test_band_statistics_match_numpy_over_the_chips(voc):
    chips = np.stack([read(voc.out / img)[0] for img, _ in voc.map_lines()])
    stats = voc.json("esri_accumulated_stats.json")
    emd = voc.json("esri_model_definition.emd")
    for b in range(3):
        x = chips[:, b].astype(float)
        row = stats["BandStats"][b]
        assert row["Count"] == x.size
        assert (row["Min"], row["Max"]) == (x.min(), x.max())
        assert row["Mean"] == pytest.approx(x.mean(), rel=1e-12)
        assert row["StdDev"] == pytest.approx(x.std(), rel=1e-9)
        assert emd["AllTilesStats"][b]["Mean"] == pytest.approx(x.mean(), rel=1e-12)


def test_metadata_files(voc):
    stats = voc.json("esri_accumulated_stats.json")
    assert stats["MetaDataMode"] == "PASCAL_VOC_rectangles"
    assert stats["NumTiles"] == len(kept_tiles()) == voc.result["chips"]
    assert stats["ClassAttribute"] == "class_value"
    assert (stats["ImageWidth"], stats["ImageHeight"], stats["NumBands"]) == (128, 128, 3)
    assert [c["NumFeatures"] for c in stats["Classes"]] == [
        voc.result["objects_per_class"]["1"], voc.result["objects_per_class"]["2"]]  # fmt: skip
    emd = voc.json("esri_model_definition.emd")
    assert emd["ModelType"] == "ObjectDetection"
    assert (emd["ImageWidth"], emd["ImageHeight"], emd["ExtractBands"]) == (128, 128, [0, 1, 2])
    assert emd["Classes"] == [
        {"Value": 1, "Name": "building", "Color": [255, 0, 0]},
        {"Value": 2, "Name": "tree", "Color": [0, 255, 0]},
    ]
    assert emd["ImageSpaceUsed"] == "MAP_SPACE" and emd["MetaDataMode"] == "PASCAL_VOC_rectangles"
    assert emd["DLStudio"]["ExportJob"]["samples"] == voc.job["samples"]
    job = voc.json("export_job.json")
    assert job["kind"] == "export" and job["tile_size"] == [128, 128]
    assert "PASCAL_VOC_rectangles" in (voc.out / "stats.txt").read_text()
    assert not list(voc.out.parent.glob(".*partial*"))


def test_kitti_lines_hold_class_and_box(rasters, tmp_path):
    ex = export(tmp_path, rasters["rgb"][0], features(), metadata_format="KITTI_rectangles")
    assert ex.ok, ex.run.stdout
    for img, lab in ex.map_lines():
        ox, oy = origin(ex.out / img)
        rows = [line.split() for line in (ex.out / lab).read_text().splitlines()]
        assert all(len(r) == 15 for r in rows)
        got = sorted((r[0], *(float(v) for v in r[4:8])) for r in rows)
        assert got == expected_objects(ox, oy), img


def painted(ox, oy, rects=RECTS, tile=128) -> np.ndarray:
    """The class raster of a tile: larger rectangles first, smaller ones over them."""
    out = np.zeros((tile, tile), np.uint8)
    for c0, r0, c1, r1, cls in sorted(rects, key=lambda r: -(r[2] - r[0]) * (r[3] - r[1])):
        a0, b0, a1, b1 = max(c0 - ox, 0), max(r0 - oy, 0), min(c1 - ox, tile), min(r1 - oy, tile)
        if a1 > a0 and b1 > b0:
            out[b0:b1, a0:a1] = cls
    return out


def test_classified_tiles_label_is_the_rasterised_polygons(rasters, tmp_path):
    ex = export(tmp_path, rasters["rgb"][0], features(), metadata_format="Classified_Tiles")
    assert ex.ok, ex.run.stdout
    assert ex.result["dropped"] == 0  # every class pixel is labelled, whatever the overlap
    lines = ex.map_lines()
    expected_tiles = [(c, r) for r in ROWS for c in COLS if painted(c, r).any()]
    assert [origin(ex.out / img) for img, _ in lines] == expected_tiles
    total = np.zeros(3, np.int64)
    for img, lab in lines:
        assert lab.endswith(".tif")
        label, gt, wkt, _ = read(ex.out / lab)
        assert label.dtype == np.uint8 and label.shape == (1, 128, 128)
        assert gt == read(ex.out / img)[1] and "32611" in wkt
        ox, oy = origin(ex.out / img)
        np.testing.assert_array_equal(label[0], painted(ox, oy))
        total += np.bincount(label.ravel(), minlength=3)[:3]
    stats = ex.json("esri_accumulated_stats.json")
    assert stats["ClassPixelStats"]["NumPixelsPerClass"] == total[1:].tolist()
    assert ex.json("esri_model_definition.emd")["ModelType"] == "ImageClassification"


def test_rcnn_masks_give_each_instance_its_value_per_class_folder(rasters, tmp_path):
    rects = [*RECTS, (20, 60, 30, 70, 1)]  # two buildings in the first tile
    ex = export(tmp_path, rasters["rgb"][0], features(rects), metadata_format="RCNN_Masks")
    assert ex.ok, ex.run.stdout
    for img, lab in ex.map_lines():
        name = lab.split("/")[-1]
        ox, oy = origin(ex.out / img)
        objects = expected_objects(ox, oy, rects)
        for cls in ("1", "2"):
            mine = [o for o in objects if o[0] == cls]
            path = ex.out / "labels" / cls / name
            assert path.exists() == bool(mine), path
            if not mine:
                continue
            mask = read(path)[0][0]
            assert read(path)[1] == read(ex.out / img)[1]
            assert sorted(np.unique(mask).tolist()) == list(range(len(mine) + 1))
            boxes = []
            for v in range(1, len(mine) + 1):
                rows, cols = np.nonzero(mask == v)
                assert len(rows) == (cols.max() + 1 - cols.min()) * (rows.max() + 1 - rows.min())
                boxes.append((cls, cols.min(), rows.min(), cols.max() + 1, rows.max() + 1))
            assert sorted(boxes) == mine


def test_labeled_tiles_centre_one_chip_on_each_sample(rasters, tmp_path):
    ex = export(tmp_path, rasters["rgb"][0], features(), metadata_format="Labeled_Tiles",
                inference_tool="CLASSIFY_OBJECTS")  # fmt: skip
    assert ex.ok, ex.run.stdout
    lines = ex.map_lines()
    assert len(lines) == len(RECTS) == ex.result["chips"]
    for (img, lab), (c0, r0, c1, r1, cls) in zip(lines, RECTS, strict=True):
        ox, oy = origin(ex.out / img)
        cx, cy = (c0 + c1) / 2, (r0 + r1) / 2
        want = (min(max(round(cx - 64), 0), 172), min(max(round(cy - 64), 0), 132))
        assert (ox, oy) == want
        (obj,) = boxes_of(ex.out / lab)
        assert obj == (str(cls), c0 - ox, r0 - oy, c1 - ox, r1 - oy)
    assert ex.json("esri_model_definition.emd")["ModelType"] == "ObjectClassification"


def test_multilabeled_tiles_list_the_classes_present(rasters, tmp_path):
    ex = export(tmp_path, rasters["rgb"][0], features(), metadata_format="MultiLabeled_Tiles")
    assert ex.ok, ex.run.stdout
    for img, lab in ex.map_lines():
        ox, oy = origin(ex.out / img)
        names = [o[0] for o in boxes_of(ex.out / lab)]
        assert names == sorted({o[0] for o in expected_objects(ox, oy)}), img
    assert any(len(boxes_of(ex.out / lab)) == 2 for _, lab in ex.map_lines())


def test_nofeature_tiles_cover_the_raster_edge_to_edge(rasters, tmp_path):
    ex = export(tmp_path, rasters["rgb"][0], features()[:1], output_nofeature_tiles=True)
    assert ex.ok, ex.run.stdout
    origins = [origin(ex.out / img) for img, _ in ex.map_lines()]
    assert origins == [(c, r) for r in ROWS for c in COLS]
    assert ex.result["skipped_tiles"] == 0 and ex.result["chips"] == 16
    assert boxes_of(ex.out / "labels" / "000000015.xml") == []


def test_band_subset(rasters, tmp_path):
    _, src = rasters["rgb"]
    ex = export(tmp_path, rasters["rgb"][0], features(), bands=[3, 1])
    assert ex.ok, ex.run.stdout
    img = ex.map_lines()[0][0]
    data = read(ex.out / img)[0]
    ox, oy = origin(ex.out / img)
    np.testing.assert_array_equal(data, src[[2, 0], oy : oy + 128, ox : ox + 128])
    emd = ex.json("esri_model_definition.emd")
    assert emd["ExtractBands"] == [2, 0] and len(emd["AllTilesStats"]) == 2


@pytest.mark.parametrize("fmt,ext,world", [("PNG", "png", "pgw"), ("JPEG", "jpg", "jgw")])
def test_png_and_jpeg_chips_get_a_world_file_and_the_crs(rasters, tmp_path, fmt, ext, world):
    _, src = rasters["rgb"]
    ex = export(tmp_path, rasters["rgb"][0], features(), image_format=fmt,
                metadata_format="Classified_Tiles")  # fmt: skip
    assert ex.ok, ex.run.stdout
    img, lab = ex.map_lines()[0]
    assert img.endswith(f".{ext}") and lab.endswith(".png")  # labels stay lossless
    chip = ex.out / img
    assert chip.with_suffix(f".{world}").exists()
    assert chip.with_name(chip.name + ".aux.xml").exists()
    data, gt, wkt, _ = read(chip)
    ox, oy = origin(chip)
    assert gt == pytest.approx((GT[0] + ox * GT[1], GT[1], 0, GT[3] + oy * GT[5], 0, GT[5]))
    assert "32611" in wkt
    window = src[:, oy : oy + 128, ox : ox + 128]
    if fmt == "PNG":
        np.testing.assert_array_equal(data, window)
    else:
        # lossy on random pixels, but the same image (unrelated pixels correlate at 0)
        assert np.corrcoef(data.ravel().astype(float), window.ravel())[0, 1] > 0.6
    world = [float(v) for v in chip.with_suffix(f".{world}").read_text().split()]
    assert world == pytest.approx([GT[1], 0, 0, GT[5], gt[0] + GT[1] / 2, gt[3] + GT[5] / 2])
    label, lgt, _, _ = read(ex.out / lab)
    assert lgt == gt
    np.testing.assert_array_equal(label[0], painted(ox, oy))


def test_uint16_single_band(rasters, tmp_path):
    path, src = rasters["u16"]
    ex = export(tmp_path, path, features(), image_format="PNG")
    assert ex.ok, ex.run.stdout
    img = ex.map_lines()[0][0]
    data = read(ex.out / img)[0]
    ox, oy = origin(ex.out / img)
    assert data.dtype == np.uint16 and data.shape == (1, 128, 128)
    np.testing.assert_array_equal(data, src[:, oy : oy + 128, ox : ox + 128])


def test_float32_keeps_nodata_and_stats_exclude_it(rasters, tmp_path):
    path, src = rasters["f32"]
    ex = export(tmp_path, path, features(), metadata_format="Classified_Tiles")
    assert ex.ok, ex.run.stdout
    chips = []
    for img, _ in ex.map_lines():
        data, _, _, nodata = read(ex.out / img)
        assert data.dtype == np.float32 and nodata == -9999.0
        chips.append(data[0])
    values = np.concatenate([c.ravel() for c in chips])
    assert (values == -9999.0).any()
    valid = values[values != -9999.0].astype(float)
    (row,) = ex.json("esri_accumulated_stats.json")["BandStats"]
    assert row["Count"] == valid.size and row["Min"] == valid.min()
    assert row["Mean"] == pytest.approx(valid.mean())
    assert row["StdDev"] == pytest.approx(valid.std())
    assert ex.json("esri_accumulated_stats.json")["NoData"] == -9999.0


def test_classes_in_the_model_definition_follow_the_job(voc):
    emd = voc.json("esri_model_definition.emd")
    assert [c["Value"] for c in emd["Classes"]] == [c["value"] for c in CLASSES]
