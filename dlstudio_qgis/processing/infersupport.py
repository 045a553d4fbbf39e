"""What the three inference algorithms share (Detect objects, Classify pixels, Classify objects).

Their common parameters; the checks made before any worker starts (the package read safely
with the standard library, its model type against the tool, its bands against the raster, the
extent, the ARGUMENTS, the project role); and one run (:class:`InferRun`): the job file, the
worker, the project's record of the job and the leftovers of a cancelled or failed run.
Nothing here imports torch.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from qgis.core import (
    QgsProcessingException,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFile,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsRasterLayer,
    QgsRectangle,
)

from .. import settings
from ..core import Action
from ..core.roles import require
from ..engine.infer.job import ARGUMENTS, TOOL_MODEL_TYPES, InferJob, tool_arguments
from ..engine.protocol import EngineError
from ..engine.train.job import PROCESSORS
from ..engine.train.package import read_package
from .base import FILE_BEHAVIOR_FILE, tr, user_parameter, with_help, worker_raster_path
from .inferstyle import ClassStyle, classes_of
from .jobs import end_job, remove_partials
from .params import enum_param
from .worker import WorkerCancelled, run_engine

#: what a killed worker leaves beside an output (engine/infer/outputs.py PARTIAL_GLOB; copied,
#: as that module needs numpy)
PARTIAL_GLOB = ".{name}.*.partial*"
TITLES = {
    "detect_objects": "Detect objects",
    "classify_pixels": "Classify pixels",
    "classify_objects": "Classify objects",
}
ALGORITHM_IDS = {
    "detect_objects": "dlstudio:detectobjects",
    "classify_pixels": "dlstudio:classifypixels",
    "classify_objects": "dlstudio:classifyobjects",
}
#: what each ARGUMENTS name does (the defaults come from engine/infer/job.py ARGUMENTS)
ARGUMENT_HELP = {
    "padding": "pixels at each chip's edges whose predictions are dropped, the chips "
    "overlapping by twice as much (default: a quarter of the chip size)",
    "threshold": "the lowest confidence a detection is kept with",
    "nms_overlap": "the overlap (intersection over union) above which two detections of one "
    "class are duplicates and the weaker one is dropped",
    "batch_size": "chips predicted at once; more is faster on a GPU with the memory for it",
    "exclude_pad_detections": "drop detections that lie in the padding",
    "test_time_augmentation": "also predict flipped and rotated chips and merge the "
    "predictions (slower, often steadier)",
}
#: ArcGIS's model names (ModelName of its .emd files) -> this plugin's model types
ARCGIS_NAMES = {
    "SINGLESHOTDETECTOR": "SSD",
    "UNETCLASSIFIER": "UNET",
    "PSPNETCLASSIFIER": "PSPNET",
    "FEATURECLASSIFIER": "FEATURE_CLASSIFIER",
    "RETINANET": "RETINANET",
    "YOLOV3": "YOLOV3",
    "FASTERRCNN": "FASTERRCNN",
    "MASKRCNN": "MASKRCNN",
    "DEEPLAB": "DEEPLAB",
}
_TOOL_OF_TYPE = {t: tool for tool, types in TOOL_MODEL_TYPES.items() for t in types}
_DOES = {
    "detect_objects": "detects objects",
    "classify_pixels": "classifies pixels",
    "classify_objects": "classifies objects",
}


# --- parameters ----------------------------------------------------------------------------


def raster_parameter() -> QgsProcessingParameterRasterLayer:
    return with_help(
        QgsProcessingParameterRasterLayer("INPUT_RASTER", tr("Input raster")),
        "The imagery to run the model on: a raster file GDAL can open, with a CRS and the "
        "bands the model was trained on.",
    )


def model_parameter() -> QgsProcessingParameterFile:
    return with_help(
        QgsProcessingParameterFile(
            "MODEL",
            tr("Model definition"),
            behavior=FILE_BEHAVIOR_FILE,
            fileFilter=tr("Deep learning package (*.dlpk);;Model definition (*.emd)"),
        ),
        "A deep learning package (.dlpk) from Train deep learning model, or a model "
        "definition (.emd) with its weights beside it. It is read safely before any work "
        "starts: a package with path escapes, a foreign framework or code is refused.",
    )


def arguments_parameter(tool: str) -> QgsProcessingParameterString:
    items = []
    for name, default in ARGUMENTS[tool].items():
        shown = f"={default}" if default is not None else ""
        items.append(f"{name}{shown}: {ARGUMENT_HELP[name]}")
    return with_help(
        QgsProcessingParameterString(
            "ARGUMENTS", tr("Model arguments"), defaultValue="", optional=True
        ),
        "Inference arguments as name=value pairs separated by ';', e.g. "
        f"{_example(tool)}. Each one left out takes its default: " + "; ".join(items) + ".",
    )


def _example(tool: str) -> str:
    return {
        "detect_objects": "threshold=0.6;batch_size=8",
        "classify_pixels": "padding=16;test_time_augmentation=True",
        "classify_objects": "batch_size=16",
    }[tool]


def extent_parameter() -> QgsProcessingParameterExtent:
    return with_help(
        QgsProcessingParameterExtent("EXTENT", tr("Processing extent"), optional=True),
        "Only this part of the raster (reprojected to the raster's CRS; an extent without a "
        "CRS is taken in the raster's CRS). Empty: the whole raster.",
    )


def processor_parameter():
    return enum_param(
        "PROCESSOR_TYPE",
        "Processor type",
        PROCESSORS,
        "AUTO",
        "AUTO: the GPU where the worker's torch sees one, else the CPU. GPU fails when there "
        "is none.",
    )


def trust_parameter() -> QgsProcessingParameterBoolean:
    return with_help(
        QgsProcessingParameterBoolean(
            "TRUST_MODEL_CODE", tr("Trust the model's code"), defaultValue=False
        ),
        "A package whose InferenceFunction names Python code is refused unless this is set: "
        "such code could do anything on this computer. Set it only for a package from "
        "someone you trust.",
        advanced=True,
    )


def add_run_parameters(alg) -> None:
    """PROCESSOR_TYPE, TRUST_MODEL_CODE, PROJECT and USER, which every inference tool takes."""
    for param in (processor_parameter(), trust_parameter(), project_parameter(), user_parameter()):
        alg.addParameter(param)


def checked_inputs(alg, tool: str, parameters, context, feedback):
    """(model, raster path, raster layer, arguments), each checked before any worker starts."""
    trust = alg.parameterAsBoolean(parameters, "TRUST_MODEL_CODE", context)
    model = read_model(alg.parameterAsFile(parameters, "MODEL", context), tool, trust)
    raster, layer = input_raster(alg, parameters, context)
    check_bands(model, layer, feedback)
    return model, raster, layer, arguments(alg, tool, parameters, context)


def project_parameter() -> QgsProcessingParameterFile:
    return with_help(
        QgsProcessingParameterFile(
            "PROJECT", tr("Project file"), behavior=FILE_BEHAVIOR_FILE, extension="gpkg",
            optional=True,
        ),
        "A Deep Learning Studio project (.gpkg) to record the inference job in (its "
        "parameters, status and result). Inference needs the analyst or owner role there.",
        advanced=True,
    )  # fmt: skip


# --- checks --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelInfo:
    """What the QGIS side needs of a checked package."""

    path: str
    emd: dict
    model_type: str
    classes: list[ClassStyle]
    bands: list[int] | None  # ExtractBands (0-based), when the .emd lists band numbers
    in_channels: int | None


def read_model(text: str, tool: str, trust: bool) -> ModelInfo:
    """The package MODEL names, read safely and checked against the tool."""
    if not text:
        raise QgsProcessingException(
            tr("Give the model (MODEL): a deep learning package (.dlpk) or a model definition "
               "(.emd).")
        )  # fmt: skip
    path = Path(text).absolute()
    try:
        package = read_package(path, trust_code=trust, weights=False)
    except EngineError as exc:
        message = str(exc)
        if "InferenceFunction" in message and not trust:
            message += tr(
                " Set TRUST_MODEL_CODE (advanced) only if you trust the package's author; "
                "otherwise use a package without code."
            )
        raise QgsProcessingException(message) from exc
    emd = package.emd
    params = emd.get("ModelParameters") if isinstance(emd.get("ModelParameters"), dict) else {}
    name = str(params.get("model_type") or emd.get("ModelName") or "").strip().upper()
    model_type = ARCGIS_NAMES.get(name.replace(" ", "").replace("_", ""), name)
    _check_tool(path, model_type, tool)
    bands = emd.get("ExtractBands")
    if not (isinstance(bands, list) and bands and all(_whole(b) for b in bands)):
        bands = None
    in_channels = params.get("in_channels")
    return ModelInfo(
        path=str(path),
        emd=emd,
        model_type=model_type,
        classes=classes_of(emd),
        bands=[int(b) for b in bands] if bands else None,
        in_channels=int(in_channels) if _whole(in_channels) else None,
    )


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_tool(path: Path, model_type: str, tool: str) -> None:
    fits = TOOL_MODEL_TYPES[tool]
    if model_type in fits:
        return
    other = _TOOL_OF_TYPE.get(model_type)
    if other is not None:
        raise QgsProcessingException(
            tr(f"The model '{path.name}' is a {model_type} model, which {_DOES[other]}; "
               f"{TITLES[tool]} runs {', '.join(fits)} models. Use {TITLES[other]} "
               f"({ALGORITHM_IDS[other]}) with this model, or give a model that "
               f"{_DOES[tool]}.")
        )  # fmt: skip
    raise QgsProcessingException(
        tr(f"The model '{path.name}' has the model type '{model_type or 'none'}' "
           f"(ModelParameters.model_type in its .emd), which this plugin does not run; "
           f"{TITLES[tool]} runs {', '.join(fits)} models.")
    )  # fmt: skip


def check_bands(model: ModelInfo, layer: QgsRasterLayer, feedback) -> None:
    """The raster must have the bands the model reads."""
    n = layer.bandCount()
    if model.bands:
        if max(model.bands) >= n:
            listed = ", ".join(str(b + 1) for b in model.bands)
            raise QgsProcessingException(
                tr(f"The model reads bands {listed} (its ExtractBands), but the raster "
                   f"'{layer.name()}' has {n} band{'s' if n != 1 else ''}. Give imagery with the "
                   "bands the model was trained on.")
            )  # fmt: skip
        if len(model.bands) < n:
            listed = ", ".join(str(b + 1) for b in model.bands)
            feedback.pushInfo(tr(f"The model reads bands {listed} of the raster's {n}."))
    elif model.in_channels and model.in_channels != n:
        raise QgsProcessingException(
            tr(f"The model reads {model.in_channels} bands (its in_channels), but the raster "
               f"'{layer.name()}' has {n}. Give imagery with the bands the model was trained "
               "on.")
        )  # fmt: skip


def input_raster(alg, parameters, context) -> tuple[str, QgsRasterLayer]:
    """The raster's file (what the worker opens) and its layer, with a CRS."""
    layer = alg.parameterAsRasterLayer(parameters, "INPUT_RASTER", context)
    if layer is None:
        raise QgsProcessingException(tr("Could not load the raster (INPUT_RASTER)."))
    return worker_raster_path(layer, "its results could not be placed on a map"), layer


def job_extent(alg, parameters, context, layer: QgsRasterLayer) -> list[float] | None:
    """EXTENT in the raster's CRS, cut to the raster; None for the whole raster."""
    extent = alg.parameterAsExtent(parameters, "EXTENT", context, layer.crs())
    if extent.isNull():
        return None
    area = QgsRectangle(layer.extent()).intersect(extent)
    if area.isEmpty():
        raise QgsProcessingException(
            tr(f"EXTENT ({_box(extent)} in the raster's CRS) does not overlap the raster "
               f"'{layer.name()}' ({_box(layer.extent())}). Give an extent over the raster, "
               "or none for the whole raster.")
        )  # fmt: skip
    return [area.xMinimum(), area.yMinimum(), area.xMaximum(), area.yMaximum()]


def _box(rect: QgsRectangle) -> str:
    return ", ".join(
        f"{v:.6g}" for v in (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())
    )


def arguments(alg, tool: str, parameters, context) -> dict:
    """ARGUMENTS parsed and checked for the tool, defaults filled in."""
    try:
        return tool_arguments(tool, alg.parameterAsString(parameters, "ARGUMENTS", context))
    except EngineError as exc:
        raise QgsProcessingException(tr(f"ARGUMENTS: {exc}")) from exc


def open_project(alg, parameters, context, feedback):
    """The project to record the job in (PROJECT), or None; refused without the role."""
    if not alg.parameterAsFile(parameters, "PROJECT", context):
        return None
    project = alg.open_project(parameters, context, feedback)
    if not project.may(Action.INFER):
        require(project.user, project.role_of(), Action.INFER, project.name)
        raise QgsProcessingException(  # the role fits: the project is complete
            tr(f"Project '{project.name}' takes no more jobs (it is complete).")
        )
    return project


def make_job(**fields) -> dict:
    """The validated job as the worker reads it (checked to survive the trip through JSON)."""
    try:
        job = InferJob(**fields)
        job.validate()
        data = job.to_dict()
        InferJob.from_dict(json.loads(json.dumps(data)))
    except EngineError as exc:
        raise QgsProcessingException(str(exc)) from exc
    return data


# --- a run ---------------------------------------------------------------------------------


class InferRun:
    """One inference run, used as a context manager around the worker and the output.

    On the way out it records how the job ended in the project (if any); when the run failed
    or was cancelled, it removes what a killed worker left beside `output` (files matching
    `partials`) and `output` itself if this run wrote it; and it removes its working folder.
    """

    def __init__(self, tool: str, feedback, project=None, output: Path | None = None,
                 partials: tuple[str, ...] = ()) -> None:  # fmt: skip
        self.tool = tool
        self.feedback = feedback
        self.project = project
        self.output = output
        self.partials = partials
        self.job_id: str | None = None
        self.result: dict | None = None
        self.workdir = Path()
        self.started = 0.0

    def __enter__(self) -> InferRun:
        self.workdir = Path(tempfile.mkdtemp(prefix=f"dls-{self.tool.replace('_', '-')}-"))
        self.started = time.time()
        return self

    def run(self, job: dict) -> dict:
        """Record the job in the project (if any) and run the worker; its result line."""
        if self.feedback.isCanceled():
            raise WorkerCancelled(tr("Cancelled before inference started."))
        project = self.project
        if project is not None:
            job["project"] = {
                "name": project.name,
                "user": project.user,
                "path": str(Path(project.path).absolute()),
            }
            self.job_id = project.submit_job("infer", job)
            job["project"]["job_id"] = self.job_id
            project.update_job(self.job_id, "executing")
        self.feedback.pushInfo(
            tr(f"Starting the inference worker ({settings.worker_python()})"
               + (f" for job {self.job_id}." if self.job_id else "."))
        )  # fmt: skip
        self.result = run_engine(
            "infer", job, self.feedback, self.workdir, memory_hint=self._memory_hint(job)
        )
        return self.result

    def _memory_hint(self, job: dict) -> str:
        """What to lower when the system's out-of-memory killer stops the worker."""
        try:
            batch = int(tool_arguments(self.tool, job.get("arguments"))["batch_size"])
        except (EngineError, KeyError, TypeError, ValueError):
            return ""
        if batch > 1:
            return f"Lower batch_size in ARGUMENTS (it was {batch}; try {batch // 2})."
        return "Close other programs that use much memory."

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if exc is not None and self.output is not None:
                for pattern in self.partials:
                    remove_partials(self.output, pattern, since=self.started)
                # a worker that finished as Cancel came: a cancelled run leaves no output
                for extra in ("", ".aux.xml"):
                    remove_partials(self.output, self.output.name + extra, since=self.started)
            if self.project is not None and self.job_id is not None:
                if exc is None:
                    end_job(self.project, self.job_id, "succeeded", self.feedback,
                            result=self.result)  # fmt: skip
                else:
                    cancelled = isinstance(exc, WorkerCancelled) or self.feedback.isCanceled()
                    end_job(self.project, self.job_id, "cancelled" if cancelled else "failed",
                            self.feedback, error=str(exc)[:2000])  # fmt: skip
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return False


def read_lines(path: Path, feedback, what: str):
    """The JSON objects of a newline-delimited file the worker wrote, with the share read
    (0-1); WorkerCancelled when the user cancels."""
    total = max(path.stat().st_size, 1)
    done = 0
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, 1):
            if feedback.isCanceled():
                raise WorkerCancelled(tr(f"Cancelled while writing the {what}."))
            done += len(raw)
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except ValueError as exc:
                raise QgsProcessingException(
                    tr(f"Line {number} of the worker's {what} ({path.name}) is not JSON: {exc}.")
                ) from exc
            yield obj, done / total
