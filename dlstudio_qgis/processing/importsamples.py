"""dlstudio:importsamples: import training samples from a vector layer, all or nothing."""

from __future__ import annotations

from qgis.core import (
    QgsCsException,
    QgsGeometry,
    QgsProcessingException,
    QgsProcessingMultiStepFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsWkbTypes,
)

from ..core import InferenceTool, rectangle
from .base import (
    GEOM_POINT,
    GEOM_POLYGON,
    SOURCE_POINT,
    SOURCE_POLYGON,
    DlsAlgorithm,
    all_features,
    count,
    is_null,
    point_parts,
    polygon_parts,
    project_crs,
    project_parameter,
    to_core,
    tr,
    transform_to_project,
    user_parameter,
    with_help,
)


class ImportSamples(DlsAlgorithm):
    NAME = "importsamples"
    DISPLAY_NAME = "Import training samples"
    HELP = (
        "Imports training samples from a point or polygon layer into the project, all or "
        "nothing: if any feature is unusable (an unknown class, a polygon that cannot be "
        "repaired, a sample outside the imagery) nothing is imported and the error says which.\n\n"
        "The layer may be in any CRS: it is reprojected to the project's CRS. Invalid polygons "
        "are repaired (makeValid) and reported, multi-part features become one sample per part, "
        "and for a Detect Objects project each polygon becomes its bounding rectangle. Each "
        "sample goes to the work unit that holds its centroid; the first sample in a Queued "
        "work unit makes it In progress. Samples start Pending approval.\n\n"
        "The class field may hold class values (1, 2 ...) or class names (building, road ...)."
    )

    def initAlgorithm(self, config=None):
        self.addParameter(project_parameter())
        self.addParameter(
            with_help(
                QgsProcessingParameterFeatureSource(
                    "INPUT", tr("Samples layer"), types=[SOURCE_POLYGON, SOURCE_POINT]
                ),
                "The samples: polygons, or points for a Classify Objects project created with "
                "point samples. Any CRS.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterField(
                    "CLASS_FIELD", tr("Class field"), parentLayerParameterName="INPUT"
                ),
                "The field of INPUT holding each sample's class: a class value of the "
                "project's schema or a class name (case does not matter).",
            )
        )
        self.addParameter(user_parameter())
        self.addOutput(QgsProcessingOutputNumber("IMPORTED", tr("Samples imported")))

    def execute(self, parameters, context, feedback):
        steps = QgsProcessingMultiStepFeedback(2, feedback)
        project = self.open_project(parameters, context, steps)
        source = self.parameterAsSource(parameters, "INPUT", context)
        if source is None:
            raise QgsProcessingException(tr("Could not load the samples layer (INPUT)."))
        field = self.parameterAsString(parameters, "CLASS_FIELD", context)
        index = source.fields().lookupField(field)
        if index < 0:
            raise QgsProcessingException(
                tr(
                    f"The samples layer has no field '{field}'; its fields are: "
                    f"{', '.join(source.fields().names())}."
                )
            )
        info = project.info()
        want_points = info.sample_geometry == "POINT"
        gtype = QgsWkbTypes.geometryType(source.wkbType())
        if want_points and gtype != GEOM_POINT:
            raise QgsProcessingException(
                tr(f"Project '{info.name}' collects point samples; give a point layer.")
            )
        if not want_points and gtype != GEOM_POLYGON:
            raise QgsProcessingException(
                tr(f"Project '{info.name}' collects polygon samples; give a polygon layer.")
            )
        detect = info.inference_tool is InferenceTool.DETECT_OBJECTS

        crs = project_crs(project)
        transform = transform_to_project(source, crs, context, steps, "samples")

        total = source.featureCount() or 0
        items, refused, no_class, empty = [], [], [], 0
        repaired = boxed = 0
        for i, feature in enumerate(all_features(source)):
            if steps.isCanceled():
                return {}
            if total > 0:
                steps.setProgress(100.0 * i / total)
            geom = QgsGeometry(feature.geometry())
            if geom.isNull() or geom.isEmpty():
                empty += 1
                continue
            value = feature.attributes()[index]
            if is_null(value) or str(value).strip() == "":
                no_class.append(feature.id())
                continue
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            elif not isinstance(value, int):
                value = str(value).strip()
            if transform is not None:
                try:
                    geom.transform(transform)
                except QgsCsException as exc:
                    raise QgsProcessingException(
                        tr(
                            f"Feature {feature.id()} cannot be reprojected to the project's CRS: "
                            f"{exc}. Nothing was imported."
                        )
                    ) from exc
            if want_points:
                parts = point_parts(geom)
            else:
                parts, was_repaired = polygon_parts(geom)
                repaired += was_repaired
            if not parts:
                refused.append(feature.id())
                continue
            for part in parts:
                for g in to_core(part):
                    if detect and not g.is_rectangle():
                        g = rectangle(*g.bounds())
                        boxed += 1
                    items.append((g, value))

        _refuse(no_class, "without a class value", "Fill the class field")
        _refuse(
            refused,
            "with a geometry that could not be repaired",
            "Fix them (Processing: Fix geometries)",
        )
        if empty:
            steps.pushWarning(tr(f"Skipped {count(empty, 'feature')} without a geometry."))
        if repaired:
            steps.pushWarning(tr(f"Repaired {count(repaired, 'invalid polygon')} (makeValid)."))
        if boxed:
            steps.pushInfo(
                tr(
                    f"Converted {count(boxed, 'polygon')} to bounding rectangles (Detect Objects "
                    "samples are rectangles)."
                )
            )
        if not items:
            raise QgsProcessingException(tr("The samples layer has no features to import."))

        steps.setCurrentStep(1)
        ids = project.add_samples(items, source=source.sourceName())
        steps.setProgress(100)
        steps.pushInfo(tr(f"Imported {count(len(ids), 'sample')} from {source.sourceName()}."))
        return {"IMPORTED": len(ids)}


def _refuse(fids: list, problem: str, fix: str) -> None:
    if not fids:
        return
    shown = ", ".join(str(f) for f in fids[:10]) + (" ..." if len(fids) > 10 else "")
    raise QgsProcessingException(
        tr(
            f"{count(len(fids), 'feature')} {problem} ({shown}); nothing was imported. {fix} "
            "and retry."
        )
    )
