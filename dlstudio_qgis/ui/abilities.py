"""What the acting user may do in the docks, and why not: Qt-free, from the core's PERMISSIONS.

The docks enable a control when its ability is allowed and show the reason as its tooltip
otherwise. The core still checks every call; this only keeps the UI honest about it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core import PERMISSIONS, Action, Role
from ..core.roles import allowed

#: the dock's abilities -> the core action they need
ABILITY_ACTIONS: dict[str, Action] = {
    "configure": Action.CONFIGURE,
    "collect": Action.COLLECT,
    "review": Action.REVIEW,
    "set_status": Action.REVIEW,
    "export": Action.EXPORT,
    "train": Action.TRAIN,
    "infer": Action.INFER,
    "complete": Action.COMPLETE_PROJECT,
}

#: the Processing algorithms some abilities open
ABILITY_ALGORITHMS: dict[str, tuple[str, ...]] = {
    "export": ("dlstudio:exporttrainingdata",),
    "train": ("dlstudio:traindeeplearningmodel",),
}

#: inference tool -> the algorithm that runs its models
INFERENCE_ALGORITHMS = {
    "DETECT_OBJECTS": "dlstudio:detectobjects",
    "CLASSIFY_PIXELS": "dlstudio:classifypixels",
    "CLASSIFY_OBJECTS": "dlstudio:classifyobjects",
}

_ORDER = (Role.OWNER, Role.ANALYST, Role.COLLECTOR)


@dataclass(frozen=True)
class Ability:
    allowed: bool
    reason: str = ""  # why not, when not allowed


def roles_for(action: Action) -> str:
    return " or ".join(r.value for r in _ORDER if r in PERMISSIONS[action])


def abilities(
    user: str,
    role: Role | None,
    project_status: str = "active",
    inference_tool: str | None = None,
    algorithms: set[str] | frozenset[str] = frozenset(),
) -> dict[str, Ability]:
    """Each dock ability for `user` with `role` in a project in `project_status`.

    `algorithms` are the Processing algorithm ids registered now: a button whose algorithm is
    missing is disabled with a reason even when the role allows it.
    """
    out: dict[str, Ability] = {}
    for key, action in ABILITY_ACTIONS.items():
        if role is None:
            out[key] = Ability(
                False,
                f"'{user}' is not a member of this project; ask the owner to add you "
                f"(to {action.value} needs the role {roles_for(action)}).",
            )
            continue
        if not allowed(role, action):
            out[key] = Ability(
                False,
                f"You are {role.value}; to {action.value} needs the role {roles_for(action)}.",
            )
            continue
        if project_status == "complete" and action is not Action.COMPLETE_PROJECT:
            out[key] = Ability(False, "The project is marked complete; its owner can reopen it.")
            continue
        needed = ABILITY_ALGORITHMS.get(key, ())
        if key == "infer":
            needed = (INFERENCE_ALGORITHMS.get(inference_tool or "", ""),)
        missing = [a for a in needed if a not in algorithms]
        if missing:
            out[key] = Ability(
                False,
                f"The Processing algorithm {missing[0] or 'for this inference tool'} is not "
                "available in this installation.",
            )
            continue
        out[key] = Ability(True)
    return out


def no_project() -> dict[str, Ability]:
    return {k: Ability(False, "Open or create a project first.") for k in ABILITY_ACTIONS}
