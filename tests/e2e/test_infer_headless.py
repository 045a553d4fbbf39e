"""Headless inference on real imagery: the Landsat sample in shared/data (512x512, 3-band
int16, a custom Albers CRS, 19 field polygons) through `qgis_process.bin`: export
Classified_Tiles, train UNET on RESNET18 for one epoch, then classify its pixels.

labels.geojson names no CRS (GeoJSON readers take WGS 84), though its coordinates are in the
image's Albers CRS: the test writes them to a GeoPackage with the image's CRS first.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from osgeo import gdal, ogr, osr
from test_qgis_process import env, qgis_process  # noqa: F401 - env is a fixture

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "landsat_albers"
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"no shared test data at {DATA}")
gdal.UseExceptions()
ogr.UseExceptions()


@pytest.fixture
def env1(env):  # noqa: F811 - the fixture
    """The module's qgis_process environment, the worker on one torch thread."""
    return {**env, "OMP_NUM_THREADS": "1"}


def run(environ, alg: str, timeout: float = 300, **params) -> dict:
    args = ["--json", "run", f"dlstudio:{alg}", "--", *(f"{k}={v}" for k, v in params.items())]
    out: subprocess.CompletedProcess = qgis_process(environ, *args, timeout=timeout)
    assert out.returncode == 0, f"{alg} failed ({out.returncode}):\n{out.stderr}\n{out.stdout}"
    return json.loads(out.stdout[out.stdout.index("{") :])


def fields_in_albers(folder: Path) -> str:
    """The 19 field polygons in a GeoPackage with the image's CRS, class 'field'."""
    srs = osr.SpatialReference()
    srs.ImportFromWkt(gdal.Open(str(DATA / "image.tif")).GetProjection())
    path = folder / "fields.gpkg"
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    layer = ds.CreateLayer("fields", srs, ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("label", ogr.OFTString))
    for f in json.loads((DATA / "labels.geojson").read_text())["features"]:
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetField("label", "field")
        feature.SetGeometry(ogr.CreateGeometryFromJson(json.dumps(f["geometry"])))
        layer.CreateFeature(feature)
    ds = None
    return str(path)


def test_export_train_classify_landsat(env1, tmp_path):
    image = str(DATA / "image.tif")
    export = tmp_path / "chips"
    doc = run(env1, "exporttrainingdata", INPUT_RASTER=image,
              INPUT_SAMPLES=fields_in_albers(tmp_path), CLASS_VALUE_FIELD="label",
              OUTPUT_FOLDER=export, METADATA_FORMAT="Classified_Tiles", TILE_SIZE_X=128,
              TILE_SIZE_Y=128, STRIDE_X=128, STRIDE_Y=128, OUTPUT_NOFEATURE_TILES="true",
              WORKERS=1)  # fmt: skip
    assert doc["results"]["CHIPS"] == 16 and doc["results"]["SAMPLES"] == 19

    package = tmp_path / "fields.dlpk"
    doc = run(env1, "traindeeplearningmodel", IN_FOLDER=export, OUTPUT=package,
              MODEL_TYPE="UNET", BACKBONE_MODEL="RESNET18", MAX_EPOCHS=1, BATCH_SIZE=4,
              LEARNING_RATE=0.001, PROCESSOR_TYPE="CPU")  # fmt: skip
    assert doc["results"]["EPOCHS"] == 1 and package.is_file()

    out = tmp_path / "classified" / "fields.tif"
    doc = run(env1, "classifypixels", INPUT_RASTER=image, MODEL=package, OUTPUT=out,
              ARGUMENTS="batch_size=8", PROCESSOR_TYPE="CPU")  # fmt: skip
    assert doc["results"]["OUTPUT"] == str(out)
    src, ds = gdal.Open(image), gdal.Open(str(out))
    assert (ds.RasterXSize, ds.RasterYSize, ds.RasterCount) == (512, 512, 1)
    assert ds.GetGeoTransform() == pytest.approx(src.GetGeoTransform())
    src_srs, out_srs = osr.SpatialReference(), osr.SpatialReference()
    src_srs.ImportFromWkt(src.GetProjection())
    out_srs.ImportFromWkt(ds.GetProjection())
    assert out_srs.IsSame(src_srs)  # the custom Albers CRS, kept
    band = ds.GetRasterBand(1)
    assert band.GetColorTable() is not None and band.GetColorTable().GetCount() >= 2
    values = set(band.ReadAsArray().ravel().tolist())
    assert values <= {0, 1}
    counts = json.loads(doc["results"]["PIXEL_COUNTS"])
    assert sum(counts.values()) == 512 * 512
    qml = out.with_suffix(".qml").read_text()
    assert 'type="paletted"' in qml and 'label="field"' in qml
    assert not [p.name for p in out.parent.iterdir() if ".partial" in p.name]
