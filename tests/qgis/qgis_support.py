"""Helpers for the QGIS tests: the session QgsApplication, running algorithms, test data.

Rasters are written with osgeo.gdal and vectors with osgeo.ogr (never rasterio or shapely in
a QGIS process).
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
for _p in ("/usr/share/qgis/python/plugins", "/usr/share/qgis/python"):
    if os.path.isdir(_p) and _p not in sys.path:
        sys.path.append(_p)

from osgeo import gdal, ogr, osr  # noqa: E402
from qgis.core import (  # noqa: E402
    QgsApplication,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProject,
)

gdal.UseExceptions()
ogr.UseExceptions()
osr.UseExceptions()

ORIGIN = (500000.0, 4000200.0)  # top-left of the test rasters, EPSG:32611 (UTM 11N)
SIZE = 200  # pixels of 1 m
OWNER, ANALYST, COLLECTOR, OUTSIDER = "olivia", "ann", "carl", "mallory"

_STATE: dict = {}


def start_qgis():
    if "app" in _STATE:
        return _STATE["app"]
    app = QgsApplication.instance()
    if app is None:
        profile = tempfile.mkdtemp(prefix="dls-qgis-profile-")
        _STATE["profile"] = profile
        app = QgsApplication([], False, profile)
        QgsApplication.setPrefixPath("/usr", True)
        app.initQgis()
    from processing.core.Processing import Processing

    Processing.initialize()
    from dlstudio_qgis.processing import DlsProvider

    registry = QgsApplication.processingRegistry()
    if registry.providerById("dlstudio") is None:
        provider = DlsProvider()
        registry.addProvider(provider)
        _STATE["provider"] = provider
    _STATE["app"] = app
    return app


class Capture(QgsProcessingFeedback):
    """Feedback that keeps every message, to assert on what the user would see."""

    def __init__(self):
        super().__init__()
        self.infos: list[str] = []
        self.warnings: list[str] = []
        self.errors: list[str] = []

    def pushInfo(self, info):
        self.infos.append(info)

    def pushWarning(self, warning):
        self.warnings.append(warning)

    def reportError(self, error, fatalError=False):
        self.errors.append(error)

    @property
    def text(self) -> str:
        return "\n".join(self.infos + self.warnings + self.errors)


def run(name: str, feedback: Capture | None = None, context=None, **params) -> dict:
    """processing.run('dlstudio:<name>', params), raising QgsProcessingException on failure."""
    import processing

    return processing.run(
        f"dlstudio:{name}",
        params,
        feedback=feedback if feedback is not None else Capture(),
        context=context,
    )


def new_context() -> QgsProcessingContext:
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    return context


def digest(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --- data ----------------------------------------------------------------------------------


def make_raster(path, epsg: int | None = 32611, size: int = SIZE, origin=ORIGIN, pixel=1.0):
    """A small 3-band GeoTIFF with some structure, north-up."""
    import numpy as np

    ds = gdal.GetDriverByName("GTiff").Create(str(path), size, size, 3, gdal.GDT_Byte)
    ds.SetGeoTransform((origin[0], pixel, 0.0, origin[1], 0.0, -pixel))
    if epsg is not None:
        srs = osr.SpatialReference()
        srs.ImportFromEPSG(epsg)
        ds.SetProjection(srs.ExportToWkt())
    yy, xx = np.mgrid[0:size, 0:size]
    for b in range(3):
        ds.GetRasterBand(b + 1).WriteArray(((xx * (b + 1) + yy) % 256).astype("uint8"))
    ds = None
    return str(path)


def write_vector(path, features, epsg: int | None, geom_type, fields=(("cls", "str"),), layer=None):
    """Write [(wkt, {field: value}), ...] as a GeoPackage or GeoJSON (by extension)."""
    path = str(path)
    driver = "GeoJSON" if path.endswith((".geojson", ".json")) else "GPKG"
    ds = ogr.GetDriverByName(driver).CreateDataSource(path)
    srs = None
    if epsg is not None:
        srs = osr.SpatialReference()
        srs.ImportFromEPSG(epsg)
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    lyr = ds.CreateLayer(layer or Path(path).stem, srs, geom_type)
    kinds = {"str": ogr.OFTString, "int": ogr.OFTInteger, "real": ogr.OFTReal}
    for name, kind in fields:
        lyr.CreateField(ogr.FieldDefn(name, kinds[kind]))
    for wkt, attrs in features:
        f = ogr.Feature(lyr.GetLayerDefn())
        for k, v in attrs.items():
            f.SetField(k, v)
        if wkt is not None:
            f.SetGeometry(ogr.CreateGeometryFromWkt(wkt))
        lyr.CreateFeature(f)
    ds = None
    return path


def rect_wkt(xmin, ymin, xmax, ymax) -> str:
    return f"POLYGON(({xmin} {ymin},{xmax} {ymin},{xmax} {ymax},{xmin} {ymax},{xmin} {ymin}))"


def utm_to_wgs84(points):
    """EPSG:32611 (x, y) -> EPSG:4326 (lon, lat), with QGIS's transformation."""
    from qgis.core import (
        QgsCoordinateReferenceSystem,
        QgsCoordinateTransform,
        QgsPointXY,
    )

    ct = QgsCoordinateTransform(
        QgsCoordinateReferenceSystem("EPSG:32611"),
        QgsCoordinateReferenceSystem("EPSG:4326"),
        QgsProject.instance(),
    )
    return [(p.x(), p.y()) for p in (ct.transform(QgsPointXY(x, y)) for x, y in points)]


def wgs84_polygon_wkt(utm_ring) -> str:
    ring = utm_to_wgs84(utm_ring)
    ring.append(ring[0])
    return "POLYGON((" + ",".join(f"{x:.12f} {y:.12f}" for x, y in ring) + "))"


def unit_ids_by_name(path) -> dict[str, int]:
    from dlstudio_qgis.core import Project

    return {u.name: u.fid for u in Project.open(path, OWNER).work_units()}
