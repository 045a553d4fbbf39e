"""The training job: a validated, versioned config the worker reads, so a run can be repeated
and audited (it is stored in the package's .emd as `DLStudio.job`)."""

from __future__ import annotations

import contextlib
import json
import math
import os
from dataclasses import dataclass, field

from ..jobconfig import JobConfig
from ..protocol import InputError

JOB_VERSION = 1
MODEL_TYPES = ("SSD", "UNET", "FEATURE_CLASSIFIER", "PSPNET", "RETINANET", "MASKRCNN",
               "YOLOV3", "DEEPLAB", "FASTERRCNN")  # fmt: skip
BACKBONES = (
    "DARKNET53", "DENSENET121", "DENSENET161", "DENSENET169", "DENSENET201", "MOBILENET_V2",
    "RESNET18", "RESNET34", "RESNET50", "RESNET101", "RESNET152", "VGG11", "VGG11_BN", "VGG13",
    "VGG13_BN", "VGG16", "VGG16_BN", "VGG19", "VGG19_BN",
)  # fmt: skip
PROCESSORS = ("AUTO", "CPU", "GPU")
#: ARGUMENTS each model type reads (names are case-insensitive); chip_size is for all.
ARGUMENTS = {
    "SSD": ("grids", "zooms", "ratios"),
    "PSPNET": ("use_unet", "pyramid_sizes", "mixup", "class_balancing", "focal_loss",
               "ignore_classes"),
    "UNET": ("mixup", "class_balancing", "focal_loss", "ignore_classes"),
    "DEEPLAB": ("mixup", "class_balancing", "focal_loss", "ignore_classes"),
    "RETINANET": ("scales", "ratios"),
}  # fmt: skip


def parse_arguments(text: str | dict | None) -> dict:
    """`grids=[4];zooms=[1.0]` or `name=value,name=value` (JSON values where they parse)."""
    if isinstance(text, dict):
        items = text.items()
    else:
        items = []
        text = (text or "").strip()
        # split on ';' or on commas that start a new `name=`
        parts, depth, cur = [], 0, ""
        for ch in text:
            depth += (ch in "[(") - (ch in "])")
            if ch in ";," and depth == 0:
                parts.append(cur)
                cur = ""
            else:
                cur += ch
        parts.append(cur)
        for part in (p.strip() for p in parts):
            if not part:
                continue
            if "=" not in part:
                raise InputError(
                    f"Argument '{part}' is not name=value; write e.g. "
                    "chip_size=256;ratios=[[1.0,1.0],[1.0,0.5]]."
                )
            name, value = (s.strip() for s in part.split("=", 1))
            items.append((name, value))
    out = {}
    for name, value in items:
        if isinstance(value, str):
            with contextlib.suppress(ValueError):  # else a plain string
                value = json.loads(value.replace("True", "true").replace("False", "false"))
        out[name.strip().lower()] = value
    return out


@dataclass(frozen=True)
class TrainJob(JobConfig):
    """Everything a training run needs; paths are absolute."""

    KIND = "train"
    WHAT = "training job"
    VERSION = JOB_VERSION
    REQUIRED = ("in_folder", "output")

    in_folder: str
    output: str  # the .dlpk to write
    model_type: str = "UNET"
    backbone: str = "RESNET34"
    arguments: dict = field(default_factory=dict)
    batch_size: int = 8
    max_epochs: int = 20
    learning_rate: float = 0.0  # 0 = find it with a learning-rate range test
    validation_percent: float = 10.0
    pretrained_model: str | None = None  # a .dlpk to fine-tune from (classes mapped by name)
    stop_training: bool = True  # early stopping
    freeze_model: bool = True  # freeze the backbone (when it starts from trained weights)
    processor_type: str = "AUTO"
    overwrite: bool = False
    seed: int = 0
    checkpoint_dir: str | None = None  # default: beside the output, `<name>.checkpoints`
    resume: bool = True  # continue from the last checkpoint of the same job
    loader_workers: int = 0  # data-loading processes; 0 = in the training process
    project: dict = field(default_factory=dict)
    version: int = JOB_VERSION

    @classmethod
    def from_dict(cls, data: dict) -> TrainJob:
        data, version = cls._prepare(data)
        data["arguments"] = parse_arguments(data.get("arguments"))
        data["model_type"] = str(data.get("model_type", "UNET")).upper()
        data["backbone"] = str(data.get("backbone", "RESNET34")).upper()
        data["processor_type"] = str(data.get("processor_type", "AUTO")).upper()
        job = cls(**data, version=version)
        job.validate()
        return job

    def validate(self) -> None:
        """InputError naming the problem and the fix."""
        if self.model_type not in MODEL_TYPES:
            raise InputError(
                f"Unknown model type '{self.model_type}'; use one of {', '.join(MODEL_TYPES)}."
            )
        if self.backbone not in BACKBONES:
            raise InputError(
                f"Unknown backbone '{self.backbone}'; use one of {', '.join(BACKBONES)}."
            )
        if self.processor_type not in PROCESSORS:
            raise InputError(f"PROCESSOR_TYPE is one of {', '.join(PROCESSORS)}.")
        if self.batch_size < 1 or self.max_epochs < 1:
            raise InputError("BATCH_SIZE and MAX_EPOCHS must be at least 1.")
        if not (math.isfinite(self.learning_rate) and 0 <= self.learning_rate < 1):
            raise InputError(f"LEARNING_RATE is in [0, 1) (0 = find it), not {self.learning_rate}.")
        if not (0 <= self.validation_percent < 100):
            raise InputError("VALIDATION_PERCENT is in [0, 100).")
        if not self.output.lower().endswith(".dlpk"):
            raise InputError(f"The output '{self.output}' must be a .dlpk file.")
        for key in ("in_folder", "output"):
            if not os.path.isabs(getattr(self, key)):
                raise InputError(f"The job's '{key}' must be an absolute path.")
        known = set(ARGUMENTS.get(self.model_type, ())) | {"chip_size"}
        unknown = sorted(set(self.arguments) - known)
        if unknown:
            raise InputError(
                f"{self.model_type} does not take the argument(s) {', '.join(unknown)}; it "
                f"takes {', '.join(sorted(known))}."
            )
