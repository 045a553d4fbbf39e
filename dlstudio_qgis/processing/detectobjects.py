"""dlstudio:detectobjects: objects found in imagery by a deep learning package, as polygons.

QGIS checks the package, the raster and the parameters and writes the inference job; the
engine worker (`python -m dlstudio_qgis.engine infer`) predicts chip by chip and writes
newline-delimited GeoJSON, which is streamed into the output here.
"""

from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsFeature,
    QgsFields,
    QgsProcessingException,
    QgsProcessingMultiStepFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFeatureSink,
    QgsRectangle,
)

from .base import SOURCE_POLYGON, DeepLearningAlgorithm, count, tr, with_help
from .inferoutput import (
    FAST_INSERT,
    WKB_MULTIPOLYGON,
    geometry_from_geojson,
    make_field,
    remove_output,
)
from .inferstyle import store_default_style, style_when_loaded
from .infersupport import (
    InferRun,
    add_run_parameters,
    arguments_parameter,
    checked_inputs,
    extent_parameter,
    job_extent,
    make_job,
    model_parameter,
    open_project,
    raster_parameter,
    read_lines,
)
from .params import number_param

TOOL = "detect_objects"
DETECTIONS_FILE = "detections.geojsonl"


class DetectObjects(DeepLearningAlgorithm):
    NAME = "detectobjects"
    DISPLAY_NAME = "Detect objects"
    HELP = (
        "Finds objects in imagery with a deep learning package (.dlpk) from Train deep "
        "learning model (SSD, RETINANET, YOLOV3, FASTERRCNN or MASKRCNN) and writes them as "
        "polygons in the raster's CRS (cut to the raster or EXTENT), with their class value, "
        "class name and confidence. "
        "The output is styled by class with the model's colours.\n\n"
        "The raster is read in overlapping chips of the model's size; detections of one class "
        "that duplicate each other across chip borders are always merged. RUN_NMS also "
        "suppresses overlaps between different classes.\n\n"
        "Inference runs in the engine worker (the Python of the dlstudio/worker_python "
        "setting), on the GPU where there is one. Cancel stops it and leaves no output."
    )

    def initAlgorithm(self, config=None):
        add = self.addParameter
        add(raster_parameter())
        add(model_parameter())
        add(arguments_parameter(TOOL))
        add(
            with_help(
                QgsProcessingParameterBoolean(
                    "RUN_NMS", tr("Non maximum suppression across classes"), defaultValue=False
                ),
                "Also drop the less confident of two detections of different classes that "
                "overlap more than MAX_OVERLAP_RATIO (as ArcGIS's Non Maximum Suppression; "
                "off by default, as there). Duplicates of one class at chip borders are always "
                "merged (nms_overlap in ARGUMENTS).",
            )
        )
        add(
            number_param(
                "MAX_OVERLAP_RATIO",
                "Maximum overlap ratio",
                0.0,
                "With RUN_NMS: the overlap (intersection over union, 0-1) above which two "
                "detections of different classes are one object; 0 drops any overlap.",
                maximum=1.0,
            )
        )
        add(extent_parameter())
        add_run_parameters(self)
        add(
            with_help(
                QgsProcessingParameterFeatureSink(
                    "OUTPUT", tr("Detected objects"), type=SOURCE_POLYGON
                ),
                "The detected objects: polygons in the raster's CRS with class_value, "
                "class_name and confidence (GeoPackage by default).",
            )
        )
        self.addOutput(QgsProcessingOutputNumber("DETECTIONS", tr("Objects detected")))
        self.addOutput(QgsProcessingOutputString("JOB_ID", tr("Project job id")))

    def execute(self, parameters, context, feedback):
        steps = QgsProcessingMultiStepFeedback(3, feedback)
        model, raster, layer, args = checked_inputs(self, TOOL, parameters, context, steps)
        extent = job_extent(self, parameters, context, layer)
        project = open_project(self, parameters, context, steps)
        steps.setCurrentStep(1)
        with InferRun(TOOL, steps, project) as session:
            job = make_job(
                tool=TOOL,
                raster=raster,
                model=model.path,
                output=str(session.workdir / DETECTIONS_FILE),
                arguments=args,
                extent=extent,
                run_nms=self.parameterAsBoolean(parameters, "RUN_NMS", context),
                max_overlap_ratio=self.parameterAsDouble(parameters, "MAX_OVERLAP_RATIO", context),
                processor_type=self.parameterAsEnumString(parameters, "PROCESSOR_TYPE", context),
                trust_code=self.parameterAsBoolean(parameters, "TRUST_MODEL_CODE", context),
            )
            result = session.run(job)
            steps.setCurrentStep(2)
            fields = QgsFields()
            for name, kind in (("class_value", "int"), ("class_name", "string"),
                               ("confidence", "double")):  # fmt: skip
                fields.append(make_field(name, kind))
            sink, dest_id = self.parameterAsSink(
                parameters, "OUTPUT", context, fields, WKB_MULTIPOLYGON, layer.crs()
            )
            if sink is None:
                raise QgsProcessingException(self.invalidSinkError(parameters, "OUTPUT"))
            try:
                area = QgsRectangle(*extent) if extent else layer.extent()
                written = _copy(Path(job["output"]), sink, fields, area, steps)
            except BaseException:
                del sink
                remove_output(dest_id)
                raise
            del sink  # closes the file before its style is stored in it
        style_when_loaded(context, dest_id, model.classes, "class_value")
        store_default_style(dest_id, model.classes, "class_value", steps)
        steps.pushInfo(
            tr(f"Detected {count(written, 'object')} in {result.get('chips', '?')} chips"
               + (f" in {result['seconds']} s" if result.get("seconds") is not None else "")
               + f" on {result.get('device', 'the worker')}.")
        )  # fmt: skip
        return {"OUTPUT": dest_id, "DETECTIONS": written, "JOB_ID": session.job_id or ""}


def _copy(path: Path, sink, fields, area: QgsRectangle, feedback) -> int:
    """The worker's detections into the sink, cut to `area` (the raster, or EXTENT): a box
    found at the raster's edge may reach past it. How many were written."""
    if not path.is_file():
        raise QgsProcessingException(tr(f"The worker wrote no detections file ({path.name})."))
    written = 0
    for obj, share in read_lines(path, feedback, "detections"):
        props = obj.get("properties") or {}
        geom = geometry_from_geojson(obj.get("geometry"))
        if geom is not None and not area.contains(geom.boundingBox()):
            geom = geom.clipped(area)
            geom.convertToMultiType()
        if geom is None or geom.isEmpty():
            continue
        feature = QgsFeature(fields)
        feature.setGeometry(geom)
        feature.setAttributes([
            int(props.get("class_value", 0)),
            str(props.get("class_name", "")),
            float(props.get("confidence", 0.0)),
        ])  # fmt: skip
        if not sink.addFeature(feature, FAST_INSERT):
            raise QgsProcessingException(
                tr(f"Could not write a detected object: {sink.lastError()}")
            )
        written += 1
        feedback.setProgress(100.0 * share)
    return written
