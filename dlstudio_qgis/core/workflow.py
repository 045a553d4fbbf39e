"""The workflow side of a project: work units, samples and review, progress.

Every status change is one compare-and-set plus one history row (rows.transition).
"""

from .progress import ProgressMixin
from .samples import SamplesMixin
from .units import WORKFLOW_EVENTS, WorkUnitsMixin

__all__ = ["WORKFLOW_EVENTS", "WorkflowMixin"]


class WorkflowMixin(WorkUnitsMixin, SamplesMixin, ProgressMixin):
    """Mixed into Project; relies on its path, user, name, info, _require and _load_info."""
