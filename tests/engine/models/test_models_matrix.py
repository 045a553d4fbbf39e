"""Every supported (model type, backbone) pair builds offline for 4 bands, takes one training step
(finite loss, gradients, an optimizer step) and predicts with its task's output structure.

The default run covers every model type with one backbone per family (ResNet, VGG, DenseNet,
MobileNet; Darknet-53 for YOLOv3) and every backbone with the feature classifier; the rest of
the cross product is marked slow (``-m slow`` runs it; ``make test`` runs everything).
"""

from __future__ import annotations

import pytest
from model_support import exercise

from dlstudio_qgis.engine.models import SUPPORTED

FAMILY_REPRESENTATIVES = ("RESNET18", "VGG11_BN", "DENSENET121", "MOBILENET_V2", "DARKNET53")


def _pairs():
    for model_type, fits in SUPPORTED.items():
        for backbone in fits:
            default = backbone in FAMILY_REPRESENTATIVES or model_type == "FEATURE_CLASSIFIER"
            marks = () if default else (pytest.mark.slow,)
            yield pytest.param(model_type, backbone, id=f"{model_type}-{backbone}", marks=marks)


@pytest.mark.parametrize(("model_type", "backbone"), list(_pairs()))
def test_pair_trains_and_predicts(model_type, backbone):
    exercise(model_type, backbone, in_channels=4)


@pytest.mark.parametrize(
    ("model_type", "backbone"),
    [("UNET", "RESNET34"), ("FASTERRCNN", "MOBILENET_V2"), ("YOLOV3", "DARKNET53")],
)
def test_single_band(model_type, backbone):
    exercise(model_type, backbone, in_channels=1, num_classes=3)
