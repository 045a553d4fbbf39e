"""Creating a project from the wizard's answers, through the same Processing algorithms as the
Toolbox (create project, create work units, add member), all or nothing."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

from qgis.core import QgsProcessingContext, QgsProcessingException, QgsProcessingFeedback

from ..core import ProjectClass
from ..core.errors import DLStudioError
from ..core.model import validate_classes
from ..processing.base import resolve_user


@dataclass
class ProjectSpec:
    name: str
    raster: object  # a raster layer or its source
    inference_tool: str
    classes: list[ProjectClass]
    output: str
    sample_geometry: str = "POLYGON"
    grid_size: float | None = None  # a grid of this cell size, or
    grid_units: str = "MAP_UNITS"
    polygons: object = None  # the polygons of this layer; neither: the whole extent
    members: list[tuple[str, str]] = field(default_factory=list)  # (user, role)
    user: str = ""

    def problems(self) -> list[str]:
        """What must be fixed before creating; empty when the answers are complete."""
        out = []
        if not self.name.strip():
            out.append("Give the project a name.")
        if not self.raster:
            out.append("Choose the imagery (a raster layer or file).")
        try:
            validate_classes(list(self.classes))
        except DLStudioError as exc:
            out.append(str(exc))
        if not self.output.strip():
            out.append("Choose where to save the project file (.gpkg).")
        elif not self.output.lower().endswith(".gpkg"):
            out.append("The project file must end in .gpkg.")
        elif Path(self.output).exists():
            out.append(f"'{self.output}' already exists; choose another file name.")
        if self.grid_size is not None and self.grid_size <= 0:
            out.append("The grid cell size must be positive.")
        seen = set()
        for user, role in self.members:
            if not user.strip():
                out.append("A member has no user name.")
            elif user.strip() in seen:
                out.append(f"Member '{user}' is listed twice.")
            seen.add(user.strip())
            if role not in ("analyst", "collector"):
                out.append(f"Member '{user}': the role is analyst or collector.")
        return out


def create_project(spec: ProjectSpec, context: QgsProcessingContext | None = None) -> str:
    """Run the algorithms; on any failure the new file is removed and the error raised."""
    import processing

    problems = spec.problems()
    if problems:
        raise QgsProcessingException(" ".join(problems))
    user = resolve_user(spec.user)
    classes = ",".join(f"{c.value}:{c.name}:{c.color}" for c in spec.classes)
    feedback = QgsProcessingFeedback()

    def run(alg: str, **params):
        return processing.run(f"dlstudio:{alg}", {**params, "USER": user}, feedback=feedback,
                              context=context)  # fmt: skip

    run("createproject", NAME=spec.name.strip(), INPUT_RASTER=spec.raster,
        INFERENCE_TOOL=spec.inference_tool, CLASSES=classes,
        SAMPLE_GEOMETRY=spec.sample_geometry, OUTPUT=spec.output)  # fmt: skip
    try:
        for member, role in spec.members:
            run("addmember", PROJECT=spec.output, MEMBER=member.strip(), ROLE=role)
        if spec.polygons is not None:
            run("createworkunits", PROJECT=spec.output, POLYGONS=spec.polygons)
        elif spec.grid_size:
            run("createworkunits", PROJECT=spec.output, CELL_SIZE=spec.grid_size,
                CELL_UNITS=spec.grid_units)  # fmt: skip
    except BaseException:
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                Path(spec.output + suffix).unlink()
        raise
    return spec.output
