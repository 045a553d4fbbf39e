"""dlstudio:traindeeplearningmodel: train a model from exported training data into a .dlpk.

QGIS checks the parameters (the ARGUMENTS against the model type, the output, the export
folder) and writes the training job; the engine worker (`python -m dlstudio_qgis.engine
train`) trains on the GPU where there is one and writes the deep learning package. Nothing
here imports torch: the job's contract (engine/train/job.py) is standard library only.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

from qgis.core import (
    Qgis,
    QgsProcessingException,
    QgsProcessingMultiStepFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterString,
)

from .. import settings
from ..core import Action
from ..core.roles import require
from ..engine.protocol import EngineError
from ..engine.train.job import BACKBONES, MODEL_TYPES, PROCESSORS, TrainJob, parse_arguments
from .base import (
    FILE_BEHAVIOR_FILE,
    DeepLearningAlgorithm,
    _enum,
    tr,
    user_parameter,
    with_help,
)
from .jobs import end_job, remove_partials
from .params import bool_param, enum_param, int_param, number_param
from .trainsupport import (
    FORMATS,
    ONLY_BACKBONE,
    check_format,
    check_pretrained_package,
    memory_hint,
    output_package,
    report,
)
from .trainsupport import in_folder as checked_in_folder

__all__ = ["FORMATS", "TrainDeepLearningModel"]  # FORMATS: compared with the engine's by a test
from .worker import WorkerCancelled, run_engine

FILE_BEHAVIOR_FOLDER = _enum(
    (Qgis, "ProcessingFileParameterBehavior", "Folder"),
    (QgsProcessingParameterFile, "Behavior", "Folder"),
)


class TrainDeepLearningModel(DeepLearningAlgorithm):
    NAME = "traindeeplearningmodel"
    DISPLAY_NAME = "Train deep learning model"
    HELP = (
        "Trains a deep learning model from the output of Export training data and writes a "
        "deep learning package (.dlpk): the model definition (.emd), the weights (.pth), "
        "model_metrics.html, loss_graph.png and show_results.png. The package is what the "
        "inference algorithms read.\n\n"
        "Model types: SSD, RETINANET, YOLOV3 and FASTERRCNN detect objects (from "
        "PASCAL_VOC_rectangles or KITTI_rectangles), MASKRCNN detects object outlines (from "
        "RCNN_Masks), UNET, PSPNET and DEEPLAB classify pixels (from Classified_Tiles), "
        "FEATURE_CLASSIFIER classifies objects (from Labeled_Tiles or MultiLabeled_Tiles). "
        "The backbone is the network the model is built on; it starts from ImageNet weights "
        "when they are in the local torch cache (nothing is downloaded), else from random "
        "weights.\n\n"
        "Training runs in the engine worker (the Python of the dlstudio/worker_python "
        "setting), on the GPU where there is one. Each epoch is checkpointed beside the "
        "output: a cancelled or failed run leaves no package, and running the same job again "
        "continues from its last epoch. With PROJECT, the job is recorded in the project "
        "(owners and analysts may train)."
    )

    def initAlgorithm(self, config=None):
        add = self.addParameter
        add(
            with_help(
                QgsProcessingParameterFile(
                    "IN_FOLDER", tr("Training data folder"), behavior=FILE_BEHAVIOR_FOLDER
                ),
                "The folder Export training data wrote (images/, labels/, map.txt and "
                "esri_model_definition.emd); its chip size, bands and classes are used.",
            )
        )
        add(
            with_help(
                QgsProcessingParameterFileDestination(
                    "OUTPUT",
                    tr("Output deep learning package"),
                    fileFilter=tr("Deep learning package (*.dlpk)"),
                ),
                "The deep learning package (.dlpk) to write. An existing file is replaced only "
                "with OVERWRITE_MODEL.",
            )
        )
        add(
            enum_param(
                "MODEL_TYPE",
                "Model type",
                MODEL_TYPES,
                None,
                "The model to train: SSD, RETINANET, YOLOV3, FASTERRCNN (objects, from "
                "rectangles), MASKRCNN (object outlines, from RCNN_Masks), UNET, PSPNET, "
                "DEEPLAB (pixels, from Classified_Tiles), FEATURE_CLASSIFIER (objects, "
                "from Labeled_Tiles). It must fit the export's metadata format.",
            )
        )
        add(
            enum_param(
                "BACKBONE_MODEL",
                "Backbone model",
                BACKBONES,
                "RESNET34",
                "The network the model is built on. YOLOV3 uses DARKNET53 (and "
                "DARKNET53 is for YOLOV3 only); every other type takes any other "
                "backbone. Deeper networks learn more and need more memory and "
                "time.",
            )
        )
        add(
            with_help(
                QgsProcessingParameterString(
                    "ARGUMENTS", tr("Model arguments"), defaultValue="", optional=True
                ),
                "Extra model arguments as name=value pairs separated by ';', e.g. "
                "grids=[4];zooms=[1.0];ratios=[[1.0,1.0]] for SSD, scales=[1,0.8,0.63];ratios="
                "[0.5,1,2] for RETINANET, use_unet=True;pyramid_sizes=[1,2,3,6] for PSPNET, "
                "mixup, class_balancing, focal_loss, ignore_classes for UNET, PSPNET and DEEPLAB; "
                "chip_size for all. An argument the model type does not take is refused.",
            )
        )
        add(
            int_param(
                "BATCH_SIZE",
                "Batch size",
                8,
                "Chips processed at once; more is faster on a GPU with the memory for it.",
                minimum=1,
            )
        )
        add(
            int_param(
                "MAX_EPOCHS",
                "Maximum epochs",
                20,
                "The most passes over the training "
                "chips; early stopping may end sooner (STOP_TRAINING).",
                minimum=1,
            )
        )
        add(
            number_param(
                "LEARNING_RATE",
                "Learning rate",
                0.0,
                "How fast the weights change, in "
                "[0, 1). 0: found by a learning-rate range test before training.",
                maximum=0.999999,
            )
        )
        add(
            number_param(
                "VALIDATION_PERCENT",
                "Validation percent",
                10.0,
                "The share of the chips "
                "kept aside to validate the model (metrics, early stopping), in [0, 100).",
                maximum=99.0,
            )
        )
        add(
            with_help(
                QgsProcessingParameterFile(
                    "PRETRAINED_MODEL",
                    tr("Pretrained model"),
                    behavior=FILE_BEHAVIOR_FILE,
                    fileFilter=tr("Deep learning package (*.dlpk);;Model definition (*.emd)"),
                    optional=True,
                ),
                "A .dlpk to fine-tune (same model type and backbone). Its classes are matched by "
                "name (case aside); a class it lacks starts fresh. With no name in common, the "
                "same number of classes is matched by position, and another number is refused. "
                "It is read safely: a package with code or pickled objects is refused.",
            )
        )
        add(
            bool_param(
                "STOP_TRAINING",
                "Stop when the model stops improving",
                True,
                "Early stopping: end training when the validation loss has not improved for "
                "a few epochs. Off: train MAX_EPOCHS epochs.",
            )
        )
        add(
            bool_param(
                "FREEZE_MODEL",
                "Freeze the backbone",
                True,
                "Keep the backbone's weights as they are when it starts from trained "
                "weights (ImageNet or PRETRAINED_MODEL); off trains them too (slower, often "
                "better).",
            )
        )
        add(
            enum_param(
                "PROCESSOR_TYPE",
                "Processor type",
                PROCESSORS,
                "AUTO",
                "AUTO: the GPU where the worker's torch sees one, else the CPU. GPU "
                "fails when there is none.",
            )
        )
        add(
            bool_param(
                "OVERWRITE_MODEL",
                "Overwrite the output package",
                False,
                "Replace an existing OUTPUT package. Off: an existing file is refused.",
            )
        )
        add(
            with_help(
                QgsProcessingParameterFile(
                    "PROJECT",
                    tr("Project file"),
                    behavior=FILE_BEHAVIOR_FILE,
                    extension="gpkg",
                    optional=True,
                ),
                "A Deep Learning Studio project (.gpkg) to record the training job in (its "
                "parameters, status and result). Training needs the analyst or owner role there.",
                advanced=True,
            )
        )
        add(user_parameter())
        add(
            int_param(
                "SEED",
                "Random seed",
                0,
                "Seeds the chip split, the augmentation and the "
                "initial weights, so a run can be repeated.",
                minimum=0,
                advanced=True,
            )
        )
        add(
            int_param(
                "LOADER_WORKERS",
                "Data loading processes",
                0,
                "Processes that read and "
                "augment chips while the model trains; 0 reads them in the training process.",
                minimum=0,
                advanced=True,
            )
        )
        for name, label in (
            ("EPOCHS", "Epochs trained"),
            ("BEST_EPOCH", "Best epoch"),
            ("LEARNING_RATE", "Learning rate used"),
            ("VALID_LOSS", "Validation loss (best epoch)"),
        ):
            self.addOutput(QgsProcessingOutputNumber(name, tr(label)))
        self.addOutput(QgsProcessingOutputString("METRICS", tr("Metrics (JSON)")))
        self.addOutput(QgsProcessingOutputString("JOB_ID", tr("Project job id")))

    # --- run -------------------------------------------------------------------------------

    def execute(self, parameters, context, feedback):
        steps = QgsProcessingMultiStepFeedback(2, feedback)
        job = self._job(parameters, context, steps)
        project = None
        if self.parameterAsFile(parameters, "PROJECT", context):
            project = self.open_project(parameters, context, steps)
            if not project.may(Action.TRAIN):
                require(project.user, project.role_of(), Action.TRAIN, project.name)
                raise QgsProcessingException(  # the role fits: the project is complete
                    tr(f"Project '{project.name}' takes no more jobs (it is complete).")
                )
        if steps.isCanceled():
            raise WorkerCancelled(tr("Cancelled before training started."))

        output = Path(job.output)
        job_dict = job.to_dict()
        if project is not None:
            job_dict["project"] = {
                "name": project.name,
                "user": project.user,
                "path": str(Path(project.path).absolute()),
            }
        workdir = Path(tempfile.mkdtemp(prefix="dls-train-"))
        started = time.time()
        job_id = None
        try:
            if project is not None:
                job_id = project.submit_job("train", job_dict)
                job_dict["project"]["job_id"] = job_id
                project.update_job(job_id, "executing")
            steps.pushInfo(
                tr(
                    f"Starting the training worker ({settings.worker_python()})"
                    + (f" for job {job_id}." if job_id else ".")
                )
            )
            steps.setCurrentStep(1)
            result = run_engine(
                "train", job_dict, steps, workdir, memory_hint=memory_hint(job_dict)
            )
        except BaseException as exc:
            # Cancel kills the worker, so it cannot remove its own temporary package file
            remove_partials(output, f".{output.name}.*.partial", since=started)
            if project is not None and job_id is not None:
                cancelled = isinstance(exc, WorkerCancelled) or steps.isCanceled()
                end_job(
                    project,
                    job_id,
                    "cancelled" if cancelled else "failed",
                    steps,
                    error=str(exc)[:2000],
                )
            raise
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        if project is not None and job_id is not None:
            end_job(project, job_id, "succeeded", steps, result=result)
        return report(result, output, job_id, steps)

    def _job(self, parameters, context, feedback) -> TrainJob:
        """The validated training job; every mistake is refused here, before any worker."""
        in_folder = checked_in_folder(self.parameterAsFile(parameters, "IN_FOLDER", context))
        output = output_package(
            self.parameterAsFileOutput(parameters, "OUTPUT", context),
            self.parameterAsBoolean(parameters, "OVERWRITE_MODEL", context),
        )
        model_type = self.parameterAsEnumString(parameters, "MODEL_TYPE", context)
        backbone = self.parameterAsEnumString(parameters, "BACKBONE_MODEL", context)
        only = ONLY_BACKBONE.get(model_type)
        if only and backbone != only:
            if parameters.get("BACKBONE_MODEL") not in (None, ""):
                raise QgsProcessingException(
                    tr(
                        f"{model_type} works with the {only} backbone only; set "
                        f"BACKBONE_MODEL={only}."
                    )
                )
            feedback.pushInfo(tr(f"{model_type} uses the {only} backbone."))
            backbone = only
        elif backbone in ONLY_BACKBONE.values() and ONLY_BACKBONE.get(model_type) != backbone:
            users = ", ".join(t for t, b in ONLY_BACKBONE.items() if b == backbone)
            raise QgsProcessingException(
                tr(
                    f"The {backbone} backbone is for {users} only; choose another backbone for "
                    f"{model_type} (e.g. RESNET34)."
                )
            )
        pretrained = self.parameterAsFile(parameters, "PRETRAINED_MODEL", context) or None
        if pretrained:
            path = Path(pretrained).absolute()
            if not path.is_file():
                raise QgsProcessingException(tr(f"PRETRAINED_MODEL '{pretrained}' does not exist."))
            if path.suffix.lower() not in (".dlpk", ".emd"):
                raise QgsProcessingException(
                    tr(f"PRETRAINED_MODEL '{pretrained}' is not a deep learning package (.dlpk).")
                )
            pretrained = str(path)
        try:
            job = TrainJob(
                in_folder=str(in_folder),
                output=str(output),
                model_type=model_type,
                backbone=backbone,
                arguments=parse_arguments(self.parameterAsString(parameters, "ARGUMENTS", context)),
                batch_size=self.parameterAsInt(parameters, "BATCH_SIZE", context),
                max_epochs=self.parameterAsInt(parameters, "MAX_EPOCHS", context),
                learning_rate=self.parameterAsDouble(parameters, "LEARNING_RATE", context),
                validation_percent=self.parameterAsDouble(
                    parameters, "VALIDATION_PERCENT", context
                ),
                pretrained_model=pretrained,
                stop_training=self.parameterAsBoolean(parameters, "STOP_TRAINING", context),
                freeze_model=self.parameterAsBoolean(parameters, "FREEZE_MODEL", context),
                processor_type=self.parameterAsEnumString(parameters, "PROCESSOR_TYPE", context),
                overwrite=self.parameterAsBoolean(parameters, "OVERWRITE_MODEL", context),
                seed=self.parameterAsInt(parameters, "SEED", context),
                loader_workers=self.parameterAsInt(parameters, "LOADER_WORKERS", context),
            )
            job.validate()
            # the worker reads the job back: check that it survives the trip
            TrainJob.from_dict(json.loads(json.dumps(job.to_dict())))
        except EngineError as exc:
            raise QgsProcessingException(str(exc)) from exc
        export_emd = check_format(in_folder, model_type)
        if pretrained:
            check_pretrained_package(pretrained, export_emd, model_type, backbone)
        return job
