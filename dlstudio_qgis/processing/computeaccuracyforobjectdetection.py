"""dlstudio:computeaccuracyforobjectdetection: detected objects judged against ground truth.

QGIS reads the two layers (and the mask), reprojects the ground truth and the mask to the
detections' CRS and hands them to the engine worker (`python -m dlstudio_qgis.engine
accuracy`) as GeoJSON; the worker matches the objects (polygon IoU), computes precision,
recall, F1 and average precision per class, and writes the report. The table is written here.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from qgis.core import (
    QgsFields,
    QgsProcessingException,
    QgsProcessingMultiStepFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterNumber,
)

from .. import settings
from ..engine.accuracy.job import AccuracyJob
from ..engine.protocol import EngineError
from .accuracysupport import (
    collect_polygons,
    field_index,
    make_field,
    names_from_field,
    report_parameter,
    report_path,
    table_parameter,
    value_kind,
    write_collection,
    write_table,
)
from .base import (
    NUMBER_DOUBLE,
    SOURCE_POLYGON,
    DeepLearningAlgorithm,
    count,
    tr,
    transform_to_project,
    with_help,
)
from .worker import WorkerCancelled, run_engine

#: the accuracy table's figures: (field, kind, alias, key in the worker's class rows)
COLUMNS = [
    ("precision", "double", "Precision", "precision"),
    ("recall", "double", "Recall", "recall"),
    ("f1", "double", "F1 score", "f1"),
    ("ap", "double", "Average precision (mAP on the 'all' row)", "ap"),
    ("tp", "int", "True positives", "tp"),
    ("fp", "int", "False positives", "fp"),
    ("fn", "int", "False negatives", "fn"),
    ("ground_truth", "int", "Ground-truth objects", "ground_truth"),
    ("detections", "int", "Detected objects", "detections"),
]


class ComputeAccuracyForObjectDetection(DeepLearningAlgorithm):
    NAME = "computeaccuracyforobjectdetection"
    DISPLAY_NAME = "Compute accuracy for object detection"
    HELP = (
        "Judges detected objects (e.g. the output of Detect objects) against ground-truth "
        "objects: per class precision, recall, F1 and average precision (AP), and over all "
        "classes the mean average precision (mAP) and the precision, recall and F1 of all "
        "objects together.\n\n"
        "Classes are matched by value. Within a class, detections are taken by decreasing "
        "confidence and each is matched to the unmatched ground-truth object of its class "
        "with the highest intersection over union (IoU) of at least MIN_IOU: a true "
        "positive. Unmatched detections are false positives, unmatched ground truth false "
        "negatives. IoU is computed on the polygons, so outlines (Mask R-CNN) count as well as "
        "boxes. AP is the PASCAL VOC all-point average precision; mAP averages it over the "
        "classes that have ground truth. A ratio with nothing to divide by (the precision of "
        "a class never detected) is left empty.\n\n"
        "The ground truth and the mask may be in any CRS: they are reprojected to the "
        "detections'. The matching runs in the engine worker (the Python of the "
        "dlstudio/worker_python setting)."
    )

    def initAlgorithm(self, config=None):
        add = self.addParameter
        add(
            with_help(
                QgsProcessingParameterFeatureSource(
                    "DETECTED_FEATURES", tr("Detected objects"), types=[SOURCE_POLYGON]
                ),
                "The detected objects: polygons with a class value and a confidence, e.g. the "
                "output of Detect objects (class_value, class_name, confidence).",
            )
        )
        add(
            with_help(
                QgsProcessingParameterFeatureSource(
                    "GROUND_TRUTH_FEATURES", tr("Ground truth"), types=[SOURCE_POLYGON]
                ),
                "The reference objects: polygons with a class value, in any CRS.",
            )
        )
        add(
            _field(
                "DETECTED_CLASS_VALUE_FIELD",
                "Detected class value field",
                "DETECTED_FEATURES",
                "class_value",
                "The field of the detections holding their class value.",
            )
        )
        add(
            _field(
                "GROUND_TRUTH_CLASS_VALUE_FIELD",
                "Ground truth class value field",
                "GROUND_TRUTH_FEATURES",
                "class_value",
                "The field of the ground truth holding its class value; classes are "
                "matched by value (1, 1.0 and '1' are the same class).",
            )
        )
        add(
            _field(
                "DETECTED_CONFIDENCE_FIELD",
                "Detection confidence field",
                "DETECTED_FEATURES",
                "confidence",
                "The field holding each detection's confidence (the order in which "
                "detections are matched). Empty or absent: every detection counts as "
                "1.0 and they are taken in layer order.",
            )
        )
        iou = QgsProcessingParameterNumber(
            "MIN_IOU", tr("Minimum IoU"), NUMBER_DOUBLE, 0.5, minValue=0.0, maxValue=1.0
        )
        add(
            with_help(
                iou,
                "The intersection over union, in (0, 1], that a detection needs "
                "with a ground-truth object to count as finding it.",
            )
        )
        add(
            with_help(
                QgsProcessingParameterFeatureSource(
                    "MASK_FEATURES", tr("Mask"), types=[SOURCE_POLYGON], optional=True
                ),
                "Only objects (detected or ground truth) whose centre lies inside these polygons "
                "count, e.g. the area that was labelled. Any CRS.",
            )
        )
        add(
            table_parameter(
                "A table without geometry: one row per class (class_value, class_name, precision, "
                "recall, f1, ap, tp, fp, fn, ground_truth, detections) and an 'all' row with the "
                "mAP (in ap) and the precision, recall and F1 of all objects together."
            )
        )
        add(report_parameter())
        for name, label in (
            ("MAP", "Mean average precision (mAP)"),
            ("PRECISION", "Precision"),
            ("RECALL", "Recall"),
            ("F1", "F1 score"),
        ):
            self.addOutput(QgsProcessingOutputNumber(name, tr(label)))

    def execute(self, parameters, context, feedback):
        steps = QgsProcessingMultiStepFeedback(3, feedback)
        dets = self._source(parameters, "DETECTED_FEATURES", context, "detections")
        gts = self._source(parameters, "GROUND_TRUTH_FEATURES", context, "ground truth")
        d_index = field_index(
            dets,
            self._s(parameters, "DETECTED_CLASS_VALUE_FIELD", context),
            "DETECTED_CLASS_VALUE_FIELD",
            "detections",
        )
        g_index = field_index(
            gts,
            self._s(parameters, "GROUND_TRUTH_CLASS_VALUE_FIELD", context),
            "GROUND_TRUTH_CLASS_VALUE_FIELD",
            "ground truth",
        )
        c_index = self._confidence(dets, parameters, context, steps)
        min_iou = self.parameterAsDouble(parameters, "MIN_IOU", context)
        if not 0 < min_iou <= 1:
            raise QgsProcessingException(tr(f"MIN_IOU is in (0, 1], not {min_iou}."))
        report = report_path(self, parameters, context)
        mask = None
        if parameters.get("MASK_FEATURES"):
            mask = self._source(parameters, "MASK_FEATURES", context, "mask")

        crs = dets.sourceCrs()
        if not crs.isValid() and gts.sourceCrs().isValid():
            steps.pushWarning(
                tr(
                    "The detections layer has no CRS; assuming the ground "
                    f"truth's ({gts.sourceCrs().authid()})."
                )
            )
            crs = gts.sourceCrs()

        def transform(source, what):
            if not crs.isValid():
                return None
            return transform_to_project(source, crs, context, steps, what, "detections")

        detections, _ = collect_polygons(
            dets, d_index, None, steps, "detection", confidence=c_index
        )
        truth, skipped = collect_polygons(
            gts, g_index, transform(gts, "ground truth"), steps, "ground truth"
        )
        mask_items = None
        if mask is not None:
            mask_items, _ = collect_polygons(mask, None, transform(mask, "mask"), steps, "mask")
        if steps.isCanceled():
            raise WorkerCancelled(tr("Cancelled while reading the layers."))
        if not truth:
            why = f" ({', '.join(f'{n} {w}' for w, n in skipped.items())})" if skipped else ""
            raise QgsProcessingException(
                tr(
                    f"The ground-truth layer has no polygon with a class value{why}, so there "
                    "is nothing to judge the detections against. Give a layer of ground-truth "
                    "polygons and the field of their class values "
                    "(GROUND_TRUTH_CLASS_VALUE_FIELD)."
                )
            )
        if mask is not None and not mask_items:
            raise QgsProcessingException(
                tr(
                    "The mask layer has no polygons, so no object would count. Give mask "
                    "polygons over the area to assess, or no mask."
                )
            )
        if not detections:
            steps.pushWarning(
                tr(
                    "There are no detections: every class has recall 0 and no "
                    "precision (nothing was detected)."
                )
            )
        names = {**names_from_field(gts, g_index), **names_from_field(dets, d_index)}

        steps.setCurrentStep(1)
        workdir = Path(tempfile.mkdtemp(prefix="dls-accuracy-"))
        try:
            job = AccuracyJob(
                tool="object_detection",
                detections=write_collection(workdir / "detections.geojson", detections),
                ground_truth=write_collection(workdir / "ground_truth.geojson", truth),
                mask=write_collection(workdir / "mask.geojson", mask_items) if mask_items else None,
                min_iou=min_iou,
                classes=names,
                report=report,
            )
            try:
                job.validate()
            except EngineError as exc:
                raise QgsProcessingException(str(exc)) from exc
            steps.pushInfo(
                tr(
                    f"Matching {count(len(detections), 'detection')} with "
                    f"{count(len(truth), 'ground-truth object')} in the worker "
                    f"({settings.worker_python()}).",
                )
            )
            result = run_engine("accuracy", job.to_dict(), steps, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

        steps.setCurrentStep(2)
        fields, rows = _table(result)
        dest_id = write_table(self, parameters, context, fields, rows)
        s = result["summary"]
        out = {
            "OUTPUT_ACCURACY_TABLE": dest_id,
            "MAP": s["map"],
            "PRECISION": s["precision"],
            "RECALL": s["recall"],
            "F1": s["f1"],
        }
        if report:
            out["OUTPUT_ACCURACY_REPORT"] = report
        steps.pushInfo(
            tr(
                f"mAP {_short(s['map'])}, precision {_short(s['precision'])}, recall "
                f"{_short(s['recall'])}, F1 {_short(s['f1'])} ({s['tp']} true "
                f"positives, {s['fp']} false positives, {s['fn']} false "
                f"negatives)."
            )
            + (f" Report: {report}" if report else "")
        )
        return out

    def _s(self, parameters, name, context) -> str:
        return self.parameterAsString(parameters, name, context)

    def _source(self, parameters, name, context, what):
        source = self.parameterAsSource(parameters, name, context)
        if source is None:
            raise QgsProcessingException(tr(f"Could not load the {what} layer ({name})."))
        return source

    def _confidence(self, dets, parameters, context, feedback) -> int | None:
        name = self._s(parameters, "DETECTED_CONFIDENCE_FIELD", context)
        given = parameters.get("DETECTED_CONFIDENCE_FIELD") not in (None, "")
        if not name:
            feedback.pushInfo(
                tr(
                    "No confidence field: every detection counts as 1.0 and they "
                    "are matched in layer order."
                )
            )
            return None
        index = dets.fields().lookupField(name)
        if index < 0 and given:
            raise QgsProcessingException(
                tr(
                    f"The detections layer has no field '{name}' (DETECTED_CONFIDENCE_FIELD); "
                    f"its fields are: {', '.join(dets.fields().names())}. Leave it empty to "
                    "count every detection as confidence 1.0."
                )
            )
        if index < 0:
            feedback.pushWarning(
                tr(
                    f"The detections have no '{name}' field: every detection counts as "
                    "confidence 1.0 and they are matched in layer order, so the average "
                    "precision says little about ranking."
                )
            )
            return None
        if not dets.fields().at(index).isNumeric():
            raise QgsProcessingException(
                tr(
                    f"The confidence field '{name}' is not numeric; give a numeric field "
                    "(DETECTED_CONFIDENCE_FIELD) or leave it empty."
                )
            )
        return index


def _field(name, label, parent, default, help_text):
    # optional: QGIS 3.22 refuses a required field parameter left to its default; a missing
    # or empty field is refused by execute with the layer's field names instead
    return with_help(
        QgsProcessingParameterField(
            name,
            tr(label),
            defaultValue=default,
            parentLayerParameterName=parent,
            optional=True,
        ),
        help_text,
    )


def _table(result: dict) -> tuple[QgsFields, list[list]]:
    classes = result["classes"]
    fields = QgsFields()
    fields.append(make_field("class_value", value_kind(c["value"] for c in classes)))
    fields.append(make_field("class_name", "string"))
    for name, kind, alias, _ in COLUMNS:
        fields.append(make_field(name, kind, alias=alias))
    rows = [
        [c["value"], c.get("name") or str(c["value"]), *(c[k] for *_, k in COLUMNS)]
        for c in classes
    ]
    s = {**result["summary"], "ap": result["summary"]["map"]}
    rows.append([None, "all", *(s[k] for *_, k in COLUMNS)])
    return fields, rows


def _short(value) -> str:
    return "–" if value is None else f"{value:.4g}"
