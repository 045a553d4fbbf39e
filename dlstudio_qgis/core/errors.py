"""Exceptions raised by the project store.

Every message names the problem and the fix, so the Processing layer can show it as is.
"""

from __future__ import annotations


class DLStudioError(Exception):
    """Base class of every error the core raises on purpose."""


class ProjectFileError(DLStudioError):
    """The project file is missing, not a GeoPackage, or not a project."""


class SchemaVersionError(ProjectFileError):
    """The project file was written by a newer plugin."""


class PermissionDeniedError(DLStudioError):
    """The acting user's role does not allow the action."""


class ProjectCompleteError(PermissionDeniedError):
    """The project is marked complete and refuses changes."""


class IllegalTransitionError(DLStudioError):
    """A status change the state machine does not allow."""


class ConcurrentChangeError(IllegalTransitionError):
    """Another user or process changed the row since it was read."""


class ValidationError(DLStudioError, ValueError):
    """Bad input: unknown status, class, parameter, or an invalid geometry."""


class GeometryError(ValidationError):
    """A geometry that is invalid or of the wrong type."""


class OutsideImageryError(ValidationError):
    """Samples or work units that fall outside the project's imagery."""


class NotFoundError(ValidationError):
    """A work unit, sample, member or job id that does not exist."""
