"""The model types, the backbones, which pairs work, and :func:`build_model`.

Task interface of a built model (what the trainer and the inference rely on):

- detection (SSD, RETINANET, YOLOV3, FASTERRCNN) and instance segmentation (MASKRCNN):
  ``model(images, targets)``, torchvision's convention. ``images``: a list of (C, H, W) float
  tensors (or an (N, C, H, W) tensor), normalised. ``targets``: one dict per image with
  "boxes" (K, 4) float x1, y1, x2, y2 in pixels, "labels" (K,) int64 in 1..num_classes, and for
  MASKRCNN "masks" (K, H, W) uint8. Train mode returns a dict of losses (sum them); eval mode a
  list of {"boxes", "labels", "scores"(, "masks" (K, 1, H, W) probabilities)} per image.
- semantic segmentation (UNET, PSPNET, DEEPLAB): ``model(x)`` -> logits (N, num_classes, H, W)
  at the input's size.
- classification (FEATURE_CLASSIFIER): ``model(x)`` -> logits (N, num_classes).

``num_classes`` counts the real classes; the detectors add their background class inside.
``model.dls_info`` (:class:`ModelInfo`) records what was built, the resolved arguments and the
weights used; :func:`backbone_of` gives the backbone, :func:`set_backbone_frozen` freezes it
(FREEZE_MODEL).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

from torch import nn

from ..train.job import BACKBONES, MODEL_TYPES
from . import arguments as args
from .backbones import Backbone, build_backbone, freeze_batchnorm
from .weights import Log, default_log

# the names are the training job's (engine/train/job.py, torch-free: the QGIS side reads it)
DEFAULT_BACKBONE = "RESNET34"
#: every backbone torchvision has (all but Darknet-53)
TORCHVISION_BACKBONES = tuple(b for b in BACKBONES if b != "DARKNET53")

#: which backbones each model type can use. Every head works on any torchvision backbone through
#: its five stages; YOLOv3 is the Darknet-53 design and Darknet-53 has no other use here (no
#: ImageNet weights for it exist in torchvision, so it would always start from random weights).
SUPPORTED: dict[str, tuple[str, ...]] = {
    t: ("DARKNET53",) if t == "YOLOV3" else TORCHVISION_BACKBONES for t in MODEL_TYPES
}

DETECTION = "detection"
INSTANCE_SEGMENTATION = "instance_segmentation"
SEMANTIC_SEGMENTATION = "semantic_segmentation"
CLASSIFICATION = "classification"
TASKS = {
    "SSD": DETECTION,
    "RETINANET": DETECTION,
    "YOLOV3": DETECTION,
    "FASTERRCNN": DETECTION,
    "MASKRCNN": INSTANCE_SEGMENTATION,
    "UNET": SEMANTIC_SEGMENTATION,
    "PSPNET": SEMANTIC_SEGMENTATION,
    "DEEPLAB": SEMANTIC_SEGMENTATION,
    "FEATURE_CLASSIFIER": CLASSIFICATION,
}
#: the export metadata formats each model type trains from
METADATA_FORMATS = {
    t: {
        DETECTION: ("PASCAL_VOC_rectangles", "KITTI_rectangles"),
        INSTANCE_SEGMENTATION: ("RCNN_Masks",),
        SEMANTIC_SEGMENTATION: ("Classified_Tiles",),
        CLASSIFICATION: ("Labeled_Tiles", "MultiLabeled_Tiles"),
    }[task]
    for t, task in TASKS.items()
}
#: the model arguments each type reads (any other argument is left to the trainer)
MODEL_ARGUMENTS = {
    "SSD": ("grids", "zooms", "ratios"),
    "PSPNET": ("USE_UNET", "PYRAMID_SIZES"),
    "RETINANET": ("SCALES", "RATIOS"),
}
MIN_CHIP_SIZE = 32


class UnsupportedModelError(ValueError):
    """An unknown model type or backbone, or a pair that does not go together."""


@dataclass
class ModelInfo:
    model_type: str
    backbone: str
    task: str
    num_classes: int
    in_channels: int
    chip_size: int
    #: the model arguments as used (defaults filled in), for the model definition
    arguments: dict[str, Any] = field(default_factory=dict)
    #: the checkpoint the backbone's weights came from, or None (random initial weights)
    weights: str | None = None
    #: attribute path of the backbone in the model (``model.get_submodule(backbone_path)``)
    backbone_path: str = "backbone"

    @property
    def pretrained(self) -> bool:
        return self.weights is not None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_backbone(model_type: str) -> str:
    fits = SUPPORTED[model_type.upper()]
    return DEFAULT_BACKBONE if DEFAULT_BACKBONE in fits else fits[0]


def check_pair(model_type: str, backbone: str | None = None) -> tuple[str, str]:
    """The pair, upper-cased (backbone None: the type's default); raises UnsupportedModelError."""
    model_type = str(model_type).strip().upper()
    if model_type not in MODEL_TYPES:
        raise UnsupportedModelError(
            f"Unknown model type {model_type!r}; model types: {', '.join(MODEL_TYPES)}"
        )
    if backbone is None or not str(backbone).strip():
        return model_type, default_backbone(model_type)
    backbone = str(backbone).strip().upper()
    fits = SUPPORTED[model_type]
    if backbone not in BACKBONES:
        raise UnsupportedModelError(
            f"Unknown backbone {backbone!r}; backbones that fit {model_type}: {', '.join(fits)}"
        )
    if backbone not in fits:
        raise UnsupportedModelError(
            f"{model_type} does not work with backbone {backbone}; "
            f"backbones that fit {model_type}: {', '.join(fits)}"
        )
    return model_type, backbone


def backbone_of(model: nn.Module) -> Backbone:
    """The backbone inside a model built by :func:`build_model`."""
    return model.get_submodule(model.dls_info.backbone_path)


def set_backbone_frozen(model: nn.Module, frozen: bool = True) -> None:
    """FREEZE_MODEL: the backbone's weights stop (or start) training.

    Freezing also fixes its batch norm statistics (FrozenBatchNorm2d), which ``model.train()``
    would otherwise keep updating. Unfreezing makes the weights trainable again; the batch norm
    statistics stay fixed. The state dict loads into a model built afresh either way.
    """
    backbone = backbone_of(model)
    for parameter in backbone.parameters():
        parameter.requires_grad_(not frozen)
    if frozen:
        freeze_batchnorm(backbone)


def build_model(
    model_type: str,
    backbone: str | None,
    num_classes: int,
    in_channels: int,
    chip_size: int,
    arguments: dict | None = None,
    pretrained: str | os.PathLike | None = "auto",
    log: Log | None = None,
) -> nn.Module:
    """Build a model of the type on the backbone, for ``in_channels`` bands and square chips.

    ``pretrained``: "auto" uses ImageNet weights only if the checkpoint is already in the local
    torch cache (nothing is downloaded), None never, a path loads that file. To rebuild a
    trained model for inference, pass the same arguments and ``pretrained=None``, then load its
    state dict. Raises UnsupportedModelError or ModelArgumentError (both ValueErrors).
    """
    model_type, backbone = check_pair(model_type, backbone)
    log = log or default_log
    if int(num_classes) < 1 or int(in_channels) < 1:
        raise ValueError(f"num_classes and in_channels must be >= 1 ({num_classes}, {in_channels})")
    if int(chip_size) < MIN_CHIP_SIZE:
        raise ValueError(f"chip_size must be at least {MIN_CHIP_SIZE} pixels, not {chip_size}")
    num_classes, in_channels, chip_size = int(num_classes), int(in_channels), int(chip_size)
    used = _model_arguments(model_type, arguments, chip_size)
    body = build_backbone(backbone, in_channels, pretrained, log)
    model, path = _assemble(model_type, body, num_classes, chip_size, used)
    model.dls_info = ModelInfo(
        model_type,
        backbone,
        TASKS[model_type],
        num_classes,
        in_channels,
        chip_size,
        used,
        body.weights,
        path,
    )
    return model


def _model_arguments(model_type: str, arguments: dict | None, chip_size: int) -> dict:
    if model_type == "SSD":
        return args.ssd_config(arguments, chip_size)
    if model_type == "PSPNET":
        return args.pspnet_config(arguments)
    if model_type == "RETINANET":
        return args.retinanet_config(arguments)
    return {}


def _assemble(
    model_type: str, body: Backbone, num_classes: int, chip_size: int, used: dict
) -> tuple[nn.Module, str]:
    """(model, attribute path of its backbone)."""
    from . import classification, detection, segmentation, ssd, yolo

    if model_type == "FEATURE_CLASSIFIER":
        return classification.FeatureClassifier(body, num_classes), "backbone"
    if model_type == "UNET":
        return segmentation.UNet(body, num_classes), "backbone"
    if model_type == "PSPNET":
        return segmentation.PSPNet(body, num_classes, **used), "backbone"
    if model_type == "DEEPLAB":
        return segmentation.DeepLab(body, num_classes), "backbone"
    if model_type == "FASTERRCNN":
        return detection.faster_rcnn(body, num_classes, chip_size), "backbone.body"
    if model_type == "MASKRCNN":
        return detection.mask_rcnn(body, num_classes, chip_size), "backbone.body"
    if model_type == "RETINANET":
        return detection.retinanet(body, num_classes, chip_size, **used), "backbone.body"
    if model_type == "SSD":
        return ssd.ssd(body, num_classes, chip_size, **used), "backbone.body"
    return yolo.YOLOv3(body, num_classes, chip_size), "backbone"
