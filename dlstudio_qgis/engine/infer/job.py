"""The inference job: a validated, versioned config the worker reads (``infer`` command).

Standard library only, so that the QGIS side builds and checks jobs without torch.

What the worker writes (``output``):

- ``detect_objects``: newline-delimited GeoJSON features (one per line) in the raster's CRS,
  properties ``class_value``, ``class_name``, ``confidence``; the QGIS side copies them into
  the algorithm's feature sink.
- ``classify_pixels``: a tiled, compressed GeoTIFF of class values (0 = no class / nodata)
  with a colour table and a ``.aux.xml`` naming the classes; written aside and moved into
  place.
- ``classify_objects``: newline-delimited JSON, one object per input feature:
  ``{"id": <the feature's id>, "class_value", "class_name", "confidence"}``; ``features`` is
  a newline-delimited GeoJSON file of the features in the raster's CRS, each with an ``id``.

The result line has ``tool``, ``output``, ``model_type``, ``classes`` (the model's Classes:
Value, Name, Color), ``chips``, ``seconds``, ``device``, and per tool ``detections`` (count),
``pixel_counts`` ({class value: pixels}) or ``classified`` / ``skipped`` (features outside the
raster). The QGIS side can check a package before starting a worker with
``engine.train.package.read_package(path, weights=False)`` (standard library only).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

from ..jobconfig import JobConfig
from ..protocol import InputError
from ..train.job import PROCESSORS, parse_arguments

JOB_VERSION = 1
TOOLS = ("detect_objects", "classify_pixels", "classify_objects")
#: the ARGUMENTS each tool reads, with their defaults
ARGUMENTS: dict[str, dict] = {
    "detect_objects": {
        "padding": None,  # None: a quarter of the chip size
        "threshold": 0.5,
        "nms_overlap": 0.1,
        "batch_size": 4,
        "exclude_pad_detections": True,
        "test_time_augmentation": False,
    },
    "classify_pixels": {
        "padding": None,
        "batch_size": 4,
        "test_time_augmentation": False,
    },
    "classify_objects": {"batch_size": 4},
}
#: the model types (emd ModelParameters.model_type) each tool runs
TOOL_MODEL_TYPES = {
    "detect_objects": ("SSD", "RETINANET", "YOLOV3", "FASTERRCNN", "MASKRCNN"),
    "classify_pixels": ("UNET", "PSPNET", "DEEPLAB"),
    "classify_objects": ("FEATURE_CLASSIFIER",),
}
_FLAGS = {"exclude_pad_detections", "test_time_augmentation"}


def tool_arguments(tool: str, given: dict | str | None) -> dict:
    """The tool's arguments with defaults filled in and types checked; InputError on an
    unknown name or a bad value."""
    given = parse_arguments(given)
    known = ARGUMENTS[tool]
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise InputError(
            f"{_title(tool)} does not take the argument(s) {', '.join(unknown)}; it takes "
            f"{', '.join(known)}."
        )
    out = dict(known)
    for name, value in given.items():
        if value is None or value == "":
            continue  # the default
        if name in _FLAGS:
            if isinstance(value, str):
                if value.strip().lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise InputError(f"The argument {name} is True or False, not '{value}'.")
                value = value.strip().lower() in ("true", "1", "yes")
            out[name] = bool(value)
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InputError(f"The argument {name} must be a number, not {value!r}.") from None
        if not math.isfinite(number):
            raise InputError(f"The argument {name} must be a finite number, not {value!r}.")
        if name in ("threshold", "nms_overlap") and not 0 <= number <= 1:
            raise InputError(f"The argument {name} is in [0, 1], not {value}.")
        if name == "batch_size" and (number < 1 or number != int(number)):
            raise InputError(f"The argument batch_size is a whole number >= 1, not {value}.")
        if name == "padding" and (number < 0 or number != int(number)):
            raise InputError(f"The argument padding is a whole number of pixels >= 0, not {value}.")
        out[name] = int(number) if name in ("batch_size", "padding") else number
    return out


def _title(tool: str) -> str:
    return tool.replace("_", " ").capitalize()


@dataclass(frozen=True)
class InferJob(JobConfig):
    """Everything an inference run needs; paths are absolute."""

    KIND = "infer"
    WHAT = "inference job"
    VERSION = JOB_VERSION
    REQUIRED = ("tool", "raster", "model", "output")

    tool: str
    raster: str
    model: str  # a .dlpk, or a .emd with its weights beside it
    output: str
    arguments: dict = field(default_factory=dict)
    extent: list | None = None  # [xmin, ymin, xmax, ymax] in the raster's CRS
    run_nms: bool = True  # detect_objects: also suppress overlaps across classes
    max_overlap_ratio: float = 0.0  # detect_objects: the IoU above which RUN_NMS drops one
    processor_type: str = "AUTO"
    trust_code: bool = False  # the user trusts the package's own code
    features: str | None = None  # classify_objects: GeoJSON lines in the raster's CRS
    overwrite: bool = True
    project: dict = field(default_factory=dict)
    version: int = JOB_VERSION

    @classmethod
    def from_dict(cls, data: dict) -> InferJob:
        data, version = cls._prepare(data)
        data["tool"] = str(data.get("tool", "")).lower()
        data["processor_type"] = str(data.get("processor_type", "AUTO")).upper()
        if data["tool"] in TOOLS:
            data["arguments"] = tool_arguments(data["tool"], data.get("arguments"))
        job = cls(**data, version=version)
        job.validate()
        return job

    def validate(self) -> None:
        """InputError naming the problem and the fix."""
        if self.tool not in TOOLS:
            raise InputError(
                f"Unknown inference tool '{self.tool}'; use one of {', '.join(TOOLS)}."
            )
        if self.processor_type not in PROCESSORS:
            raise InputError(f"PROCESSOR_TYPE is one of {', '.join(PROCESSORS)}.")
        for key in ("raster", "model", "output"):
            if not os.path.isabs(getattr(self, key)):
                raise InputError(f"The job's '{key}' must be an absolute path.")
        if self.tool == "classify_objects" and not self.features:
            raise InputError("Classify objects needs the features to classify ('features').")
        if self.extent is not None:
            if len(self.extent) != 4 or not all(math.isfinite(float(v)) for v in self.extent):
                raise InputError("The extent is [xmin, ymin, xmax, ymax] in the raster's CRS.")
            xmin, ymin, xmax, ymax = (float(v) for v in self.extent)
            if xmin >= xmax or ymin >= ymax:
                raise InputError(f"The extent {list(self.extent)} is empty.")
        if not 0 <= self.max_overlap_ratio <= 1:
            raise InputError("MAX_OVERLAP_RATIO is in [0, 1].")
        tool_arguments(self.tool, self.arguments)
