"""dlstudio:classifyobjects: each input feature labelled with the class a deep learning package
(FEATURE_CLASSIFIER) predicts from the imagery under it.

QGIS writes the features, reprojected to the raster's CRS, as newline-delimited GeoJSON with an
`id` each; the engine worker (`python -m dlstudio_qgis.engine infer`) classifies the chip
around each one and writes one JSON line per feature; the input features are then copied to
the output with the predicted class and confidence.
"""

from __future__ import annotations

import json
from pathlib import Path

from qgis.core import (
    QgsCoordinateTransform,
    QgsCsException,
    QgsFeature,
    QgsFields,
    QgsProcessingException,
    QgsProcessingMultiStepFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterString,
    QgsProcessingUtils,
)

from .base import (
    NULL,
    SOURCE_POINT,
    SOURCE_POLYGON,
    DeepLearningAlgorithm,
    all_features,
    count,
    straight,
    tr,
    with_help,
)
from .inferoutput import FAST_INSERT, make_field, remove_output
from .inferstyle import store_default_style, style_when_loaded
from .infersupport import (
    InferRun,
    add_run_parameters,
    arguments_parameter,
    checked_inputs,
    make_job,
    model_parameter,
    open_project,
    raster_parameter,
    read_lines,
)
from .worker import WorkerCancelled

TOOL = "classify_objects"
FEATURES_FILE = "features.geojsonl"
RESULTS_FILE = "classes.jsonl"
VALUE_FIELD, CONFIDENCE_FIELD = "class_value", "confidence"


class ClassifyObjects(DeepLearningAlgorithm):
    NAME = "classifyobjects"
    DISPLAY_NAME = "Classify objects"
    HELP = (
        "Labels each feature of a point or polygon layer with the class that a deep learning "
        "package (.dlpk) from Train deep learning model (FEATURE_CLASSIFIER) predicts from the "
        "imagery under it. The output is the input features, in their own CRS and with their "
        "attributes, plus the predicted class name (CLASS_LABEL_FIELD), class_value and "
        "confidence; it is styled by class with the model's colours.\n\n"
        "Each feature is classified from a chip of the model's size around it (a larger "
        "polygon: a chip around its bounding box, resized). Features outside the raster or "
        "without a geometry are kept, unclassified (NULL).\n\n"
        "Inference runs in the engine worker (the Python of the dlstudio/worker_python "
        "setting), on the GPU where there is one. Cancel stops it and leaves no output."
    )

    def initAlgorithm(self, config=None):
        add = self.addParameter
        add(raster_parameter())
        add(
            with_help(
                QgsProcessingParameterFeatureSource(
                    "INPUT_FEATURES", tr("Features to classify"), [SOURCE_POLYGON, SOURCE_POINT]
                ),
                "The points or polygons to classify, in any CRS (they are reprojected to the "
                "raster's CRS for the model; the output keeps their own).",
            )
        )
        add(model_parameter())
        add(arguments_parameter(TOOL))
        add(
            with_help(
                QgsProcessingParameterString(
                    "CLASS_LABEL_FIELD", tr("Class label field"), defaultValue="class_name"
                ),
                "The name of the output field that holds the predicted class name (ArcGIS "
                "names it ClassLabel). The class value and the confidence go in class_value "
                "and confidence; a name the input already has gets a suffix (_2).",
            )
        )
        add_run_parameters(self)
        add(
            with_help(
                QgsProcessingParameterFeatureSink("OUTPUT", tr("Classified objects")),
                "The input features with their attributes and the predicted class, in the "
                "input's CRS (GeoPackage by default).",
            )
        )
        self.addOutput(QgsProcessingOutputNumber("CLASSIFIED", tr("Features classified")))
        self.addOutput(QgsProcessingOutputNumber("SKIPPED", tr("Features not classified")))
        self.addOutput(QgsProcessingOutputString("JOB_ID", tr("Project job id")))

    def execute(self, parameters, context, feedback):
        steps = QgsProcessingMultiStepFeedback(4, feedback)
        model, raster, layer, args = checked_inputs(self, TOOL, parameters, context, steps)
        source = self.parameterAsSource(parameters, "INPUT_FEATURES", context)
        if source is None:
            raise QgsProcessingException(self.invalidSourceError(parameters, "INPUT_FEATURES"))
        label = _label_field(self.parameterAsString(parameters, "CLASS_LABEL_FIELD", context))
        project = open_project(self, parameters, context, steps)
        with InferRun(TOOL, steps, project) as session:
            features = session.workdir / FEATURES_FILE
            written, left_out = _write_features(source, layer.crs(), features, context, steps)
            if not written:
                raise QgsProcessingException(
                    tr(f"None of the {count(left_out, 'feature')} of INPUT_FEATURES has a "
                       "geometry that can be placed on the raster; nothing to classify.")
                )  # fmt: skip
            steps.setCurrentStep(1)
            job = make_job(
                tool=TOOL,
                raster=raster,
                model=model.path,
                output=str(session.workdir / RESULTS_FILE),
                arguments=args,
                processor_type=self.parameterAsEnumString(parameters, "PROCESSOR_TYPE", context),
                trust_code=self.parameterAsBoolean(parameters, "TRUST_MODEL_CODE", context),
                features=str(features),
            )
            session.run(job)
            steps.setCurrentStep(2)
            classes = _read_results(Path(job["output"]), steps)
            steps.setCurrentStep(3)
            added = QgsFields()
            for name, kind in ((label, "string"), (VALUE_FIELD, "int"),
                               (CONFIDENCE_FIELD, "double")):  # fmt: skip
                added.append(make_field(name, kind))
            fields = QgsProcessingUtils.combineFields(source.fields(), added)
            names = fields.names()[-3:]
            renamed = [f"{a} -> {b}" for a, b in zip(added.names(), names, strict=True) if a != b]
            if renamed:
                steps.pushWarning(
                    tr(f"The input already has fields of these names: {', '.join(renamed)}.")
                )
            sink, dest_id = self.parameterAsSink(
                parameters, "OUTPUT", context, fields, source.wkbType(), source.sourceCrs()
            )
            if sink is None:
                raise QgsProcessingException(self.invalidSinkError(parameters, "OUTPUT"))
            try:
                done = _copy(source, classes, sink, fields, steps)
            except BaseException:
                del sink
                remove_output(dest_id)
                raise
            del sink  # closes the file before its style is stored in it
        style_when_loaded(context, dest_id, model.classes, names[1])
        store_default_style(dest_id, model.classes, names[1], steps)
        skipped = done - len(classes)
        steps.pushInfo(
            tr(f"Classified {count(len(classes), 'feature')}"
               + (f"; {skipped} could not be (outside the raster or without a geometry)"
                  if skipped else "") + ".")
        )  # fmt: skip
        return {
            "OUTPUT": dest_id,
            "CLASSIFIED": len(classes),
            "SKIPPED": skipped,
            "JOB_ID": session.job_id or "",
        }


def _label_field(text: str) -> str:
    name = (text or "").strip()
    if not name:
        raise QgsProcessingException(
            tr("Give the name of the output field for the predicted class (CLASS_LABEL_FIELD).")
        )
    if name.lower() in (VALUE_FIELD, CONFIDENCE_FIELD):
        raise QgsProcessingException(
            tr(f"CLASS_LABEL_FIELD cannot be '{name}': the output already has {VALUE_FIELD} and "
               f"{CONFIDENCE_FIELD}. Choose another name, e.g. class_name or ClassLabel.")
        )  # fmt: skip
    return name


def _write_features(source, crs, path: Path, context, feedback) -> tuple[int, int]:
    """The features as GeoJSON lines in the raster's CRS, each with its feature id; how many
    were written and how many left out (no geometry, or not transformable)."""
    transform = None
    if source.sourceCrs().isValid() and source.sourceCrs() != crs:
        transform = QgsCoordinateTransform(source.sourceCrs(), crs, context.transformContext())
    elif not source.sourceCrs().isValid():
        feedback.pushWarning(tr("INPUT_FEATURES has no CRS; assuming the raster's CRS."))
    total = max(source.featureCount(), 1)
    written = left_out = 0
    with path.open("w", encoding="utf-8") as out:
        for i, feature in enumerate(all_features(source)):
            if feedback.isCanceled():
                raise WorkerCancelled(tr("Cancelled while writing the features."))
            feedback.setProgress(100.0 * i / total)
            geom = feature.geometry()
            if geom is None or geom.isNull() or geom.isEmpty():
                left_out += 1
                continue
            geom = straight(geom)
            if transform is not None:
                try:
                    geom.transform(transform)
                except QgsCsException:
                    left_out += 1
                    continue
            fid = feature.id()
            line = {"type": "Feature", "id": fid, "geometry": json.loads(geom.asJson()),
                    "properties": {"id": fid}}  # fmt: skip
            out.write(json.dumps(line) + "\n")
            written += 1
    if left_out:
        feedback.pushWarning(
            tr(f"{count(left_out, 'feature')} of INPUT_FEATURES without a geometry that can be "
               "placed on the raster will be left unclassified.")
        )  # fmt: skip
    return written, left_out


def _read_results(path: Path, feedback) -> dict:
    """feature id -> (class name, class value, confidence), from the worker's lines."""
    if not path.is_file():
        raise QgsProcessingException(tr(f"The worker wrote no classes file ({path.name})."))
    out = {}
    for obj, share in read_lines(path, feedback, "classes"):
        out[obj.get("id")] = (  # in the order of the output's fields
            str(obj.get("class_name", "")),
            int(obj.get("class_value", 0)),
            float(obj.get("confidence", 0.0)),
        )
        feedback.setProgress(100.0 * share)
    return out


def _copy(source, classes: dict, sink, fields, feedback) -> int:
    """The input features with their predicted class into the sink; how many."""
    total = max(source.featureCount(), 1)
    unclassified = [NULL, NULL, NULL]
    done = 0
    for feature in all_features(source):
        if feedback.isCanceled():
            raise WorkerCancelled(tr("Cancelled while writing the classified objects."))
        out = QgsFeature(fields)
        out.setGeometry(feature.geometry())
        predicted = classes.get(feature.id())
        out.setAttributes(feature.attributes() + (list(predicted) if predicted else unclassified))
        if not sink.addFeature(out, FAST_INSERT):
            raise QgsProcessingException(
                tr(f"Could not write feature {feature.id()}: {sink.lastError()}")
            )
        done += 1
        feedback.setProgress(100.0 * done / total)
    return done
