"""read_export: every format round-trips, and ArcGIS-made folders of the same layout read."""

from __future__ import annotations

import json

import pytest
from export_support import boxes_of, export, rect
from test_export_formats import RECTS, expected_objects, origin

from dlstudio_qgis.engine.export.reader import read_export
from dlstudio_qgis.engine.protocol import InputError

FORMATS = ["PASCAL_VOC_rectangles", "KITTI_rectangles", "Classified_Tiles", "RCNN_Masks",
           "Labeled_Tiles", "MultiLabeled_Tiles"]  # fmt: skip


@pytest.fixture(scope="module")
def exports(rasters, tmp_path_factory):
    folder = tmp_path_factory.mktemp("reader")
    feats = [rect(*r) for r in RECTS]
    out = {}
    for fmt in FORMATS:
        out[fmt] = export(folder, rasters["rgb"][0], feats, name=fmt, metadata_format=fmt,
                          image_format="PNG" if fmt == "Classified_Tiles" else "TIFF")  # fmt: skip
        assert out[fmt].ok, out[fmt].run.stdout
    return out


@pytest.mark.parametrize("fmt", FORMATS)
def test_read_export_round_trips(exports, fmt):
    ex = exports[fmt]
    data = read_export(ex.out)
    assert data.metadata_format == fmt and not data.missing_labels
    assert data.class_values == [1, 2]
    assert [c["Name"] for c in data.classes] == ["building", "tree"]
    lines = ex.map_lines()
    assert [str(c.image.relative_to(ex.out)) for c in data.chips] == [img for img, _ in lines]
    for chip in data.chips:
        assert chip.image.is_file()
        ox, oy = origin(chip.image)
        want = expected_objects(ox, oy)
        if fmt in ("PASCAL_VOC_rectangles", "KITTI_rectangles"):
            got = sorted((str(c), *b) for c, b in zip(chip.classes, chip.boxes, strict=True))
            assert got == want
        elif fmt == "Classified_Tiles":
            assert chip.label.is_file() and chip.label.suffix == ".png"
        elif fmt == "RCNN_Masks":
            assert sorted(chip.masks) == sorted({int(o[0]) for o in want})
            assert all(p.is_file() and p.parent.name == str(c) for c, p in chip.masks.items())
            assert chip.classes == sorted(chip.masks)
        elif fmt == "Labeled_Tiles":
            assert len(chip.classes) == 1 and len(chip.boxes) == 1
        else:
            assert chip.classes == sorted({int(o[0]) for o in want})
    if fmt == "Labeled_Tiles":
        assert [c.classes[0] for c in data.chips] == [r[4] for r in RECTS]


def arcgis_folder(tmp_path, fmt: str, label_ext: str, labels: dict) -> object:
    """A folder laid out as ArcGIS writes it: Windows paths in map.txt, class names."""
    root = tmp_path / fmt
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    emd = {"ModelType": "ObjectDetection", "Classes": [
        {"Value": 1, "Name": "building", "Color": [255, 0, 0]},
        {"Value": 2, "Name": "tree", "Color": [0, 255, 0]}]}  # fmt: skip
    (root / "esri_model_definition.emd").write_text(json.dumps(emd))
    (root / "esri_accumulated_stats.json").write_text(json.dumps({"MetaDataMode": fmt}))
    lines = []
    for i, content in enumerate(labels.values()):
        name = f"{i:09d}"
        (root / "images" / f"{name}.tif").write_bytes(b"")
        lines.append(f"C:\\Users\\ana\\My Exports\\run 1\\images\\{name}.tif "
                     f"C:\\Users\\ana\\My Exports\\run 1\\labels\\{name}.{label_ext}")  # fmt: skip
        for rel, text in content.items():
            path = root / "labels" / rel.format(name=name)
            path.parent.mkdir(exist_ok=True)
            path.write_text(text)
    (root / "map.txt").write_text("\r\n".join(lines) + "\r\n")
    return root


def voc(*objects) -> str:
    body = "".join(
        f"<object><name>{n}</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for n, b in objects
    )
    return f"<annotation><size><width>256</width><height>256</height></size>{body}</annotation>"


def test_reads_an_arcgis_pascal_voc_folder_with_class_names(tmp_path):
    root = arcgis_folder(tmp_path, "PASCAL_VOC_rectangles", "xml", {
        "a": {"{name}.xml": voc(("building", (1, 2, 30.5, 40)), ("2", (5, 5, 9, 9)))},
        "b": {"{name}.xml": voc()},
    })  # fmt: skip
    data = read_export(root)
    assert [c.image.name for c in data.chips] == ["000000000.tif", "000000001.tif"]
    assert data.chips[0].classes == [1, 2]
    assert data.chips[0].boxes == [(1, 2, 30.5, 40), (5, 5, 9, 9)]
    assert data.chips[1].classes == [] and data.chips[1].label.name == "000000001.xml"


def test_reads_arcgis_multilabels_as_comma_separated_names(tmp_path):
    root = arcgis_folder(tmp_path, "MultiLabeled_Tiles", "xml", {
        "a": {"{name}.xml": voc(("1,tree", (0, 0, 256, 256)))}})  # fmt: skip
    assert read_export(root).chips[0].classes == [1, 2]


def test_reads_arcgis_rcnn_masks_in_class_name_folders(tmp_path):
    root = arcgis_folder(tmp_path, "RCNN_Masks", "tif", {
        "a": {"building/{name}.tif": "x", "tree/{name}.tif": "x"},
        "b": {"tree/{name}.tif": "x"},
    })  # fmt: skip
    chips = read_export(root).chips
    assert sorted(chips[0].masks) == [1, 2] and list(chips[1].masks) == [2]
    assert chips[1].masks[2] == root / "labels" / "tree" / "000000001.tif"


def test_reads_kitti_without_map_or_stats(tmp_path):
    root = tmp_path / "kitti"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "images" / "a.png").write_bytes(b"")
    (root / "labels" / "a.txt").write_text(
        "3 0.00 0 0.00 1.00 2.00 3.00 4.00 0.00 0.00 0.00 0.00 0.00 0.00 0.00\n"
    )
    data = read_export(root)
    assert data.metadata_format == "KITTI_rectangles"
    assert data.chips[0].classes == [3] and data.chips[0].boxes == [(1, 2, 3, 4)]


def test_a_missing_folder_or_label_is_reported(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_export(tmp_path / "nope")
    root = arcgis_folder(tmp_path, "PASCAL_VOC_rectangles", "xml", {"a": {}})
    data = read_export(root)
    assert data.chips == [] and [p.name for p in data.missing_labels] == ["000000000.tif"]


def test_voc_labels_written_are_plain_pascal_voc(exports):
    ex = exports["PASCAL_VOC_rectangles"]
    first = ex.out / ex.map_lines()[0][1]
    assert boxes_of(first) == [(n, *b) for n, b in zip(
        map(str, read_export(ex.out).chips[0].classes), read_export(ex.out).chips[0].boxes,
        strict=True)]  # fmt: skip
