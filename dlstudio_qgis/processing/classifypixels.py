"""dlstudio:classifypixels: a raster of classes predicted pixel by pixel by a deep learning
package (UNET, PSPNET, DEEPLAB).

QGIS checks the package, the raster and the parameters and writes the inference job; the
engine worker (`python -m dlstudio_qgis.engine infer`) writes the GeoTIFF aside and moves it
into place, so a cancelled or failed run leaves no output that looks complete.
"""

from __future__ import annotations

import json
from pathlib import Path

from qgis.core import (
    QgsProcessingException,
    QgsProcessingMultiStepFeedback,
    QgsProcessingOutputString,
    QgsProcessingParameterRasterDestination,
)

from .base import DeepLearningAlgorithm, tr, with_help
from .inferstyle import style_when_loaded, write_qml
from .infersupport import (
    PARTIAL_GLOB,
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
)

TOOL = "classify_pixels"


class ClassifyPixels(DeepLearningAlgorithm):
    NAME = "classifypixels"
    DISPLAY_NAME = "Classify pixels"
    HELP = (
        "Classifies every pixel of imagery with a deep learning package (.dlpk) from Train "
        "deep learning model (UNET, PSPNET or DEEPLAB) and writes a GeoTIFF of class values "
        "(0: no class) on the raster's grid, with a colour table and the class names. It opens "
        "styled by class with the model's colours (a .qml is written beside it).\n\n"
        "The raster is read in overlapping chips of the model's size; the padding at chip "
        "edges, where predictions are weakest, is dropped (padding in ARGUMENTS).\n\n"
        "Inference runs in the engine worker (the Python of the dlstudio/worker_python "
        "setting), on the GPU where there is one. The output is written aside and moved into "
        "place at the end: Cancel stops the worker and leaves no output."
    )

    def initAlgorithm(self, config=None):
        add = self.addParameter
        add(raster_parameter())
        add(model_parameter())
        add(arguments_parameter(TOOL))
        add(extent_parameter())
        add_run_parameters(self)
        add(
            with_help(
                QgsProcessingParameterRasterDestination("OUTPUT", tr("Classified raster")),
                "The classified raster (a GeoTIFF, .tif): one band of class values, 0 where "
                "there is no class or no data, in the raster's CRS and on its grid.",
            )
        )
        self.addOutput(QgsProcessingOutputString("PIXEL_COUNTS", tr("Pixels per class (JSON)")))
        self.addOutput(QgsProcessingOutputString("JOB_ID", tr("Project job id")))

    def execute(self, parameters, context, feedback):
        steps = QgsProcessingMultiStepFeedback(2, feedback)
        model, raster, layer, args = checked_inputs(self, TOOL, parameters, context, steps)
        extent = job_extent(self, parameters, context, layer)
        output = _output(self.parameterAsOutputLayer(parameters, "OUTPUT", context), raster)
        project = open_project(self, parameters, context, steps)
        steps.setCurrentStep(1)
        output.parent.mkdir(parents=True, exist_ok=True)
        partial = PARTIAL_GLOB.format(name=output.name)
        with InferRun(TOOL, steps, project, output, (partial,)) as session:
            job = make_job(
                tool=TOOL,
                raster=raster,
                model=model.path,
                output=str(output),
                arguments=args,
                extent=extent,
                processor_type=self.parameterAsEnumString(parameters, "PROCESSOR_TYPE", context),
                trust_code=self.parameterAsBoolean(parameters, "TRUST_MODEL_CODE", context),
            )
            result = session.run(job)
            if not output.is_file():
                raise QgsProcessingException(
                    tr(f"The worker finished without writing the output '{output}'.")
                )
        write_qml(output, model.classes, steps)
        style_when_loaded(context, str(output), model.classes)
        counts = {str(k): int(v) for k, v in (result.get("pixel_counts") or {}).items()}
        names = {str(c.value): c.name for c in model.classes}
        summary = ", ".join(f"{names.get(k, k)} {v}" for k, v in counts.items()) or "none"
        steps.pushInfo(tr(f"Classified pixels ({summary}) into {output}."))
        return {
            "OUTPUT": str(output),
            "PIXEL_COUNTS": json.dumps(counts, sort_keys=True),
            "JOB_ID": session.job_id or "",
        }


def _output(text: str, raster: str) -> Path:
    """The GeoTIFF to write (OUTPUT), checked."""
    if not text:
        raise QgsProcessingException(tr("Give the classified raster to write (OUTPUT)."))
    output = Path(text).absolute()
    if output.suffix.lower() not in (".tif", ".tiff"):
        raise QgsProcessingException(
            tr(f"The output '{output}' must be a GeoTIFF: give a name ending in .tif.")
        )
    if output.is_dir():
        raise QgsProcessingException(tr(f"The output '{output}' is a folder."))
    if raster and Path(raster).absolute() == output:
        raise QgsProcessingException(
            tr("The output would replace the input raster; give another OUTPUT name.")
        )
    return output
