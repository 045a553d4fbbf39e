"""Shared pieces of the Deep Learning Studio algorithms.

Thin over the core: read parameters, resolve layers and CRSs with QGIS, call the core, relay
its messages. Never imports torch, rasterio or shapely (they are not in QGIS's Python).
"""

from __future__ import annotations

import dataclasses
import html
import re
import sqlite3
from enum import Enum
from pathlib import Path

from qgis.core import (
    Qgis,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsExpression,
    QgsExpressionContext,
    QgsExpressionContextUtils,
    QgsFeature,
    QgsFeatureRequest,
    QgsGeometry,
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingFeatureSource,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
    QgsVectorLayer,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtGui import QIcon

from .. import settings
from ..core import DLStudioError, Project
from ..core.geometry import Geometry, from_wkb, to_wkb
from ..core.model import Sample, WorkUnit

try:  # QGIS 3 (PyQt5): a null QVariant; QGIS 4 uses None
    from qgis.core import NULL
except ImportError:  # pragma: no cover
    NULL = None

ICON_PATH = Path(__file__).resolve().parent.parent / "icons" / "icon.svg"


# --- enums: the scoped names of QGIS >= 3.36 (and 4) where they exist, else 3.22's ----------


def _enum(new: tuple, old: tuple):
    """Look up `new` (Qgis.X.Y) if this QGIS has it, else `old` (e.g. QgsProcessing.X.Y)."""
    for owner, *names in (new, old):
        obj = owner
        try:
            for name in names:
                obj = getattr(obj, name)
        except AttributeError:
            continue
        return obj
    raise AttributeError(f"no enum {new[1:]} or {old[1:]} in this QGIS")


FLAG_ADVANCED = _enum(
    (Qgis, "ProcessingParameterFlag", "Advanced"),
    (QgsProcessingParameterDefinition, "Flag", "FlagAdvanced"),
)
FLAG_OPTIONAL = _enum(
    (Qgis, "ProcessingParameterFlag", "Optional"),
    (QgsProcessingParameterDefinition, "Flag", "FlagOptional"),
)
SOURCE_POLYGON = _enum(
    (Qgis, "ProcessingSourceType", "VectorPolygon"),
    (QgsProcessing, "SourceType", "TypeVectorPolygon"),
)
SOURCE_POINT = _enum(
    (Qgis, "ProcessingSourceType", "VectorPoint"),
    (QgsProcessing, "SourceType", "TypeVectorPoint"),
)
NUMBER_DOUBLE = _enum(
    (Qgis, "ProcessingNumberParameterType", "Double"),
    (QgsProcessingParameterNumber, "Type", "Double"),
)
FILE_BEHAVIOR_FILE = _enum(
    (Qgis, "ProcessingFileParameterBehavior", "File"),
    (QgsProcessingParameterFile, "Behavior", "File"),
)
GEOM_POLYGON = _enum(
    (Qgis, "GeometryType", "Polygon"), (QgsWkbTypes, "GeometryType", "PolygonGeometry")
)
GEOM_POINT = _enum((Qgis, "GeometryType", "Point"), (QgsWkbTypes, "GeometryType", "PointGeometry"))
WKT1_GDAL = _enum(
    (Qgis, "CrsWktVariant", "Wkt1Gdal"),
    (QgsCoordinateReferenceSystem, "WktVariant", "WKT1_GDAL"),
)
SKIP_GEOMETRY_VALIDATION = _enum(
    (Qgis, "ProcessingFeatureSourceFlag", "SkipGeometryValidation"),
    (QgsProcessingFeatureSource, "Flag", "FlagSkipGeometryValidityChecks"),
)
NO_GEOMETRY = _enum(
    (Qgis, "FeatureRequestFlag", "NoGeometry"), (QgsFeatureRequest, "Flag", "NoGeometry")
)


def tr(text: str) -> str:
    return QCoreApplication.translate("DeepLearningStudio", text)


def count(n: int, singular: str, plural: str | None = None) -> str:
    """`1 sample`, `2 samples`."""
    return f"{n} {singular if n == 1 else plural or singular + 's'}"


def is_null(value) -> bool:
    """NULL attribute values: a null QVariant (QGIS 3, PyQt5) or None (QGIS 4)."""
    if value is None or value == NULL:
        return True
    return callable(getattr(value, "isNull", None)) and value.isNull()


# --- parameters ----------------------------------------------------------------------------


def with_help(param: QgsProcessingParameterDefinition, help_text: str, advanced: bool = False):
    """Attach a help string (shown by the Toolbox and `qgis_process help`), flag advanced."""
    param.setHelp(tr(help_text))
    if advanced:
        param.setFlags(param.flags() | FLAG_ADVANCED)
    return param


def project_parameter(help_text: str | None = None) -> QgsProcessingParameterFile:
    return with_help(
        QgsProcessingParameterFile(
            "PROJECT", tr("Project file"), behavior=FILE_BEHAVIOR_FILE, extension="gpkg"
        ),
        help_text or "The Deep Learning Studio project: the .gpkg file that Create project made.",
    )


def user_parameter() -> QgsProcessingParameterString:
    return with_help(
        QgsProcessingParameterString("USER", tr("Act as user"), defaultValue="", optional=True),
        "The user name to act as. Empty: the QGIS setting dlstudio/user if set, else "
        "$DLSTUDIO_USER, else the operating-system user name. A local file cannot stop "
        "someone who edits it directly: roles guard against mistakes, not attacks.",
        advanced=True,
    )


def enum_codes(enum_cls) -> list[str]:
    return [m.name for m in enum_cls]


# --- the base class ------------------------------------------------------------------------


class DlsAlgorithm(QgsProcessingAlgorithm):
    """Base of every Deep Learning Studio algorithm.

    Subclasses set NAME, DISPLAY_NAME and HELP, define initAlgorithm and implement `execute`,
    which returns the results dict; core errors become QgsProcessingException.
    """

    NAME = ""
    DISPLAY_NAME = ""
    HELP = ""

    def name(self) -> str:
        return self.NAME

    def displayName(self) -> str:
        return tr(self.DISPLAY_NAME)

    def group(self) -> str:
        return tr("Project")

    def groupId(self) -> str:
        return "project"

    def icon(self) -> QIcon:
        return QIcon(str(ICON_PATH))

    def svgIconPath(self) -> str:
        return str(ICON_PATH)

    def createInstance(self):
        return type(self)()

    def shortDescription(self) -> str:
        return tr(self.HELP.split("\n\n")[0])

    def shortHelpString(self) -> str:
        """The algorithm's help, then each parameter's help (so every QGIS version shows it)."""
        esc = html.escape
        paras = "".join(f"<p>{esc(tr(p))}</p>" for p in self.HELP.split("\n\n") if p.strip())
        items = [
            f"<dt><b>{esc(p.description())}</b> <code>{p.name()}</code></dt>"
            f"<dd>{esc(p.help())}</dd>"
            for p in self.parameterDefinitions()
            if p.help()
        ]
        if items:
            paras += f"<h3>{tr('Parameters')}</h3><dl>{''.join(items)}</dl>"
        return paras

    def processAlgorithm(self, parameters, context, feedback):
        try:
            return self.execute(parameters, context, feedback)
        except DLStudioError as exc:
            raise QgsProcessingException(str(exc)) from exc
        except sqlite3.Error as exc:  # e.g. locked longer than the busy timeout
            raise QgsProcessingException(
                tr(
                    f"The project file could not be read or written: {exc}. Try again; if it "
                    "persists, check that the file is on a local disk and not read-only."
                )
            ) from exc

    def execute(self, parameters, context, feedback) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    # --- helpers for subclasses ------------------------------------------------------------

    def user(self, parameters, context) -> str:
        return resolve_user(self.parameterAsString(parameters, "USER", context))

    def open_project(self, parameters, context, feedback) -> Project:
        path = self.parameterAsFile(parameters, "PROJECT", context)
        if not path:
            raise QgsProcessingException(tr("Give the project file (PROJECT)."))
        project = Project.open(path, self.user(parameters, context))
        for warning in project.warnings:
            feedback.pushWarning(warning)
        feedback.pushInfo(tr(f"Project '{project.name}' ({path}), acting as '{project.user}'."))
        return project


class DeepLearningAlgorithm(DlsAlgorithm):
    """Base of the algorithms that run the engine worker (export, train, inference)."""

    def group(self) -> str:
        return tr("Deep learning")

    def groupId(self) -> str:
        return "deeplearning"


def resolve_user(value: str | None) -> str:
    """USER if given, else the QGIS setting dlstudio/user, else core's current_user()."""
    return (value or "").strip() or settings.user_name()


# --- CRS and geometry ----------------------------------------------------------------------


def project_crs(project: Project) -> QgsCoordinateReferenceSystem:
    imagery = project.info().imagery
    crs = QgsCoordinateReferenceSystem()
    if imagery.crs_authid:
        crs = QgsCoordinateReferenceSystem(imagery.crs_authid)
    if not crs.isValid() and imagery.crs_wkt:
        crs = QgsCoordinateReferenceSystem.fromWkt(imagery.crs_wkt)
    if not crs.isValid():
        raise QgsProcessingException(
            tr(
                f"The CRS of project '{project.name}' cannot be read by QGIS "
                f"({imagery.crs_authid or 'custom WKT'})."
            )
        )
    return crs


def transform_to_project(source, crs, context, feedback, what: str, target: str = "project"):
    """A transform from `source`'s CRS to `crs` (the project's, or the `target`'s), or None
    when none is needed. A layer without a CRS is taken to be in `crs`, with a warning.
    """
    if not source.sourceCrs().isValid():
        feedback.pushWarning(
            tr(
                f"The {what} layer has no CRS; assuming the {target}'s CRS "
                f"({crs.authid() or crs.description()})."
            )
        )
        return None
    if source.sourceCrs() == crs:
        return None
    return QgsCoordinateTransform(source.sourceCrs(), crs, context.transformContext())


def worker_raster_path(layer, without_crs: str) -> str:
    """The file of a raster layer that the worker can open, which must have a CRS;
    `without_crs` says what a missing CRS prevents (e.g. "the samples cannot be placed on
    it")."""
    from qgis.core import QgsProviderRegistry

    path = ""
    if layer.providerType() == "gdal":
        path = QgsProviderRegistry.instance().decodeUri("gdal", layer.source()).get("path") or ""
    if not path or not (Path(path).is_file() or path.startswith("/vsi")):
        raise QgsProcessingException(
            tr(f"The raster '{layer.name()}' ({layer.providerType()}: {layer.source()}) is "
               "not a file the worker can read. Export it to a GeoTIFF first (right-click the "
               "layer > Export > Save As) and use that file.")
        )  # fmt: skip
    if not layer.crs().isValid():
        raise QgsProcessingException(
            tr(f"The raster '{path}' has no coordinate reference system, so {without_crs}. "
               "Assign one (Raster > Projections > Assign Projection, or gdal_edit.py -a_srs "
               "EPSG:xxxx file.tif) and retry.")
        )  # fmt: skip
    return str(Path(path).absolute()) if Path(path).is_file() else path


def straight(geom: QgsGeometry) -> QgsGeometry:
    """Curves segmentized, so the core's WKB reader gets points and polygons only."""
    if QgsWkbTypes.isCurvedType(geom.wkbType()):
        geom = QgsGeometry(geom.constGet().segmentize())
    return geom


def to_core(geom: QgsGeometry) -> list[Geometry]:
    """A QGIS geometry as core Geometry objects (multi-parts exploded, Z/M dropped)."""
    return from_wkb(bytes(straight(geom).asWkb().data()))


def polygon_parts(geom: QgsGeometry) -> tuple[list[QgsGeometry], bool]:
    """The valid polygon parts of `geom` (repaired with makeValid if needed), and whether
    it was repaired. An empty list means it could not be turned into polygons."""
    geom = straight(geom)
    repaired = False
    if not geom.isGeosValid():
        geom = geom.makeValid()
        repaired = True
    parts = []
    for part in geom.asGeometryCollection():
        if part.type() != GEOM_POLYGON or part.isEmpty() or part.area() <= 0:
            continue
        part.removeDuplicateNodes()
        if not part.isGeosValid():
            return [], repaired
        parts.append(part)
    return parts, repaired


def all_features(source):
    """Every feature, invalid ones too: the algorithms repair them (makeValid) themselves."""
    return source.getFeatures(QgsFeatureRequest(), SKIP_GEOMETRY_VALIDATION)


def point_parts(geom: QgsGeometry) -> list[QgsGeometry]:
    return [p for p in geom.asGeometryCollection() if p.type() == GEOM_POINT and not p.isEmpty()]


# --- id lists and expressions --------------------------------------------------------------

_ID_LIST = re.compile(r"\s*\d+(\s*-\s*\d+)?(\s*,\s*\d+(\s*-\s*\d+)?)*\s*,?\s*")
MAX_IDS = 1_000_000


def parse_id_list(text: str) -> list[int]:
    """`1,3,5-8` -> [1, 3, 5, 6, 7, 8] (order kept, duplicates dropped)."""
    ids: list[int] = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        if "-" in item:
            a, b = (int(x) for x in item.split("-"))
            if b < a:
                raise QgsProcessingException(
                    tr(f"Id range '{item}' runs backwards; write {b}-{a}.")
                )
            if b - a >= MAX_IDS:
                raise QgsProcessingException(tr(f"Id range '{item}' is too long."))
            ids.extend(range(a, b + 1))
        else:
            ids.append(int(item))
    return list(dict.fromkeys(ids))


def select_ids(project: Project, table: str, text: str, what: str, context) -> list[int] | None:
    """Ids from `1,3,5-8`, or the fids of the features of `table` matching a QGIS expression.

    Returns None when an expression matched nothing (not an error: there may be nothing to do).
    """
    text = (text or "").strip()
    if not text:
        raise QgsProcessingException(
            tr(
                f"Say which {what}s: ids like 1,3,5-8, or a QGIS expression on the {table} "
                "layer, e.g. \"status\" = 'in_progress'."
            )
        )
    if _ID_LIST.fullmatch(text):
        return parse_id_list(text)
    expr = QgsExpression(text)
    if expr.hasParserError():
        raise QgsProcessingException(
            tr(
                f"'{text}' is neither a list of {what} ids (like 1,3,5-8) nor a valid QGIS "
                f"expression: {' '.join(expr.parserErrorString().split())}."
            )
        )
    layer = records_layer(project, table)
    ectx = QgsExpressionContext(context.expressionContext())
    ectx.appendScope(QgsExpressionContextUtils.layerScope(layer))
    if not expr.prepare(ectx):
        fields = ", ".join(layer.fields().names())
        raise QgsProcessingException(
            tr(
                f"Expression '{text}' cannot be evaluated on the {table} layer: "
                f"{expr.evalErrorString()}. Its fields are: {fields}."
            )
        )
    ids = []
    fid_index = layer.fields().lookupField("fid")
    for feature in layer.getFeatures():
        ectx.setFeature(feature)
        value = expr.evaluate(ectx)
        fid = int(feature.attributes()[fid_index])
        if expr.hasEvalError():
            raise QgsProcessingException(
                tr(f"Expression '{text}' failed on {what} {fid}: {expr.evalErrorString()}")
            )
        if not is_null(value) and bool(value):
            ids.append(fid)
    return ids or None


_INT_FIELDS = {"fid", "class_value", "work_unit"}


def records_layer(project: Project, table: str) -> QgsVectorLayer:
    """The project's work_units or training_samples as a memory layer, read through the core.

    Expressions are evaluated on this copy rather than on an OGR layer of the file: QGIS's
    OGR provider opens a GeoPackage for update and resets its journal mode when it closes it,
    which would change a project file that is only being read.
    """
    if table == "work_units":
        records = project.work_units()
        geom_type, names = "Polygon", [f.name for f in dataclasses.fields(WorkUnit)]
    elif table == "training_samples":
        records = project.samples()
        names = [f.name for f in dataclasses.fields(Sample)]
        geom_type = "Point" if project.info().sample_geometry == "POINT" else "Polygon"
    else:  # pragma: no cover - programming error
        raise ValueError(table)
    names = [n for n in names if n != "geometry"]
    spec = "&".join(f"field={n}:{'integer' if n in _INT_FIELDS else 'string'}" for n in names)
    layer = QgsVectorLayer(f"{geom_type}?{spec}", table, "memory")
    layer.setCrs(project_crs(project))
    features = []
    for record in records:
        feature = QgsFeature(layer.fields())
        values = [getattr(record, n) for n in names]
        feature.setAttributes([v.value if isinstance(v, Enum) else v for v in values])
        geom = QgsGeometry()
        geom.fromWkb(to_wkb(record.geometry))
        feature.setGeometry(geom)
        features.append(feature)
    layer.dataProvider().addFeatures(features)
    return layer
