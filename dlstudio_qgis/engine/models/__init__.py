"""The model factory of Train Deep Learning Model: 9 model types over 19 backbones.

- `registry`: MODEL_TYPES, BACKBONES, SUPPORTED (the support matrix), TASKS, METADATA_FORMATS,
  `check_pair`, `build_model` and the task interface every built model follows.
- `backbones`, `darknet`, `weights`: five-stage backbones for any band count; ImageNet weights
  only from the local torch cache, never downloaded.
- `classification`, `segmentation`, `detection`, `ssd`, `yolo`: the heads.
- `arguments`: the model arguments (SSD grids/zooms/ratios, PSPNet, RetinaNet) read leniently.

Importing this package imports torch (the worker only).
"""

from .arguments import ModelArgumentError
from .registry import (
    BACKBONES,
    DEFAULT_BACKBONE,
    METADATA_FORMATS,
    MODEL_TYPES,
    SUPPORTED,
    TASKS,
    ModelInfo,
    UnsupportedModelError,
    backbone_of,
    build_model,
    check_pair,
    default_backbone,
    set_backbone_frozen,
)

__all__ = [
    "BACKBONES",
    "DEFAULT_BACKBONE",
    "METADATA_FORMATS",
    "MODEL_TYPES",
    "SUPPORTED",
    "TASKS",
    "ModelArgumentError",
    "ModelInfo",
    "UnsupportedModelError",
    "backbone_of",
    "build_model",
    "check_pair",
    "default_backbone",
    "set_backbone_frozen",
]
