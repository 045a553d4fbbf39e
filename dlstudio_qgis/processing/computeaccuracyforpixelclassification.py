"""dlstudio:computeaccuracyforpixelclassification: a classified raster against a reference.

QGIS checks the rasters and, for reference polygons, reprojects them to the classified
raster's CRS and hands them over as GeoJSON; the engine worker (`python -m
dlstudio_qgis.engine accuracy`) streams both window by window into a confusion matrix and
writes the report. The confusion table is written here.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from qgis.core import (
    QgsProcessingException,
    QgsProcessingMultiStepFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterRasterLayer,
    QgsRectangle,
)

from .. import settings
from ..engine.accuracy.job import AccuracyJob
from ..engine.protocol import EngineError
from .accuracysupport import (
    category_names,
    collect_polygons,
    confusion_table,
    field_index,
    pushed_summary,
    raster_file,
    report_parameter,
    report_path,
    table_parameter,
    write_collection,
    write_table,
)
from .base import SOURCE_POLYGON, DeepLearningAlgorithm, count, tr, transform_to_project
from .base import with_help as h
from .params import int_param
from .worker import WorkerCancelled, run_engine


class ComputeAccuracyForPixelClassification(DeepLearningAlgorithm):
    NAME = "computeaccuracyforpixelclassification"
    DISPLAY_NAME = "Compute accuracy for pixel classification"
    HELP = (
        "Judges a classified raster (e.g. the output of Classify pixels) against reference "
        "data: a confusion matrix (rows: the reference class; columns: the predicted class), "
        "overall accuracy, Cohen's kappa, and per class precision, recall, F1 and "
        "intersection over union (IoU), with their mean (mIoU).\n\n"
        "The reference is a raster of class values (REFERENCE_RASTER; any CRS and pixel "
        "size: it is resampled onto the classified raster's grid with nearest neighbour) or "
        "polygons with a class field (REFERENCE_FEATURES; any CRS: a pixel whose centre is "
        "inside a polygon takes its class). Give exactly one. Reference pixels of 0 or nodata "
        "are not counted; a classified 0 (or nodata) means no class and counts as a miss.\n\n"
        "The rasters are read window by window in the engine worker (the Python of the "
        "dlstudio/worker_python setting), so memory stays small however large they are."
    )

    def initAlgorithm(self, config=None):
        add = self.addParameter
        add(
            h(
                QgsProcessingParameterRasterLayer("CLASSIFIED_RASTER", tr("Classified raster")),
                "The raster of class values to judge (band 1; 0 = no class), with a CRS.",
            )
        )
        add(
            h(
                QgsProcessingParameterRasterLayer(
                    "REFERENCE_RASTER", tr("Reference raster"), optional=True
                ),
                "Reference class values (band 1; 0 or nodata = not counted), in any CRS and "
                "resolution. Or give REFERENCE_FEATURES instead.",
            )
        )
        add(
            h(
                QgsProcessingParameterFeatureSource(
                    "REFERENCE_FEATURES",
                    tr("Reference polygons"),
                    types=[SOURCE_POLYGON],
                    optional=True,
                ),
                "Reference polygons with a class field (REFERENCE_CLASS_FIELD), in any CRS. "
                "Or give REFERENCE_RASTER instead.",
            )
        )
        add(
            h(
                QgsProcessingParameterField(
                    "REFERENCE_CLASS_FIELD",
                    tr("Reference class field"),
                    defaultValue="class_value",
                    optional=True,
                    parentLayerParameterName="REFERENCE_FEATURES",
                ),
                "With REFERENCE_FEATURES: the field of class values (whole numbers as in the "
                "classified raster, or the raster's class names).",
            )
        )
        add(
            h(
                QgsProcessingParameterExtent("EXTENT", tr("Extent"), optional=True),
                "Only this part of the classified raster. Empty: all of it.",
            )
        )
        add(
            int_param(
                "WINDOW_SIZE",
                "Window size",
                1024,
                "Pixels per side of the windows "
                "read at a time (rounded to the raster's blocks); larger is a little "
                "faster and uses more memory.",
                minimum=16,
                advanced=True,
            )
        )
        add(
            table_parameter(
                "The confusion matrix as a table: a row per reference class, a column c_<value> "
                "per predicted class (no_class: pixels classified 0), the row total, and the "
                "class's precision, recall, f1 and iou; a last 'total' row holds the column totals "
                "and the means (mIoU in iou)."
            )
        )
        add(report_parameter())
        for name, label in (
            ("OVERALL_ACCURACY", "Overall accuracy"),
            ("MIOU", "Mean IoU"),
            ("KAPPA", "Kappa"),
        ):
            self.addOutput(QgsProcessingOutputNumber(name, tr(label)))

    def execute(self, parameters, context, feedback):
        steps = QgsProcessingMultiStepFeedback(3, feedback)
        layer = self.parameterAsRasterLayer(parameters, "CLASSIFIED_RASTER", context)
        classified = raster_file(layer, "CLASSIFIED_RASTER", "classified raster")
        crs = layer.crs()
        has_raster = bool(parameters.get("REFERENCE_RASTER"))
        has_features = bool(parameters.get("REFERENCE_FEATURES"))
        if has_raster == has_features:
            raise QgsProcessingException(
                tr(
                    "Give exactly one reference: a reference raster (REFERENCE_RASTER) or "
                    "reference polygons (REFERENCE_FEATURES), not "
                    f"{'both' if has_raster else 'neither'}."
                )
            )
        area = QgsRectangle(layer.extent())
        extent = self.parameterAsExtent(parameters, "EXTENT", context, crs)
        if not extent.isNull():
            area = area.intersect(extent)
            if area.isEmpty():
                raise QgsProcessingException(
                    tr("EXTENT does not overlap the classified raster; give an extent over it.")
                )
        report = report_path(self, parameters, context)
        names = category_names(classified)

        workdir = Path(tempfile.mkdtemp(prefix="dls-accuracy-"))
        try:
            reference = {}
            if has_raster:
                ref_layer = self.parameterAsRasterLayer(parameters, "REFERENCE_RASTER", context)
                reference["reference_raster"] = raster_file(
                    ref_layer, "REFERENCE_RASTER", "reference raster"
                )
            else:
                items = self._polygons(parameters, context, steps, crs, area, names)
                reference["reference_features"] = write_collection(
                    workdir / "reference.geojson", items
                )
            if steps.isCanceled():
                raise WorkerCancelled(tr("Cancelled while reading the reference."))
            job = AccuracyJob(
                tool="pixel_classification",
                classified=classified,
                **reference,
                extent=None
                if extent.isNull()
                else [area.xMinimum(), area.yMinimum(), area.xMaximum(), area.yMaximum()],
                window_size=self.parameterAsInt(parameters, "WINDOW_SIZE", context),
                classes=names,
                report=report,
                title="Pixel classification accuracy",
            )
            try:
                job.validate()
            except EngineError as exc:
                raise QgsProcessingException(str(exc)) from exc
            steps.setCurrentStep(1)
            steps.pushInfo(tr(f"Comparing the pixels in the worker ({settings.worker_python()})."))
            result = run_engine("accuracy", job.to_dict(), steps, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

        steps.setCurrentStep(2)
        fields, rows = confusion_table(result, names)
        dest_id = write_table(self, parameters, context, fields, rows)
        pushed_summary(steps, "pixel", result)
        if result.get("warped"):
            steps.pushInfo(
                tr(
                    "The reference raster was resampled onto the classified raster's "
                    "grid (nearest neighbour)."
                )
            )
        out = {
            "OUTPUT_ACCURACY_TABLE": dest_id,
            "OVERALL_ACCURACY": result["overall_accuracy"],
            "MIOU": result["miou"],
            "KAPPA": result["kappa"],
        }
        if report:
            out["OUTPUT_ACCURACY_REPORT"] = report
        return out

    def _polygons(self, parameters, context, feedback, crs, area, names) -> list[dict]:
        source = self.parameterAsSource(parameters, "REFERENCE_FEATURES", context)
        if source is None:
            raise QgsProcessingException(tr("Could not load the reference polygons."))
        index = field_index(
            source,
            self.parameterAsString(parameters, "REFERENCE_CLASS_FIELD", context),
            "REFERENCE_CLASS_FIELD",
            "reference",
        )
        transform = transform_to_project(
            source, crs, context, feedback, "reference", "classified raster"
        )
        items, skipped = collect_polygons(source, index, transform, feedback, "reference", area)
        by_name = {n.casefold(): int(v) for v, n in names.items()}
        for item in items:
            value = item["properties"]["class_value"]
            if isinstance(value, int):
                continue
            if str(value).casefold() not in by_name:
                known = ", ".join(f"{v} ({n})" for v, n in names.items()) or "none named"
                raise QgsProcessingException(
                    tr(
                        f"The reference class '{value}' is neither a whole number nor a class "
                        f"name of the classified raster (its classes: {known}). Give a field of "
                        "class values (REFERENCE_CLASS_FIELD)."
                    )
                )
            item["properties"]["class_value"] = by_name[str(value).casefold()]
        if not items:
            outside = skipped.get("outside the area assessed", 0)
            raise QgsProcessingException(
                tr(
                    "No reference polygon with a class value overlaps the classified raster (or "
                    f"EXTENT); {count(outside, 'polygon')} lie outside it. Check that both cover "
                    "the same place, and the layers' CRSs."
                )
            )
        return items
