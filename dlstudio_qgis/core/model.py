"""Plain records the store returns, and the parsing of user-facing values."""

from __future__ import annotations

import getpass
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from .errors import ValidationError
from .geometry import Geometry
from .states import SampleStatus, WorkUnitStatus

PALETTE = ("#e41a1c", "#377eb8", "#4daf4a", "#984ea3", "#ff7f00", "#ffff33", "#a65628", "#f781bf")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def current_user() -> str:
    """The acting user: $DLSTUDIO_USER if set, else the operating-system user name."""
    return (os.environ.get("DLSTUDIO_USER") or getpass.getuser() or "unknown").strip()


class InferenceTool(StrEnum):
    DETECT_OBJECTS = "DETECT_OBJECTS"
    CLASSIFY_PIXELS = "CLASSIFY_PIXELS"
    CLASSIFY_OBJECTS = "CLASSIFY_OBJECTS"

    @classmethod
    def parse(cls, value: str | InferenceTool) -> InferenceTool:
        if isinstance(value, InferenceTool):
            return value
        key = str(value).strip().upper().replace(" ", "_")
        try:
            return cls(key)
        except ValueError:
            names = ", ".join(t.value for t in cls)
            raise ValidationError(
                f"Unknown inference tool '{value}'. Use one of: {names}."
            ) from None

    def sample_geometries(self) -> tuple[str, ...]:
        """Geometry types its samples may have; the first is the default."""
        return ("POLYGON", "POINT") if self is InferenceTool.CLASSIFY_OBJECTS else ("POLYGON",)


@dataclass(frozen=True)
class ProjectClass:
    value: int
    name: str
    color: str


def parse_classes(text: str) -> list[ProjectClass]:
    """Parse `1:building:#ff0000,2:road:#0000ff` (the colour is optional)."""
    classes: list[ProjectClass] = []
    for i, item in enumerate(p.strip() for p in (text or "").split(",")):
        if not item:
            continue
        bits = [b.strip() for b in item.split(":")]
        if len(bits) not in (2, 3) or not bits[0].lstrip("-").isdigit() or not bits[1]:
            raise ValidationError(
                f"Class '{item}' is not 'value:name' or 'value:name:#rrggbb'; "
                "write for example 1:building:#ff0000,2:road:#0000ff."
            )
        color = bits[2] if len(bits) == 3 else PALETTE[i % len(PALETTE)]
        classes.append(ProjectClass(int(bits[0]), bits[1], color))
    return validate_classes(classes)


def validate_classes(classes: list[ProjectClass]) -> list[ProjectClass]:
    if not classes:
        raise ValidationError("A project needs at least one class, e.g. 1:building:#ff0000.")
    out = []
    for c in classes:
        if c.value <= 0:
            raise ValidationError(
                f"Class value {c.value} ('{c.name}') must be a positive integer; 0 means "
                "no data in exported label chips."
            )
        if not re.fullmatch(r"#[0-9a-fA-F]{6}", c.color):
            raise ValidationError(
                f"Class '{c.name}' has colour '{c.color}'; write it as #rrggbb, e.g. #ff0000."
            )
        out.append(ProjectClass(int(c.value), c.name.strip(), c.color.lower()))
    for attr in ("value", "name"):
        seen = [getattr(c, attr) for c in out]
        dupes = sorted({str(v) for v in seen if seen.count(v) > 1})
        if dupes:
            raise ValidationError(f"Class {attr}s must be unique; repeated: {', '.join(dupes)}.")
    return out


@dataclass(frozen=True)
class Imagery:
    """The raster a project is built on, as QGIS (or rasterio) describes it."""

    source: str
    extent: tuple[float, float, float, float]
    width: int
    height: int
    crs_wkt: str
    crs_authid: str | None = None

    @property
    def pixel_size(self) -> tuple[float, float]:
        xmin, ymin, xmax, ymax = self.extent
        return (xmax - xmin) / self.width, (ymax - ymin) / self.height

    def validate(self) -> None:
        if not (self.crs_wkt or "").strip():
            raise ValidationError(
                f"Raster '{self.source}' has no coordinate reference system. Assign one "
                "(Raster > Projections > Assign Projection, or gdal_edit.py -a_srs) and retry."
            )
        xmin, ymin, xmax, ymax = self.extent
        if not (xmax > xmin and ymax > ymin and self.width > 0 and self.height > 0):
            raise ValidationError(f"Raster '{self.source}' has an empty extent or no pixels.")


@dataclass(frozen=True)
class ProjectInfo:
    name: str
    owner: str
    inference_tool: InferenceTool
    sample_geometry: str
    imagery: Imagery
    srs_id: int
    status: str
    created_at: str
    schema_version: int


@dataclass(frozen=True)
class WorkUnit:
    fid: int
    name: str | None
    status: WorkUnitStatus
    assignee: str | None
    lock_expires: str | None
    reviewer: str | None
    updated_at: str
    updated_by: str
    geometry: Geometry = field(repr=False)


@dataclass(frozen=True)
class Sample:
    fid: int
    class_value: int
    status: SampleStatus
    work_unit: int
    collected_by: str
    collected_at: str
    updated_by: str
    updated_at: str
    reviewed_by: str | None
    reviewed_at: str | None
    review_comment: str | None
    source: str | None
    geometry: Geometry = field(repr=False)


@dataclass(frozen=True)
class HistoryEntry:
    id: int
    at: str
    user: str
    entity: str
    entity_id: str | None
    action: str
    from_status: str | None
    to_status: str | None
    comment: str | None


@dataclass(frozen=True)
class ReviewResult:
    changed: list[int]
    unchanged: list[int]
    opened_units: list[int]
