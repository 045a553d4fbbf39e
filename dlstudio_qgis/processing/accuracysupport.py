"""What the three accuracy algorithms share: class values, polygons handed to the worker as
GeoJSON, the accuracy table (a feature sink without geometry) and the report parameter.

Nothing here imports torch, rasterio or shapely; the metrics come from the worker, or from
engine/accuracy/metrics.py (numpy only) for object classification.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from qgis.core import (
    Qgis,
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsFeatureSink,
    QgsField,
    QgsFields,
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFileDestination,
    QgsProviderRegistry,
    QgsRectangle,
    QgsWkbTypes,
)

from .base import _enum, all_features, count, is_null, polygon_parts, tr, with_help

#: any vector layer, tables without geometry included
SOURCE_VECTOR = _enum(
    (Qgis, "ProcessingSourceType", "Vector"), (QgsProcessing, "SourceType", "TypeVector")
)
WKB_NO_GEOMETRY = _enum((Qgis, "WkbType", "NoGeometry"), (QgsWkbTypes, "Type", "NoGeometry"))
FAST_INSERT = _enum((QgsFeatureSink, "Flag", "FastInsert"), (QgsFeatureSink, "FastInsert"))


# --- class values --------------------------------------------------------------------------


def class_key(value):
    """A class value as it is compared: whole numbers (1, 1.0, '1') as int, other text
    stripped; None for NULL or empty."""
    if is_null(value):
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    text = str(value).strip()
    if not text:
        return None
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() else text


def field_index(source, name: str, param: str, what: str) -> int:
    """The index of field `name` of `source`; an error naming the layer's fields if absent."""
    if not name:
        raise QgsProcessingException(
            tr(f"Give the field of the {what} layer that holds the class values ({param}).")
        )
    index = source.fields().lookupField(name)
    if index < 0:
        fields = ", ".join(source.fields().names()) or "none"
        raise QgsProcessingException(
            tr(
                f"The {what} layer has no field '{name}' ({param}); its fields are: {fields}. "
                f"Set {param} to the field that holds the class values."
            )
        )
    return index


def names_from_field(source, value_index: int, name_field: str = "class_name") -> dict:
    """{class value (str): name} from a layer's name field beside its value field, if any."""
    name_index = source.fields().lookupField(name_field)
    if name_index < 0 or name_index == value_index:
        return {}
    names: dict[str, str] = {}
    for feature in source.getFeatures():
        attrs = feature.attributes()
        key, name = class_key(attrs[value_index]), attrs[name_index]
        if key is not None and not is_null(name) and str(key) not in names:
            names[str(key)] = str(name)
    return names


# --- polygons for the worker ---------------------------------------------------------------


def collect_polygons(
    source, index, transform, feedback, what: str, area=None, confidence: int | None = None
) -> tuple[list[dict], Counter]:
    """GeoJSON features (in the target CRS) of a polygon layer, with `class_value` (and
    `confidence`); skipped features counted by reason. `index` None: no class (a mask)."""
    features, skipped = [], Counter()
    total = source.featureCount() or 0
    for i, feature in enumerate(all_features(source)):
        if feedback.isCanceled():
            break
        if total:
            feedback.setProgress(100.0 * i / total)
        props = {}
        if index is not None:
            props["class_value"] = class_key(feature.attributes()[index])
            if props["class_value"] is None:
                skipped["without a class value"] += 1
                continue
        if confidence is not None:
            value = feature.attributes()[confidence]
            if is_null(value):
                skipped["without a confidence (counted as 1.0)"] += 1
                value = 1.0
            props["confidence"] = float(value)
        geom = feature.geometry()
        if geom is None or geom.isEmpty():
            skipped["without a geometry"] += 1
            continue
        if transform is not None:
            geom = type(geom)(geom)
            try:
                geom.transform(transform)
            except Exception:  # QgsCsException: a shape the transformation cannot take
                skipped["that cannot be reprojected"] += 1
                continue
        parts, _ = polygon_parts(geom)
        if not parts:
            skipped["without a valid polygon"] += 1
            continue
        if area is not None and not any(p.boundingBox().intersects(area) for p in parts):
            skipped["outside the area assessed"] += 1
            continue
        coords = [json.loads(p.asJson())["coordinates"] for p in parts]
        geometry = {"type": "MultiPolygon", "coordinates": coords}
        features.append({"type": "Feature", "geometry": geometry, "properties": props})
    if skipped:
        feedback.pushWarning(
            tr(
                f"Skipped {what} features: "
                + ", ".join(f"{n} {why}" for why, n in sorted(skipped.items()))
                + "."
            )
        )
    return features, skipped


def write_collection(path: Path, features: list[dict]) -> str:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), "utf-8")
    return str(path)


def layer_extent(source, transform) -> QgsRectangle:
    extent = QgsRectangle(source.sourceExtent())
    if transform is not None and not extent.isNull():
        extent = transform.transformBoundingBox(extent)
    return extent


# --- rasters -------------------------------------------------------------------------------


def raster_file(layer, param: str, what: str) -> str:
    """The file behind a raster layer (what the worker opens), with a CRS; else an error."""
    if layer is None:
        raise QgsProcessingException(tr(f"Could not load the {what} ({param})."))
    path = ""
    if layer.providerType() == "gdal":
        path = QgsProviderRegistry.instance().decodeUri("gdal", layer.source()).get("path")
    if not path or not (Path(path).is_file() or path.startswith("/vsi")):
        raise QgsProcessingException(
            tr(
                f"The {what} '{layer.name()}' ({layer.providerType()}: {layer.source()}) is not "
                "a file the worker can read. Save it as a GeoTIFF first (right-click the layer > "
                "Export > Save As) and use that file."
            )
        )
    if not layer.crs().isValid():
        raise QgsProcessingException(
            tr(
                f"The {what} '{path}' has no coordinate reference system, so it cannot be laid "
                "over the reference. Assign one (Raster > Projections > Assign Projection, or "
                "gdal_edit.py -a_srs EPSG:xxxx file.tif) and retry."
            )
        )
    return str(Path(path).absolute()) if Path(path).is_file() else path


def category_names(path: str) -> dict[str, str]:
    """{value: name} from a raster's category names (what Classify Pixels writes), if any."""
    try:
        from osgeo import gdal
    except ImportError:  # pragma: no cover - GDAL's Python is part of QGIS
        return {}
    try:
        ds = gdal.Open(path)
        band = ds.GetRasterBand(1) if ds is not None else None
        if band is not None:
            band.GetMetadata()  # GTiff reads the .aux.xml (where the names are) only now
        names = band.GetCategoryNames() if band is not None else None
    except RuntimeError:
        return {}
    return {str(i): str(n) for i, n in enumerate(names or []) if n and i > 0}


# --- outputs -------------------------------------------------------------------------------


def table_parameter(help_text: str) -> QgsProcessingParameterFeatureSink:
    return with_help(
        QgsProcessingParameterFeatureSink(
            "OUTPUT_ACCURACY_TABLE", tr("Accuracy table"), type=SOURCE_VECTOR
        ),
        help_text,
    )


def report_parameter() -> QgsProcessingParameterFileDestination:
    return with_help(
        QgsProcessingParameterFileDestination(
            "OUTPUT_ACCURACY_REPORT",
            tr("Accuracy report"),
            fileFilter=tr("HTML (*.html)"),
            optional=True,
            createByDefault=False,
        ),
        "An HTML page with the figures, the per-class table and (for classifications) the "
        "confusion matrix shaded by class. Empty: no report.",
    )


def report_path(alg, parameters, context) -> str | None:
    path = alg.parameterAsFileOutput(parameters, "OUTPUT_ACCURACY_REPORT", context)
    if not path:
        return None
    path = Path(path).absolute()
    if path.is_dir():
        raise QgsProcessingException(tr(f"The report '{path}' is a folder; give an .html file."))
    return str(path if path.suffix else path.with_suffix(".html"))


def make_field(name: str, kind: str, alias: str = "") -> QgsField:
    """A field of kind int, int64, string or double (QMetaType where QGIS takes it)."""
    if Qgis.QGIS_VERSION_INT >= 33800:
        from qgis.PyQt.QtCore import QMetaType

        t = QMetaType.Type
        types = {"int": t.Int, "int64": t.LongLong, "string": t.QString, "double": t.Double}
    else:
        from qgis.PyQt.QtCore import QVariant

        types = {
            "int": QVariant.Int,
            "int64": QVariant.LongLong,
            "string": QVariant.String,
            "double": QVariant.Double,
        }
    field = QgsField(name, types[kind])
    if alias:
        field.setAlias(alias)
    return field


def value_kind(labels) -> str:
    return "int" if all(isinstance(v, int) for v in labels) else "string"


def write_table(alg, parameters, context, fields: QgsFields, rows: list[list]) -> str:
    """The rows into the OUTPUT_ACCURACY_TABLE sink (created only now: a refused run leaves
    nothing); its destination id."""
    sink, dest_id = alg.parameterAsSink(
        parameters,
        "OUTPUT_ACCURACY_TABLE",
        context,
        fields,
        WKB_NO_GEOMETRY,
        QgsCoordinateReferenceSystem(),
    )
    if sink is None:
        raise QgsProcessingException(alg.invalidSinkError(parameters, "OUTPUT_ACCURACY_TABLE"))
    for row in rows:
        feature = QgsFeature(fields)
        feature.setAttributes(row)
        if not sink.addFeature(feature, FAST_INSERT):
            raise QgsProcessingException(
                tr(f"Could not write the accuracy table: {sink.lastError()}")
            )
    del sink
    return dest_id


def _column_names(labels) -> list[str]:
    names, seen = [], set()
    for value in labels:
        base = "c_" + re.sub(r"\W+", "_", str(value)).strip("_")[:40]
        name, n = base, 2
        while name.lower() in seen:
            name, n = f"{base}_{n}", n + 1
        seen.add(name.lower())
        names.append(name)
    return names


def confusion_table(summary: dict, names: dict) -> tuple[QgsFields, list[list]]:
    """A confusion matrix as table fields and rows: one row per reference class, a column
    c_<value> per predicted class (no_class: predicted nothing), the row total and the
    class's precision, recall, F1 and IoU; then a 'total' row with the column totals and the
    means (its iou is the mIoU)."""
    labels, matrix = summary["labels"], summary["matrix"]
    show_none = bool(summary.get("no_class"))
    fields = QgsFields()
    fields.append(make_field("class_value", value_kind(labels)))
    fields.append(make_field("class_name", "string"))
    for value, name in zip(labels, _column_names(labels), strict=True):
        fields.append(make_field(name, "int64", alias=names.get(str(value), str(value))))
    if show_none:
        fields.append(make_field("no_class", "int64", alias="no class"))
    fields.append(make_field("total", "int64"))
    for name in ("precision", "recall", "f1", "iou"):
        fields.append(make_field(name, "double"))
    rows = []
    for value, row, figures in zip(labels, matrix, summary["classes"], strict=True):
        counts = list(row) if show_none else list(row[:-1])
        rows.append(
            [
                value,
                names.get(str(value), str(value)),
                *counts,
                sum(row),
                *(figures[k] for k in ("precision", "recall", "f1", "iou")),
            ]
        )
    totals = [sum(r[j] for r in matrix) for j in range(len(labels) + 1)]
    rows.append(
        [
            None,
            "total",
            *(totals if show_none else totals[:-1]),
            summary["total"],
            summary["mean_precision"],
            summary["mean_recall"],
            summary["mean_f1"],
            summary["miou"],
        ]
    )
    return fields, rows


def pushed_summary(feedback, what: str, summary: dict) -> None:
    def short(v):
        return "–" if v is None else f"{v:.4g}"

    feedback.pushInfo(
        tr(
            f"{count(summary['total'], what)} compared: overall accuracy "
            f"{short(summary['overall_accuracy'])}, kappa {short(summary['kappa'])}, mIoU "
            f"{short(summary['miou'])}."
        )
    )
