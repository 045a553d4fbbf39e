"""The Deep Learning Studio Processing provider (id `dlstudio`)."""

from __future__ import annotations

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .addmember import AddMember
from .base import ICON_PATH, tr
from .classifyobjects import ClassifyObjects
from .classifypixels import ClassifyPixels
from .computeaccuracyforobjectclassification import ComputeAccuracyForObjectClassification
from .computeaccuracyforobjectdetection import ComputeAccuracyForObjectDetection
from .computeaccuracyforpixelclassification import ComputeAccuracyForPixelClassification
from .createproject import CreateProject
from .createworkunits import CreateWorkUnits
from .detectobjects import DetectObjects
from .exporttrainingdata import ExportTrainingData
from .importsamples import ImportSamples
from .projectstatus import ProjectStatus
from .reviewsamples import ReviewSamples
from .traindeeplearningmodel import TrainDeepLearningModel
from .updateworkunitstatus import UpdateWorkUnitStatus

#: The algorithm classes the provider loads, in workflow order.
ALGORITHMS = [
    CreateProject,
    AddMember,
    CreateWorkUnits,
    ImportSamples,
    UpdateWorkUnitStatus,
    ReviewSamples,
    ProjectStatus,
    ExportTrainingData,
    TrainDeepLearningModel,
    DetectObjects,
    ClassifyPixels,
    ClassifyObjects,
    ComputeAccuracyForObjectDetection,
    ComputeAccuracyForPixelClassification,
    ComputeAccuracyForObjectClassification,
]


class DlsProvider(QgsProcessingProvider):
    def id(self) -> str:
        return "dlstudio"

    def name(self) -> str:
        return tr("Deep Learning Studio")

    def longName(self) -> str:
        return tr("Deep Learning Studio: imagery projects, training samples and review")

    def icon(self) -> QIcon:
        return QIcon(str(ICON_PATH))

    def svgIconPath(self) -> str:
        return str(ICON_PATH)

    def loadAlgorithms(self) -> None:
        for cls in ALGORITHMS:
            self.addAlgorithm(cls())
