"""The Qt-free core: project store, roles, state machines and audit history.

Never imports qgis, Qt or torch, so it runs and is tested without QGIS.
"""

from .errors import (
    ConcurrentChangeError,
    DLStudioError,
    GeometryError,
    IllegalTransitionError,
    NotFoundError,
    OutsideImageryError,
    PermissionDeniedError,
    ProjectCompleteError,
    ProjectFileError,
    SchemaVersionError,
    ValidationError,
)
from .geometry import Geometry, point, polygon, rectangle
from .model import (
    Imagery,
    InferenceTool,
    ProjectClass,
    ReviewResult,
    current_user,
    parse_classes,
)
from .project import Project
from .roles import PERMISSIONS, Action, Role
from .schema import SCHEMA_VERSION
from .states import SampleStatus, WorkUnitStatus

__all__ = [
    "PERMISSIONS", "SCHEMA_VERSION", "Action", "ConcurrentChangeError", "DLStudioError",
    "Geometry", "GeometryError", "IllegalTransitionError", "Imagery", "InferenceTool",
    "NotFoundError", "OutsideImageryError", "PermissionDeniedError", "Project",
    "ProjectClass", "ProjectCompleteError", "ProjectFileError", "ReviewResult", "Role",
    "SampleStatus", "SchemaVersionError", "ValidationError", "WorkUnitStatus", "current_user",
    "parse_classes", "point", "polygon", "rectangle",
]  # fmt: skip
