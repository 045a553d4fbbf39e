"""Export on real imagery (SpaceNet samples in shared/data): Las Vegas roads, Landsat fields."""

from __future__ import annotations

import json

import numpy as np
import pytest
from export_support import DATA, boxes_of, export, read, write_json
from osgeo import gdal, ogr

VEGAS, LANDSAT = DATA / "vegas_roads", DATA / "landsat_albers"
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"no shared test data at {DATA}")
ROAD_HALF_WIDTH = 2.5e-5  # degrees (about 2.5 m): the road lines buffered into polygons


def buffered_roads() -> list[dict]:
    """The road lines as polygons (OGR buffer), class 1."""
    fc = json.loads((VEGAS / "roads.geojson").read_text())
    out = []
    for f in fc["features"]:
        geom = ogr.CreateGeometryFromJson(json.dumps(f["geometry"])).Buffer(ROAD_HALF_WIDTH, 4)
        out.append({"type": "Feature", "properties": {"class_value": 1},
                    "geometry": json.loads(geom.ExportToJson())})  # fmt: skip
    return out


def landsat_fields() -> list[dict]:
    fc = json.loads((LANDSAT / "labels.geojson").read_text())
    return [{**f, "properties": {"class_value": 1, "fid": i}} for i, f in enumerate(fc["features"])]


def rasterised(features: list[dict], gt, wkt, shape) -> np.ndarray:
    """GDAL's rasterisation of the features (class values) on a chip's grid."""
    ds = gdal.GetDriverByName("MEM").Create("", shape[1], shape[0], 1, gdal.GDT_Byte)
    ds.SetGeoTransform(gt)
    ds.SetProjection(wkt)
    src = ogr.GetDriverByName("Memory").CreateDataSource("")
    layer = src.CreateLayer("s", geom_type=ogr.wkbUnknown)
    layer.CreateField(ogr.FieldDefn("v", ogr.OFTInteger))
    for f in features:
        feat = ogr.Feature(layer.GetLayerDefn())
        feat.SetField("v", f["properties"]["class_value"])
        feat.SetGeometry(ogr.CreateGeometryFromJson(json.dumps(f["geometry"])))
        layer.CreateFeature(feat)
    gdal.RasterizeLayer(ds, [1], layer, options=["ATTRIBUTE=v"])
    return ds.ReadAsArray()


def road_mask_polygons() -> list[dict]:
    """The road mask (0/255) polygonised on its pixel edges, class 1."""
    ds = gdal.Open(str(VEGAS / "road_mask.tif"))
    band = ds.GetRasterBand(1)
    src = ogr.GetDriverByName("Memory").CreateDataSource("")
    layer = src.CreateLayer("roads", srs=ds.GetSpatialRef(), geom_type=ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("v", ogr.OFTInteger))
    gdal.Polygonize(band, band, layer, 0)
    return [{"type": "Feature", "properties": {"class_value": 1},
             "geometry": json.loads(f.GetGeometryRef().ExportToJson())} for f in layer]  # fmt: skip


def test_vegas_road_lines_lie_off_the_image(tmp_path):
    """roads.geojson is from another SpaceNet tile: the export says so and names the CRS."""
    ex = export(tmp_path, VEGAS / "image.tif", buffered_roads(),
                metadata_format="Classified_Tiles", tile_size=[256, 256])  # fmt: skip
    assert ex.run.rc == 1 and ex.result["kind"] == "input"
    assert "None of the 27 samples touches the raster" in ex.result["message"]
    assert "EPSG:4326" in ex.result["message"]


def test_vegas_roads_to_classified_tiles(tmp_path):
    roads = road_mask_polygons()
    assert roads
    ex = export(tmp_path, VEGAS / "image.tif", roads, metadata_format="Classified_Tiles",
                tile_size=[256, 256], stride=[256, 256],
                classes=[{"value": 1, "name": "road", "color": "#ffff00"}])  # fmt: skip
    assert ex.ok, ex.run.stdout
    lines = ex.map_lines()
    assert len(lines) == ex.result["chips"] > 5
    src_gt = read(VEGAS / "image.tif")[1]
    image = gdal.Open(str(VEGAS / "image.tif"))
    mask = gdal.Open(str(VEGAS / "road_mask.tif")).ReadAsArray() > 0
    painted = 0
    for img, lab in lines:
        data, gt, wkt, _ = read(ex.out / img)
        assert data.dtype == np.uint16 and data.shape == (1, 256, 256)
        col = round((gt[0] - src_gt[0]) / src_gt[1])
        row = round((gt[3] - src_gt[3]) / src_gt[5])
        assert (gt[0], gt[3]) == pytest.approx(
            (src_gt[0] + col * src_gt[1], src_gt[3] + row * src_gt[5]), abs=1e-12)  # fmt: skip
        np.testing.assert_array_equal(data[0], image.ReadAsArray(col, row, 256, 256))
        label, lgt, _, _ = read(ex.out / lab)
        assert lgt == gt
        np.testing.assert_array_equal(label[0], mask[row : row + 256, col : col + 256])
        painted += int(label.sum())
    stats = ex.json("esri_accumulated_stats.json")
    assert stats["ClassPixelStats"]["NumPixelsPerClass"] == [painted]


@pytest.fixture(scope="module")
def landsat(tmp_path_factory):
    folder = tmp_path_factory.mktemp("landsat")
    fields = landsat_fields()
    runs = {fmt: export(folder, LANDSAT / "image.tif", fields, name=fmt, metadata_format=fmt)
            for fmt in ("PASCAL_VOC_rectangles", "Classified_Tiles")}  # fmt: skip
    return fields, runs


def test_landsat_fields_to_pascal_voc(landsat):
    fields, runs = landsat
    ex = runs["PASCAL_VOC_rectangles"]
    assert ex.ok, ex.run.stdout
    _, src_gt, _, _ = read(LANDSAT / "image.tif")
    envelopes = []  # in source pixels
    for f in fields:
        x0, x1, y0, y1 = ogr.CreateGeometryFromJson(json.dumps(f["geometry"])).GetEnvelope()
        envelopes.append(((x0 - src_gt[0]) / src_gt[1], (y1 - src_gt[3]) / src_gt[5],
                          (x1 - src_gt[0]) / src_gt[1], (y0 - src_gt[3]) / src_gt[5]))  # fmt: skip
    whole = 0
    for img, lab in ex.map_lines():
        data, gt, wkt, nodata = read(ex.out / img)
        assert data.dtype == np.int16 and data.shape == (3, 128, 128) and nodata == -9999
        assert "Albers_Conic_Equal_Area" in wkt
        ox, oy = (gt[0] - src_gt[0]) / src_gt[1], (gt[3] - src_gt[3]) / src_gt[5]
        boxes = boxes_of(ex.out / lab)
        assert boxes and all(0 <= v <= 128 for b in boxes for v in b[1:])
        for c0, r0, c1, r1 in envelopes:  # a field wholly inside the chip: its envelope
            if c0 >= ox and r0 >= oy and c1 <= ox + 128 and r1 <= oy + 128:
                want = (c0 - ox, r0 - oy, c1 - ox, r1 - oy)
                assert any(b[1:] == pytest.approx(want, abs=0.01) for b in boxes)
                whole += 1
    assert whole >= 10


def test_landsat_fields_to_classified_tiles(landsat):
    fields, runs = landsat
    ex = runs["Classified_Tiles"]
    assert ex.ok, ex.run.stdout
    for img, lab in ex.map_lines():
        label, gt, wkt, _ = read(ex.out / lab)
        want = rasterised(fields, gt, wkt, (128, 128))
        assert (label[0] == want).mean() > 0.9995, img
        assert (label[0] == 1).any() or not want.any()


def test_landsat_band_stats_exclude_nodata(landsat):
    _, runs = landsat
    ex = runs["PASCAL_VOC_rectangles"]
    rows = ex.json("esri_accumulated_stats.json")["BandStats"]
    assert all(r["Min"] > -9999 for r in rows)
    chips = np.stack([read(ex.out / img)[0] for img, _ in ex.map_lines()]).astype(float)
    for b, row in enumerate(rows):
        x = chips[:, b][chips[:, b] != -9999]
        assert row["Mean"] == pytest.approx(x.mean()) and row["Count"] == x.size


def test_the_job_is_repeatable_from_export_job_json(landsat, tmp_path):
    from engine_helpers import run_engine

    _, runs = landsat
    first = runs["PASCAL_VOC_rectangles"]
    job = {**first.json("export_job.json"), "output": str(tmp_path / "again")}
    run = run_engine("export", write_json(tmp_path / "again.json", job))
    assert run.rc == 0, run.stdout
    again = tmp_path / "again"
    assert (again / "map.txt").read_text() == (first.out / "map.txt").read_text()
    for name in ("000000000.xml", "000000003.xml"):
        assert (again / "labels" / name).read_text() == (first.out / "labels" / name).read_text()
