"""Small output helpers of the inference algorithms: fields, geometries, removing an output."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from osgeo import ogr
from qgis.core import Qgis, QgsFeatureSink, QgsField, QgsGeometry, QgsProviderRegistry, QgsWkbTypes

from .base import _enum

FAST_INSERT = _enum((QgsFeatureSink, "Flag", "FastInsert"), (QgsFeatureSink, "FastInsert"))
WKB_MULTIPOLYGON = _enum((Qgis, "WkbType", "MultiPolygon"), (QgsWkbTypes, "Type", "MultiPolygon"))


def make_field(name: str, kind: str) -> QgsField:
    """A field of kind int, string or double (QMetaType where QGIS takes it, else QVariant)."""
    if Qgis.QGIS_VERSION_INT >= 33800:
        from qgis.PyQt.QtCore import QMetaType

        types = {"int": QMetaType.Type.Int, "string": QMetaType.Type.QString,
                 "double": QMetaType.Type.Double}  # fmt: skip
    else:
        from qgis.PyQt.QtCore import QVariant

        types = {"int": QVariant.Int, "string": QVariant.String, "double": QVariant.Double}
    return QgsField(name, types[kind])


def geometry_from_geojson(geometry, multi: bool = True) -> QgsGeometry | None:
    """A GeoJSON geometry (a dict) as a QgsGeometry, made multi-part by default; None when
    there is none."""
    if not geometry:
        return None
    ogr_geom = ogr.CreateGeometryFromJson(json.dumps(geometry))
    if ogr_geom is None:
        return None
    geom = QgsGeometry()
    geom.fromWkb(bytes(ogr_geom.ExportToIsoWkb()))
    if multi:
        geom.convertToMultiType()
    return geom


def remove_output(dest_id: str) -> None:
    """Remove an output file this run wrote in part (a cancelled or failed run must not leave
    one that looks complete). A layer inside another file or in memory is left alone."""
    path = QgsProviderRegistry.instance().decodeUri("ogr", dest_id).get("path") or ""
    if not path or not Path(path).is_file():
        return
    for candidate in (path, f"{path}-wal", f"{path}-shm", f"{path}-journal"):
        with contextlib.suppress(OSError):
            Path(candidate).unlink()
