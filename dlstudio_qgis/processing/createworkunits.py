"""dlstudio:createworkunits: divide the imagery into work units (a grid, or polygons)."""

from __future__ import annotations

from qgis.core import (
    QgsCsException,
    QgsGeometry,
    QgsProcessingException,
    QgsProcessingMultiStepFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterNumber,
    QgsRectangle,
)

from .base import (
    NUMBER_DOUBLE,
    SOURCE_POLYGON,
    DlsAlgorithm,
    all_features,
    count,
    polygon_parts,
    project_crs,
    project_parameter,
    to_core,
    tr,
    transform_to_project,
    user_parameter,
    with_help,
)

CELL_UNITS = ["MAP_UNITS", "PIXELS"]


class CreateWorkUnits(DlsAlgorithm):
    NAME = "createworkunits"
    DISPLAY_NAME = "Create work units"
    HELP = (
        "Replaces the project's work units: the areas that sample collectors label one at a "
        "time. Give either a cell size, for a grid over the imagery starting at its top-left "
        "corner, or a polygon layer (in any CRS: it is reprojected to the project's CRS, "
        "invalid polygons are repaired, multi-part polygons become one work unit per part, "
        "and everything is clipped to the imagery extent).\n\n"
        "Owners and analysts may do this, and only before any sample is collected."
    )

    def initAlgorithm(self, config=None):
        self.addParameter(project_parameter())
        self.addParameter(
            with_help(
                QgsProcessingParameterNumber(
                    "CELL_SIZE",
                    tr("Grid cell size"),
                    type=NUMBER_DOUBLE,
                    optional=True,
                    minValue=0.0,
                ),
                "The side of each square grid cell, in CELL_UNITS. Leave empty when giving "
                "POLYGONS.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterEnum(
                    "CELL_UNITS",
                    tr("Cell size units"),
                    options=CELL_UNITS,
                    defaultValue="MAP_UNITS",
                    usesStaticStrings=True,
                ),
                "MAP_UNITS: the units of the project's CRS (e.g. metres); PIXELS: imagery pixels.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterFeatureSource(
                    "POLYGONS", tr("Work unit polygons"), types=[SOURCE_POLYGON], optional=True
                ),
                "A polygon layer whose features become the work units (any CRS). Leave empty "
                "when giving CELL_SIZE.",
            )
        )
        self.addParameter(user_parameter())
        self.addOutput(QgsProcessingOutputNumber("COUNT", tr("Work units created")))

    def execute(self, parameters, context, feedback):
        cell = parameters.get("CELL_SIZE")
        has_cell = cell is not None and str(cell).strip() not in ("", "None", "NULL")
        source = self.parameterAsSource(parameters, "POLYGONS", context)
        if has_cell == (source is not None):
            raise QgsProcessingException(
                tr("Give exactly one of CELL_SIZE (a grid) or POLYGONS (a polygon layer).")
            )
        steps = QgsProcessingMultiStepFeedback(2, feedback)
        project = self.open_project(parameters, context, steps)
        if has_cell:
            size = self.parameterAsDouble(parameters, "CELL_SIZE", context)
            units = self.parameterAsEnumString(parameters, "CELL_UNITS", context) or "MAP_UNITS"
            steps.setCurrentStep(1)
            ids = project.create_grid_work_units(
                size, units="pixels" if units == "PIXELS" else "map"
            )
            steps.pushInfo(
                tr(f"Created a grid of {count(len(ids), 'work unit')} ({size:g} {units}).")
            )
            return {"COUNT": len(ids)}

        polygons, names = self.read_polygons(source, project, context, steps)
        if steps.isCanceled():
            return {}
        steps.setCurrentStep(1)
        ids = project.create_work_units(polygons, names)
        steps.pushInfo(tr(f"Created {count(len(ids), 'work unit')} from {source.sourceName()}."))
        return {"COUNT": len(ids)}

    def read_polygons(self, source, project, context, feedback):
        crs = project_crs(project)
        xmin, ymin, xmax, ymax = project.info().imagery.extent
        clip = QgsGeometry.fromRect(QgsRectangle(xmin, ymin, xmax, ymax))
        transform = transform_to_project(source, crs, context, feedback, "polygon")
        total = source.featureCount() or 0
        polygons, names, repaired, refused, outside, empty = [], [], 0, [], 0, 0
        for i, feature in enumerate(all_features(source)):
            if feedback.isCanceled():
                break
            if total > 0:
                feedback.setProgress(100.0 * i / total)
            geom = QgsGeometry(feature.geometry())
            if geom.isNull() or geom.isEmpty():
                empty += 1
                continue
            if transform is not None:
                try:
                    geom.transform(transform)
                except QgsCsException as exc:
                    raise QgsProcessingException(
                        tr(
                            f"Feature {feature.id()} cannot be reprojected to the project's CRS: "
                            f"{exc}."
                        )
                    ) from exc
            parts, was_repaired = polygon_parts(geom)
            if not parts:
                refused.append(feature.id())
                continue
            repaired += was_repaired
            kept = 0
            for part in parts:
                inside = part.intersection(clip)
                for piece in inside.asGeometryCollection():
                    if piece.area() <= 0:
                        continue
                    for core_geom in to_core(piece):
                        if core_geom.is_point:
                            continue
                        polygons.append(core_geom)
                        names.append(None)
                        kept += 1
            if not kept:
                outside += 1
        if refused:
            shown = ", ".join(str(f) for f in refused[:10]) + (" ..." if len(refused) > 10 else "")
            raise QgsProcessingException(
                tr(
                    f"Invalid polygons that could not be repaired: {len(refused)} (features "
                    f"{shown}); nothing was changed. Fix them (Processing: Fix geometries) and "
                    "retry."
                )
            )
        if repaired:
            feedback.pushWarning(tr(f"Repaired {count(repaired, 'invalid polygon')} (makeValid)."))
        if empty:
            feedback.pushWarning(tr(f"Skipped {count(empty, 'feature')} without a geometry."))
        if outside:
            feedback.pushInfo(tr(f"Skipped {count(outside, 'feature')} outside the imagery."))
        if not polygons:
            raise QgsProcessingException(
                tr(
                    f"None of the polygons of {source.sourceName()} overlaps the project imagery "
                    f"({xmin:.6g}, {ymin:.6g}) - ({xmax:.6g}, {ymax:.6g}) in "
                    f"{crs.authid() or crs.description()}. Check the layer's CRS and extent."
                )
            )
        return polygons, names
