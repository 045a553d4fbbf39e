"""Roles and what each may do (DESIGN.md's table, the reference text winning over its table)."""

from __future__ import annotations

from enum import StrEnum

from .errors import PermissionDeniedError, ValidationError


class Role(StrEnum):
    OWNER = "owner"
    ANALYST = "analyst"
    COLLECTOR = "collector"

    @classmethod
    def parse(cls, value: str | Role) -> Role:
        if isinstance(value, Role):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            names = ", ".join(r.value for r in cls)
            raise ValidationError(f"Unknown role '{value}'. Use one of: {names}.") from None


class Action(StrEnum):
    VIEW = "view"
    CONFIGURE = "configure the project (schema, work units, members)"
    COLLECT = "collect or edit samples"
    REVIEW = "review samples and set work unit statuses"
    EXPORT = "export training data"
    TRAIN = "train models"
    INFER = "run inference"
    COMPLETE_PROJECT = "mark the project complete or reopen it"
    DELETE_PROJECT = "delete the project"


_ALL = frozenset(Role)
_STAFF = frozenset({Role.OWNER, Role.ANALYST})
_OWNER = frozenset({Role.OWNER})

#: The single source of truth for permissions; the permission-matrix test is generated from it.
PERMISSIONS: dict[Action, frozenset[Role]] = {
    Action.VIEW: _ALL,
    Action.CONFIGURE: _STAFF,
    Action.COLLECT: _ALL,
    Action.REVIEW: _STAFF,
    Action.EXPORT: _STAFF,
    Action.TRAIN: _STAFF,
    Action.INFER: _STAFF,
    Action.COMPLETE_PROJECT: _OWNER,
    Action.DELETE_PROJECT: _OWNER,
}

_ORDER = (Role.OWNER, Role.ANALYST, Role.COLLECTOR)


def allowed(role: Role | None, action: Action) -> bool:
    return role is not None and role in PERMISSIONS[action]


def require(user: str, role: Role | None, action: Action, project_name: str) -> None:
    """Raise PermissionDeniedError naming the role(s) that may take the action."""
    if allowed(role, action):
        return
    needed = " or ".join(r.value for r in _ORDER if r in PERMISSIONS[action])
    if role is None:
        raise PermissionDeniedError(
            f"'{user}' is not a member of project '{project_name}', and to {action.value} "
            f"needs the role {needed}. Ask the project owner to add them "
            f"(dlstudio:addmember), or act as another user (USER parameter)."
        )
    raise PermissionDeniedError(
        f"'{user}' is {role.value} in project '{project_name}'; to {action.value} needs the "
        f"role {needed}. Ask the project owner for that role."
    )
