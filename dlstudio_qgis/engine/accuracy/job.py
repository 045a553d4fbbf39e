"""The accuracy job: a validated, versioned config the worker reads (``accuracy`` command).

Standard library only, so that the QGIS side builds and checks jobs without the engine's
heavy imports.

Tools and their inputs (paths absolute; vector inputs are GeoJSON FeatureCollections that
the QGIS side wrote, already reprojected):

- ``object_detection``: ``detections`` (polygons with ``class_value`` and ``confidence``),
  ``ground_truth`` (polygons with ``class_value``, in the detections' CRS), optional ``mask``
  (polygons in the same CRS: only objects whose centre is inside count), ``min_iou``.
- ``pixel_classification``: ``classified`` (a raster of class values, 0 = no class),
  exactly one of ``reference_raster`` (any CRS and grid: warped onto the classified raster's
  grid, nearest neighbour) and ``reference_features`` (polygons with ``class_value`` in the
  classified raster's CRS); optional ``extent`` ([xmin, ymin, xmax, ymax] in that CRS) and
  ``window_size`` (pixels per side of the windows read at a time).

``classes`` maps class values (as strings) to names for the report; ``report`` is an HTML
file to write (optional). The result line carries the figures (see command.py).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

from ..jobconfig import JobConfig
from ..protocol import InputError

JOB_VERSION = 1
TOOLS = ("object_detection", "pixel_classification")
MIN_WINDOW = 16


@dataclass(frozen=True)
class AccuracyJob(JobConfig):
    """Everything an accuracy assessment needs."""

    KIND = "accuracy"
    WHAT = "accuracy job"
    VERSION = JOB_VERSION
    REQUIRED = ("tool",)

    tool: str
    detections: str | None = None
    ground_truth: str | None = None
    mask: str | None = None
    min_iou: float = 0.5
    classified: str | None = None
    reference_raster: str | None = None
    reference_features: str | None = None
    extent: list | None = None
    window_size: int = 1024
    classes: dict = field(default_factory=dict)
    report: str | None = None
    title: str = ""
    version: int = JOB_VERSION

    @classmethod
    def from_dict(cls, data: dict) -> AccuracyJob:
        data, version = cls._prepare(data)
        data["tool"] = str(data.get("tool", "")).lower()
        data["classes"] = {str(k): str(v) for k, v in (data.get("classes") or {}).items()}
        job = cls(**data, version=version)
        job.validate()
        return job

    def validate(self) -> None:
        """InputError naming the problem and the fix."""
        if self.tool not in TOOLS:
            raise InputError(f"Unknown accuracy tool '{self.tool}'; use one of {', '.join(TOOLS)}.")
        if self.tool == "object_detection":
            self._need("detections", "ground_truth")
            self._absolute("detections", "ground_truth", "mask", "report")
            if not (isinstance(self.min_iou, int | float) and 0 < self.min_iou <= 1):
                raise InputError(f"MIN_IOU is in (0, 1], not {self.min_iou}.")
            return
        self._need("classified")
        given = [k for k in ("reference_raster", "reference_features") if getattr(self, k)]
        if len(given) != 1:
            raise InputError(
                "Give exactly one reference: a reference raster or reference polygons "
                f"({'both were given' if given else 'neither was given'})."
            )
        self._absolute("classified", "reference_raster", "reference_features", "report")
        if isinstance(self.window_size, bool) or not isinstance(self.window_size, int):
            raise InputError(
                f"The window size is a whole number of pixels, not {self.window_size!r}."
            )
        if self.window_size < MIN_WINDOW:
            raise InputError(f"The window size is at least {MIN_WINDOW} pixels.")
        if self.extent is not None:
            if len(self.extent) != 4 or not all(math.isfinite(float(v)) for v in self.extent):
                raise InputError("The extent is [xmin, ymin, xmax, ymax] in the raster's CRS.")
            xmin, ymin, xmax, ymax = (float(v) for v in self.extent)
            if xmin >= xmax or ymin >= ymax:
                raise InputError(f"The extent {list(self.extent)} is empty.")

    def _need(self, *keys: str) -> None:
        for key in keys:
            if not getattr(self, key):
                raise InputError(f"The {self.tool.replace('_', ' ')} accuracy job needs '{key}'.")

    def _absolute(self, *keys: str) -> None:
        for key in keys:
            value = getattr(self, key)
            if value and not os.path.isabs(value) and not value.startswith("/vsi"):
                raise InputError(f"The job's '{key}' must be an absolute path.")
