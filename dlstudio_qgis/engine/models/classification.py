"""FEATURE_CLASSIFIER: a backbone, global average pooling and a linear layer.

The torchvision classifiers' own heads, with the 1000 ImageNet classes replaced: ResNet, DenseNet
and MobileNetV2 end this way already; VGG's three 4096-wide layers (a fixed 7x7 input, 120M
weights) are replaced by the same pooling and linear layer. ``model(x)`` returns logits (N, C):
softmax for Labeled_Tiles, sigmoid per class for MultiLabeled_Tiles (the trainer's choice).
"""

from __future__ import annotations

import torch
from torch import nn

from .backbones import Backbone


class FeatureClassifier(nn.Module):
    def __init__(self, backbone: Backbone, num_classes: int, dropout: float = 0.2) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(backbone.channels[-1], num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x)[-1])
