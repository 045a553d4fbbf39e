"""The export job: a validated, versioned config the worker reads, so a run can be repeated
and audited (it is copied into the output folder as `export_job.json`)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from ...core.errors import DLStudioError
from ...core.formats import IMAGE_FORMATS, check_format
from ..jobconfig import JobConfig
from ..protocol import InputError

JOB_VERSION = 1


@dataclass(frozen=True)
class ExportClass:
    value: int
    name: str
    color: str = "#ff0000"


@dataclass(frozen=True)
class ExportJob(JobConfig):
    """Everything an export needs. Paths are absolute; geometry is in the raster's CRS.

    samples: a GeoJSON FeatureCollection (points or polygons) whose features carry an integer
    `class_value` property; the QGIS side has already filtered and reprojected them.
    """

    KIND = "export"
    WHAT = "export job"
    VERSION = JOB_VERSION
    REQUIRED = ("raster", "samples", "classes", "output")

    raster: str
    samples: str
    classes: tuple[ExportClass, ...]
    output: str
    metadata_format: str = "PASCAL_VOC_rectangles"
    image_format: str = "TIFF"
    tile_size: tuple[int, int] = (256, 256)  # x (columns), y (rows)
    stride: tuple[int, int] = (128, 128)
    bands: tuple[int, ...] | None = None  # 1-based; None = all
    rotation_angle: float = 0.0  # degrees; extra chips rotated by its multiples
    buffer_radius: float = 0.0  # map units, around point samples
    output_nofeature_tiles: bool = False
    extent: tuple[float, float, float, float] | None = None  # xmin, ymin, xmax, ymax
    min_overlap: float = 0.5  # keep an object cut by a chip edge when this much is inside
    overwrite: bool = False
    inference_tool: str | None = None
    workers: int = 0  # 0 = one per core
    project: dict = field(default_factory=dict)  # name, path, counts: for the record only
    version: int = JOB_VERSION

    # --- reading and checking --------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: dict) -> ExportJob:
        data, version = cls._prepare(data)
        try:
            data["classes"] = tuple(
                ExportClass(int(c["value"]), str(c["name"]), str(c.get("color", "#ff0000")))
                for c in data["classes"]
            )
            for key in ("tile_size", "stride"):
                if key in data:
                    v = data[key]
                    data[key] = (
                        (int(v), int(v)) if isinstance(v, int | float) else tuple(int(x) for x in v)
                    )
            if data.get("bands") is not None:
                data["bands"] = tuple(int(b) for b in data["bands"])
            if data.get("extent") is not None:
                data["extent"] = tuple(float(x) for x in data["extent"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"The export job is malformed: {exc}.") from exc
        job = cls(**data, version=version)
        job.validate()
        return job

    def validate(self) -> None:
        """InputError naming the problem and the fix; touches no file but reads none either."""
        try:
            check_format(self.metadata_format, self.inference_tool)
        except DLStudioError as exc:
            raise InputError(str(exc)) from exc
        if self.image_format not in IMAGE_FORMATS:
            raise InputError(
                f"Unknown image format '{self.image_format}'; use {', '.join(IMAGE_FORMATS)}."
            )
        if not self.classes:
            raise InputError("The export needs at least one class.")
        values = [c.value for c in self.classes]
        if len(set(values)) != len(values) or min(values) <= 0:
            raise InputError("Class values must be unique positive integers (0 is no data).")
        if self.metadata_format in ("Classified_Tiles", "RCNN_Masks") and max(values) > 255:
            raise InputError(
                f"{self.metadata_format} label chips are 8-bit: class values must be <= 255."
            )
        for name, (x, y) in (("tile size", self.tile_size), ("stride", self.stride)):
            if x <= 0 or y <= 0:
                raise InputError(f"The {name} must be positive, not {x} x {y}.")
        if not (0.0 <= self.min_overlap <= 1.0):
            raise InputError(f"min_overlap is a fraction in [0, 1], not {self.min_overlap}.")
        if not math.isfinite(self.rotation_angle) or not (0 <= self.rotation_angle < 360):
            raise InputError(
                f"The rotation angle is in [0, 360) degrees, not {self.rotation_angle}."
            )
        if self.buffer_radius < 0:
            raise InputError("The buffer radius cannot be negative.")
        if self.bands is not None and (not self.bands or min(self.bands) < 1):
            raise InputError("Bands are 1-based band numbers, e.g. [1, 2, 3].")
        if self.extent is not None:
            xmin, ymin, xmax, ymax = self.extent
            if not (xmax > xmin and ymax > ymin):
                raise InputError(f"The extent {self.extent} is empty.")
        for key in ("raster", "samples", "output"):
            if not os.path.isabs(getattr(self, key)):
                raise InputError(f"The job's '{key}' must be an absolute path.")

    def check_output(self) -> None:
        """Refuse a non-empty output folder unless overwrite is set (nothing is written)."""
        out = Path(self.output)
        if out.exists() and not out.is_dir():
            raise InputError(f"The output '{out}' is a file; give a folder.")
        if out.is_dir() and any(out.iterdir()) and not self.overwrite:
            raise InputError(
                f"The output folder '{out}' is not empty. Choose an empty or new folder, or "
                "set OVERWRITE to replace its content."
            )
