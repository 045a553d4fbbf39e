"""dlstudio:exporttrainingdata: image chips, labels and a model definition from samples.

QGIS collects the samples (a project's Approved samples in Reviewed work units, or a layer's
features), reprojects them to the raster's CRS and writes them with the job file; the engine
worker (`python -m dlstudio_qgis.engine export`) cuts the chips.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from qgis.core import (
    QgsProcessingException,
    QgsProcessingMultiStepFeedback,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsRasterLayer,
    QgsRectangle,
)

from .. import settings
from ..core import Action, SampleStatus, WorkUnitStatus
from ..core.formats import IMAGE_FORMATS, METADATA_FORMATS, check_format
from ..core.roles import require
from ..engine.export.job import ExportJob
from ..engine.protocol import EngineError
from .base import (
    FILE_BEHAVIOR_FILE,
    NUMBER_DOUBLE,
    SOURCE_POINT,
    SOURCE_POLYGON,
    DeepLearningAlgorithm,
    count,
    tr,
    user_parameter,
    with_help,
    worker_raster_path,
)
from .exportsamples import check_output, layer_samples, project_samples, write_geojson
from .jobs import end_job, remove_partials
from .worker import WorkerCancelled, run_engine

S, W = SampleStatus, WorkUnitStatus
#: files that mark a folder as an earlier export (OVERWRITE replaces only such a folder)
EXPORT_MARKERS = ("export_job.json", "map.txt", "esri_model_definition.emd")
#: result fields of the engine -> numeric outputs
COUNTS = {"CHIPS": "chips", "TILES": "tiles", "OBJECTS": "objects",
          "OBJECTS_DROPPED": "dropped"}  # fmt: skip


class ExportTrainingData(DeepLearningAlgorithm):
    NAME = "exporttrainingdata"
    DISPLAY_NAME = "Export training data"
    HELP = (
        "Exports training data for deep learning: image chips cut from the raster (images/), "
        "their labels in the chosen metadata format (labels/), map.txt, statistics and an "
        "Esri model definition (.emd) template, in a folder ArcGIS and the training algorithm "
        "both read. The chips are georeferenced.\n\n"
        "The samples come from a project (PROJECT: only its Approved samples in Reviewed work "
        "units go out; the log says how many were left out and why) or from a point or "
        "polygon layer in any CRS (INPUT_SAMPLES with CLASS_VALUE_FIELD). Give exactly one. "
        "Samples are reprojected to the raster's CRS; invalid polygons are repaired and "
        "multi-part features split.\n\n"
        "The heavy work runs in the engine worker (the Python of the dlstudio/worker_python "
        "setting); Cancel stops it, and a cancelled or failed export leaves no new folder."
    )

    def initAlgorithm(self, config=None):
        add = self.addParameter
        add(with_help(
            QgsProcessingParameterRasterLayer("INPUT_RASTER", tr("Input raster"), optional=True),
            "The imagery to cut chips from: a raster file GDAL can open, with a CRS. Empty: "
            "the project's imagery.",
        ))  # fmt: skip
        add(with_help(
            QgsProcessingParameterFile(
                "PROJECT", tr("Project file"), behavior=FILE_BEHAVIOR_FILE, extension="gpkg",
                optional=True,
            ),
            "A Deep Learning Studio project (.gpkg): its Approved samples in Reviewed work "
            "units are exported, with its class schema. Or give INPUT_SAMPLES instead.",
        ))  # fmt: skip
        add(with_help(
            QgsProcessingParameterFeatureSource(
                "INPUT_SAMPLES", tr("Samples layer"), types=[SOURCE_POLYGON, SOURCE_POINT],
                optional=True,
            ),
            "Instead of PROJECT: a polygon or point layer of samples, in any CRS.",
        ))  # fmt: skip
        add(with_help(
            QgsProcessingParameterField(
                "CLASS_VALUE_FIELD", tr("Class value field"),
                parentLayerParameterName="INPUT_SAMPLES", optional=True,
            ),
            "With INPUT_SAMPLES: the field holding each sample's class, as positive integer "
            "values or as names (numbered 1, 2 ... in alphabetical order).",
        ))  # fmt: skip
        add(
            with_help(
                QgsProcessingParameterFolderDestination("OUTPUT_FOLDER", tr("Output folder")),
                "The folder to write; it must be new or empty unless OVERWRITE is set.",
            )
        )
        add(_enum("IMAGE_FORMAT", "Image format", IMAGE_FORMATS, "TIFF",
                  "The chips' format: TIFF (any data type), PNG or JPEG (8-bit)."))  # fmt: skip
        for axis, what in (("X", "width (columns)"), ("Y", "height (rows)")):
            add(_int(f"TILE_SIZE_{axis}", f"Tile size {axis}", 256, f"The chip {what} in "
                     "pixels.", minimum=1))  # fmt: skip
        for axis, what in (("X", "horizontal"), ("Y", "vertical")):
            add(_int(f"STRIDE_{axis}", f"Stride {axis}", 128, f"The {what} distance in pixels "
                     "from one chip to the next; less than the tile size makes chips "
                     "overlap.", minimum=1))  # fmt: skip
        add(_enum("METADATA_FORMAT", "Metadata format", METADATA_FORMATS,
                  "PASCAL_VOC_rectangles",
                  "The labels' format. Detect Objects: PASCAL_VOC_rectangles, KITTI_rectangles "
                  "or RCNN_Masks; Classify Pixels: Classified_Tiles; Classify Objects: "
                  "Labeled_Tiles or MultiLabeled_Tiles. A project refuses a format that does "
                  "not fit its inference tool."))  # fmt: skip
        add(_num("ROTATION_ANGLE", "Rotation angle", 0.0, "Degrees in [0, 360): when not 0, "
                 "extra chips are exported rotated by its multiples (data augmentation).",
                 maximum=359.999))  # fmt: skip
        add(
            _num(
                "BUFFER_RADIUS",
                "Buffer radius",
                0.0,
                "For point samples: the radius "
                "around each point, in the raster CRS's map units, that makes its object.",
            )
        )
        add(_num("MIN_OVERLAP", "Minimum overlap", 0.5, "A fraction in [0, 1]: an object cut "
                 "by a chip's edge is kept when at least this much of it is inside the chip.",
                 maximum=1.0, advanced=True))  # fmt: skip
        add(
            with_help(
                QgsProcessingParameterBoolean(
                    "OUTPUT_NOFEATURE_TILES",
                    tr("Output tiles without features"),
                    defaultValue=False,
                ),
                "Also export chips with no sample in them (background examples).",
            )
        )
        add(
            with_help(
                QgsProcessingParameterExtent("EXTENT", tr("Extent"), optional=True),
                "Only this part of the raster (reprojected to the raster's CRS); an extent without "
                "a CRS is taken in the raster's CRS. Empty: the whole raster.",
            )
        )
        add(
            with_help(
                QgsProcessingParameterBoolean("OVERWRITE", tr("Overwrite"), defaultValue=False),
                "Replace an earlier export in OUTPUT_FOLDER. A non-empty folder that is not an "
                "export is never overwritten.",
            )
        )
        add(
            _int(
                "WORKERS",
                "Worker processes",
                0,
                "Processes that cut chips in parallel; 0 uses every core. Fewer use less memory.",
                minimum=0,
                advanced=True,
            )
        )
        add(user_parameter())
        self.addOutput(QgsProcessingOutputNumber("SAMPLES", tr("Samples exported")))
        for name, label in (
            ("CHIPS", "Image chips"),
            ("TILES", "Tiles"),
            ("OBJECTS", "Objects"),
            ("OBJECTS_DROPPED", "Objects dropped"),
        ):
            self.addOutput(QgsProcessingOutputNumber(name, tr(label)))  # fmt: skip
        self.addOutput(QgsProcessingOutputFile("EMD", tr("Model definition (.emd)")))
        self.addOutput(QgsProcessingOutputString("JOB_ID", tr("Project job id")))

    # --- run -------------------------------------------------------------------------------

    def execute(self, parameters, context, feedback):
        steps = QgsProcessingMultiStepFeedback(3, feedback)
        has_project = bool(self.parameterAsFile(parameters, "PROJECT", context))
        has_layer = bool(parameters.get("INPUT_SAMPLES"))
        if has_project == has_layer:
            raise QgsProcessingException(
                tr("Give either a project (PROJECT) or a samples layer (INPUT_SAMPLES), not "
                   f"{'both' if has_project else 'neither'}.")
            )  # fmt: skip
        project = tool = None
        fmt = self.parameterAsEnumString(parameters, "METADATA_FORMAT", context)
        if has_project:
            project = self.open_project(parameters, context, steps)
            if not project.may(Action.EXPORT):
                require(project.user, project.role_of(), Action.EXPORT, project.name)
                raise QgsProcessingException(  # the role fits: the project is complete
                    tr(f"Project '{project.name}' takes no more jobs (it is complete).")
                )
            tool = project.info().inference_tool
        fmt = check_format(fmt, tool)
        raster, layer = self._raster(parameters, context, project)
        crs = layer.crs()
        output = Path(self.parameterAsFileOutput(parameters, "OUTPUT_FOLDER", context)).absolute()
        overwrite = self.parameterAsBoolean(parameters, "OVERWRITE", context)
        check_output(output, overwrite)
        area = QgsRectangle(layer.extent())
        extent = self.parameterAsExtent(parameters, "EXTENT", context, crs)
        if not extent.isNull():
            area = area.intersect(extent)
            if area.isEmpty():
                raise QgsProcessingException(tr("EXTENT does not overlap the raster."))

        if project is not None:
            items, classes, counts = project_samples(project, crs, area, context, steps)
        else:
            source, index = self._samples_layer(parameters, context)
            items, classes, counts = layer_samples(source, index, crs, area, context, steps)
        if steps.isCanceled():
            raise WorkerCancelled(tr("Cancelled while collecting the samples."))

        steps.setCurrentStep(1)
        workdir = Path(tempfile.mkdtemp(prefix="dls-export-"))
        existed = output.is_dir()
        started = time.time()
        fresh = not existed or not any(output.iterdir())
        job_id = None
        try:
            samples_path = workdir / "samples.geojson"
            write_geojson(samples_path, items)
            job = ExportJob(
                raster=raster, samples=str(samples_path), classes=tuple(classes),
                output=str(output), metadata_format=fmt,
                image_format=self.parameterAsEnumString(parameters, "IMAGE_FORMAT", context),
                tile_size=(self._i(parameters, "TILE_SIZE_X", context),
                           self._i(parameters, "TILE_SIZE_Y", context)),
                stride=(self._i(parameters, "STRIDE_X", context),
                        self._i(parameters, "STRIDE_Y", context)),
                rotation_angle=self._f(parameters, "ROTATION_ANGLE", context),
                buffer_radius=self._f(parameters, "BUFFER_RADIUS", context),
                output_nofeature_tiles=self.parameterAsBoolean(
                    parameters, "OUTPUT_NOFEATURE_TILES", context),
                extent=None if extent.isNull() else _bounds(area),
                min_overlap=self._f(parameters, "MIN_OVERLAP", context),
                overwrite=overwrite,
                inference_tool=tool.value if tool is not None else None,
                workers=self._i(parameters, "WORKERS", context),
                project=_project_record(project, counts),
            )  # fmt: skip
            try:
                job.validate()
                job.check_output()
            except EngineError as exc:
                raise QgsProcessingException(str(exc)) from exc
            job_dict = job.to_dict()
            if project is not None:
                job_id = project.submit_job("export", job_dict)
                job_dict["project"]["job_id"] = job_id
                project.update_job(job_id, "executing")
            steps.pushInfo(
                tr(f"Starting the export worker ({settings.worker_python()})"
                   + (f" for job {job_id}." if job_id else "."))
            )  # fmt: skip
            steps.setCurrentStep(2)
            result = run_engine("export", job_dict, steps, workdir)
        except BaseException as exc:
            if fresh:  # a failed or cancelled export leaves nothing it wrote
                _remove(output, keep_folder=existed)
            # Cancel kills the worker (SIGKILL), so it cannot remove its own staging folder
            remove_partials(output, f".{output.name}.partial-*", since=started)
            if project is not None and job_id is not None:
                cancelled = isinstance(exc, WorkerCancelled) or steps.isCanceled()
                end_job(project, job_id, "cancelled" if cancelled else "failed", steps,
                         error=str(exc)[:2000])  # fmt: skip
            raise
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        if project is not None and job_id is not None:
            end_job(project, job_id, "succeeded", steps, result=result)
        return _report(result, output, len(items), job_id, steps)

    def _i(self, parameters, name, context) -> int:
        return self.parameterAsInt(parameters, name, context)

    def _f(self, parameters, name, context) -> float:
        return self.parameterAsDouble(parameters, name, context)

    def _raster(self, parameters, context, project) -> tuple[str, QgsRasterLayer]:
        """The raster's file (what the worker opens) and its layer; errors for a non-file."""
        layer = self.parameterAsRasterLayer(parameters, "INPUT_RASTER", context)
        if layer is None and parameters.get("INPUT_RASTER"):
            raise QgsProcessingException(tr("Could not load the raster (INPUT_RASTER)."))
        if layer is None:
            if project is None:
                raise QgsProcessingException(tr("Give the raster to export from (INPUT_RASTER)."))
            source = project.info().imagery.source
            layer = QgsRasterLayer(source, "imagery", "gdal")
            if not layer.isValid():
                raise QgsProcessingException(
                    tr(f"The project's imagery '{source}' cannot be opened; give INPUT_RASTER.")
                )
        return worker_raster_path(layer, "the samples cannot be placed on it"), layer

    def _samples_layer(self, parameters, context):
        source = self.parameterAsSource(parameters, "INPUT_SAMPLES", context)
        if source is None:
            raise QgsProcessingException(tr("Could not load the samples layer (INPUT_SAMPLES)."))
        field = self.parameterAsString(parameters, "CLASS_VALUE_FIELD", context)
        index = source.fields().lookupField(field) if field else -1
        if index < 0:
            raise QgsProcessingException(
                tr(f"Give the class field of the samples layer (CLASS_VALUE_FIELD); its fields "
                   f"are: {', '.join(source.fields().names())}.")
            )  # fmt: skip
        return source, index


# --- parameters ----------------------------------------------------------------------------


def _enum(name, label, options, default, help_text):
    return with_help(
        QgsProcessingParameterEnum(
            name, tr(label), options=list(options), defaultValue=default, usesStaticStrings=True
        ),
        help_text,
    )


def _int(name, label, default, help_text, minimum=None, advanced=False):
    param = QgsProcessingParameterNumber(name, tr(label), defaultValue=default)
    if minimum is not None:
        param.setMinimum(minimum)
    return with_help(param, help_text, advanced=advanced)


def _num(name, label, default, help_text, maximum=None, advanced=False):
    param = QgsProcessingParameterNumber(name, tr(label), NUMBER_DOUBLE, default, minValue=0.0)
    if maximum is not None:
        param.setMaximum(maximum)
    return with_help(param, help_text, advanced=advanced)


def _bounds(rect: QgsRectangle) -> tuple[float, float, float, float]:
    return (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())


def _project_record(project, counts) -> dict:
    if project is None:
        return {"counts": counts}
    return {"name": project.name, "path": str(Path(project.path).absolute()),
            "user": project.user, "counts": counts}  # fmt: skip


# --- output folder -------------------------------------------------------------------------


def _remove(folder: Path, keep_folder: bool) -> None:
    if not keep_folder:
        shutil.rmtree(folder, ignore_errors=True)
        return
    for child in folder.iterdir() if folder.is_dir() else ():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _report(result: dict, output: Path, n_samples: int, job_id, feedback) -> dict:
    out = {"OUTPUT_FOLDER": str(result.get("output") or output), "SAMPLES": n_samples,
           "EMD": str(result.get("emd") or output / "esri_model_definition.emd"),
           "JOB_ID": job_id or ""}  # fmt: skip
    for name, key in COUNTS.items():
        out[name] = int(result.get(key) or 0)
    feedback.pushInfo(
        tr(f"Exported {count(out['CHIPS'], 'image chip')} ({count(out['TILES'], 'tile')}) with "
           f"{count(out['OBJECTS'], 'object')} ({out['OBJECTS_DROPPED']} dropped at chip "
           f"edges) into {out['OUTPUT_FOLDER']}"
           + (f" in {result['seconds']} s." if result.get("seconds") is not None else "."))
    )  # fmt: skip
    return out
