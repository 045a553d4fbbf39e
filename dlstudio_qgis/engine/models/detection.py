"""Faster R-CNN, Mask R-CNN and RetinaNet: torchvision's models over any backbone via an FPN.

The adapter is torchvision's ``resnet_fpn_backbone`` made general: a FeaturePyramidNetwork
(256 channels) over the backbone's stages at strides 4-32 (R-CNNs, plus a max-pooled level at
64) or 8-32 (RetinaNet, plus P6/P7 at 64 and 128), for ResNets, VGGs, DenseNets and MobileNetV2
alike. Anchors are sized 4x each level's stride (16-256 pixels for the R-CNNs, 32-512 times
SCALES for RetinaNet), which suits chips of 64-512 pixels better than torchvision's COCO sizes.
A backbone with ImageNet weights gets frozen batch norm statistics, as in torchvision.

Input is already normalised and chip-sized: the transform's mean is 0, its std 1, its sizes the
chip size, so it neither normalises again nor resizes. Labels are 1..num_classes (0 is the
background, added here: torchvision's models get num_classes + 1).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN, MaskRCNN, RetinaNet
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.ops.feature_pyramid_network import (
    ExtraFPNBlock,
    FeaturePyramidNetwork,
    LastLevelMaxPool,
    LastLevelP6P7,
)

from .backbones import Backbone, freeze_batchnorm

FPN_CHANNELS = 256


class FPNBackbone(nn.Module):
    """The backbone's stages ``levels`` through an FPN; ``body`` is the :class:`Backbone`."""

    def __init__(self, backbone: Backbone, levels: tuple[int, ...], extra: ExtraFPNBlock) -> None:
        super().__init__()
        if backbone.pretrained:  # as torchvision's detectors do with ImageNet backbones
            freeze_batchnorm(backbone)
        self.body = backbone
        self.levels = levels
        self.fpn = FeaturePyramidNetwork(
            [backbone.channels[i] for i in levels], FPN_CHANNELS, extra_blocks=extra
        )
        self.out_channels = FPN_CHANNELS

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        feats = self.body(x)
        return self.fpn(OrderedDict((str(k), feats[i]) for k, i in enumerate(self.levels)))


def _level_strides(backbone: Backbone, levels: tuple[int, ...], extra: int) -> list[int]:
    strides = [backbone.strides[i] for i in levels]
    return strides + [strides[-1] * 2 ** (k + 1) for k in range(extra)]


def _transform_args(in_channels: int, chip_size: int) -> dict:
    return {
        "min_size": chip_size,
        "max_size": chip_size,
        "image_mean": [0.0] * in_channels,
        "image_std": [1.0] * in_channels,
    }


def _rcnn_parts(backbone: Backbone) -> tuple[FPNBackbone, AnchorGenerator]:
    levels = (1, 2, 3, 4)
    fpn = FPNBackbone(backbone, levels, LastLevelMaxPool())
    sizes = tuple((4 * s,) for s in _level_strides(backbone, levels, 1))
    return fpn, AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes))


def faster_rcnn(backbone: Backbone, num_classes: int, chip_size: int) -> FasterRCNN:
    fpn, anchors = _rcnn_parts(backbone)
    return FasterRCNN(
        fpn,
        num_classes=num_classes + 1,
        rpn_anchor_generator=anchors,
        **_transform_args(backbone.in_channels, chip_size),
    )


def mask_rcnn(backbone: Backbone, num_classes: int, chip_size: int) -> MaskRCNN:
    fpn, anchors = _rcnn_parts(backbone)
    return MaskRCNN(
        fpn,
        num_classes=num_classes + 1,
        rpn_anchor_generator=anchors,
        **_transform_args(backbone.in_channels, chip_size),
    )


def retinanet(
    backbone: Backbone, num_classes: int, chip_size: int, scales: list[float], ratios: list[float]
) -> RetinaNet:
    levels = (2, 3, 4)
    fpn = FPNBackbone(backbone, levels, LastLevelP6P7(FPN_CHANNELS, FPN_CHANNELS))
    sizes = tuple(
        tuple(4 * s * scale for scale in scales) for s in _level_strides(backbone, levels, 2)
    )
    anchors = AnchorGenerator(sizes, (tuple(ratios),) * len(sizes))
    model = RetinaNet(
        fpn,
        num_classes=num_classes + 1,
        anchor_generator=anchors,
        **_transform_args(backbone.in_channels, chip_size),
    )
    model.register_forward_hook(_drop_background)
    return model


def _drop_background(module: nn.Module, inputs, output):
    """RetinaNet scores every class with a sigmoid, the never-trained background (0) too."""
    if module.training or not isinstance(output, list):
        return output
    return [{k: v[d["labels"] > 0] for k, v in d.items()} for d in output]
