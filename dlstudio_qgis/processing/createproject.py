"""dlstudio:createproject: a new project file on a raster, with its class schema."""

from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from ..core import Imagery, InferenceTool, Project, parse_classes
from .base import WKT1_GDAL, DlsAlgorithm, count, enum_codes, tr, user_parameter, with_help

SAMPLE_GEOMETRIES = ["POLYGON", "POINT"]


class CreateProject(DlsAlgorithm):
    NAME = "createproject"
    DISPLAY_NAME = "Create project"
    HELP = (
        "Creates a Deep Learning Studio project: one GeoPackage file holding the imagery "
        "reference, the class schema, the members and their roles, the work units, the "
        "training samples and the audit history. The creating user is the project's owner.\n\n"
        "The inference tool (Detect Objects, Classify Pixels or Classify Objects) is fixed at "
        "creation: it decides the shape of the samples (rectangles for Detect Objects, polygons "
        "for Classify Pixels, polygons or points for Classify Objects). The whole imagery "
        "extent starts as one work unit; divide it with Create work units.\n\n"
        "An existing file is never overwritten: choose a new file name."
    )

    def initAlgorithm(self, config=None):
        self.addParameter(
            with_help(
                QgsProcessingParameterString("NAME", tr("Project name")),
                "A name for the project, shown in the panels and reports.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterRasterLayer("INPUT_RASTER", tr("Imagery")),
                "The raster the samples are collected on. It must have a coordinate reference "
                "system; the project's work units and samples are stored in it.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterEnum(
                    "INFERENCE_TOOL",
                    tr("Inference tool"),
                    options=enum_codes(InferenceTool),
                    defaultValue="DETECT_OBJECTS",
                    usesStaticStrings=True,
                ),
                "What the trained model will do: DETECT_OBJECTS (bounding boxes), "
                "CLASSIFY_PIXELS (a class per pixel) or CLASSIFY_OBJECTS (a class per feature). "
                "Fixed once the project exists.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterString("CLASSES", tr("Classes")),
                "The class schema as value:name:colour items separated by commas, e.g. "
                "1:building:#ff0000,2:road:#0000ff. Values are positive integers (0 is no "
                "data); the colour is optional.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterEnum(
                    "SAMPLE_GEOMETRY",
                    tr("Sample geometry"),
                    options=SAMPLE_GEOMETRIES,
                    defaultValue="POLYGON",
                    optional=True,
                    usesStaticStrings=True,
                ),
                "POLYGON (default) or POINT. Only CLASSIFY_OBJECTS projects may collect "
                "points; the other tools need POLYGON.",
                advanced=True,
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterFileDestination(
                    "OUTPUT", tr("Project file"), fileFilter=tr("GeoPackage (*.gpkg *.GPKG)")
                ),
                "The new project file (.gpkg). It must not exist yet.",
            )
        )
        self.addParameter(user_parameter())

    def execute(self, parameters, context, feedback):
        name = self.parameterAsString(parameters, "NAME", context)
        layer = self.parameterAsRasterLayer(parameters, "INPUT_RASTER", context)
        if layer is None:
            raise QgsProcessingException(tr("Could not load the imagery (INPUT_RASTER)."))
        tool = self.parameterAsEnumString(parameters, "INFERENCE_TOOL", context)
        classes = parse_classes(self.parameterAsString(parameters, "CLASSES", context))
        geometry = self.parameterAsEnumString(parameters, "SAMPLE_GEOMETRY", context) or None
        output = self.parameterAsFileOutput(parameters, "OUTPUT", context)
        if not output:
            raise QgsProcessingException(tr("Give the new project file (OUTPUT)."))
        if Path(output).exists():
            raise QgsProcessingException(
                tr(f"'{output}' already exists. Choose another file name, or delete it first.")
            )
        crs = layer.crs()
        if not crs.isValid():
            raise QgsProcessingException(
                tr(
                    f"Raster '{layer.source()}' has no coordinate reference system. Assign one "
                    "(Raster > Projections > Assign Projection, or gdal_edit.py -a_srs EPSG:xxxx "
                    "file.tif) and retry."
                )
            )
        authid = crs.authid() or ""
        extent = layer.extent()
        imagery = Imagery(
            source=layer.source(),
            extent=(extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum()),
            width=layer.width(),
            height=layer.height(),
            crs_wkt=crs.toWkt(WKT1_GDAL),
            # USER: ids live in one machine's database; the WKT travels, the id would not
            crs_authid=authid if authid and not authid.upper().startswith("USER:") else None,
        )
        user = self.user(parameters, context)
        project = Project.create(
            output,
            name=name,
            inference_tool=tool,
            classes=classes,
            imagery=imagery,
            user=user,
            sample_geometry=geometry,
        )
        feedback.pushInfo(
            tr(
                f"Created project '{project.name}' ({tool}, "
                f"{count(len(classes), 'class', 'classes')}, samples "
                f"{project.info().sample_geometry}) in {output}; "
                f"owner '{user}'."
            )
        )
        for table in ("work_units", "training_samples"):
            details = QgsProcessingContext.LayerDetails(
                f"{project.name} {table.replace('_', ' ')}", context.project(), "OUTPUT"
            )
            details.forceName = True
            context.addLayerToLoadOnCompletion(f"{output}|layername={table}", details)
        return {"OUTPUT": output}
