"""Work unit and sample statuses and the transitions between them."""

from __future__ import annotations

from enum import StrEnum

from .errors import IllegalTransitionError, ValidationError


class _Status(StrEnum):
    @property
    def label(self) -> str:
        return self.value.replace("_", " ").capitalize()

    @classmethod
    def parse(cls, value: str | _Status):
        if isinstance(value, cls):
            return value
        key = str(value).strip().lower().replace(" ", "_")
        aliases = getattr(cls, "_aliases", lambda: {})()
        key = aliases.get(key, key)
        try:
            return cls(key)
        except ValueError:
            names = ", ".join(s.name for s in cls)
            raise ValidationError(
                f"Unknown {cls._kind()} status '{value}'. Use one of: {names}."
            ) from None


class WorkUnitStatus(_Status):
    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    PENDING_REVIEW = "pending_review"
    IN_REVIEW = "in_review"
    REVIEWED = "reviewed"

    @staticmethod
    def _kind() -> str:
        return "work unit"


class SampleStatus(_Status):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"

    @property
    def label(self) -> str:
        return "Pending approval" if self is SampleStatus.PENDING else self.value.capitalize()

    @staticmethod
    def _kind() -> str:
        return "sample"

    @staticmethod
    def _aliases() -> dict[str, str]:
        return {"pending_approval": "pending"}


W = WorkUnitStatus

#: Automatic (workflow) transitions of a work unit, by the event that causes them.
WORKFLOW: dict[str, dict[WorkUnitStatus, WorkUnitStatus]] = {
    # first sample collected or edited in a Queued unit
    "collect": {W.QUEUED: W.IN_PROGRESS, W.IN_PROGRESS: W.IN_PROGRESS},
    # the collector says the unit is done (also for a unit with nothing to collect)
    "mark_complete": {W.QUEUED: W.PENDING_REVIEW, W.IN_PROGRESS: W.PENDING_REVIEW},
    "open_review": {W.PENDING_REVIEW: W.IN_REVIEW},
    "finish_review": {W.IN_REVIEW: W.REVIEWED},
    "send_back": {W.IN_REVIEW: W.QUEUED},
}

_HINTS: dict[str, str] = {
    "collect": "Samples can be collected only in Queued or In progress units; ask an analyst "
    "to set the unit back to In progress (dlstudio:updateworkunitstatus).",
    "mark_complete": "Only Queued or In progress units can be marked complete.",
    "open_review": "Only units Pending review can be opened for review; the collector marks "
    "the unit complete first.",
    "finish_review": "Only units In review can be finished; open the review first.",
    "send_back": "Only units In review can be sent back to Queued.",
}


def workflow_target(event: str, current: WorkUnitStatus, unit_id: int) -> WorkUnitStatus:
    """The status `event` moves a unit in `current` to, or IllegalTransitionError."""
    table = WORKFLOW[event]
    if current not in table:
        raise IllegalTransitionError(
            f"Work unit {unit_id} is {current.label}; cannot {event.replace('_', ' ')} it. "
            + _HINTS[event]
        )
    return table[current]
