"""Every role x every action, generated from the one permission table in core.roles."""

import pytest

from dlstudio_qgis.core import PERMISSIONS, Action, PermissionDeniedError, Role

from .conftest import as_user, box, dump

# Real operations for each action; each must succeed on the fixture's state when allowed.
OPERATIONS = {
    Action.CONFIGURE: {
        "add member": lambda p: p.add_member("zoe", "collector"),
        "add class": lambda p: p.add_class(3, "tree", "#00ff00"),
        "assign units": lambda p: p.assign_work_units([2], "carla"),
    },
    Action.COLLECT: {
        "collect sample": lambda p: p.add_sample(box(150, 150), 1),
        "start next unit": lambda p: p.start_next_unit(),
    },
    Action.REVIEW: {
        "review sample": lambda p: p.review_samples([1], "approved"),
        "open review": lambda p: p.open_review(4),
        "set status by hand": lambda p: p.set_work_unit_status([2], "in_progress"),
    },
    Action.EXPORT: {"export job": lambda p: p.submit_job("export", {})},
    Action.TRAIN: {"train job": lambda p: p.submit_job("train", {})},
    Action.INFER: {"inference job": lambda p: p.submit_job("infer", {})},
    Action.COMPLETE_PROJECT: {"mark complete": lambda p: p.set_complete()},
    Action.DELETE_PROJECT: {"delete project": lambda p: p.delete()},
}
USERS = {Role.OWNER: "olivia", Role.ANALYST: "adam", Role.COLLECTOR: "carla", None: "mallory"}
CASES = [
    pytest.param(role, action, op, id=f"{role.value if role else 'non-member'}-{name}")
    for action, ops in OPERATIONS.items()
    for name, op in ops.items()
    for role in USERS
]


def test_every_action_has_operations():
    assert set(OPERATIONS) == set(PERMISSIONS) - {Action.VIEW}


@pytest.fixture
def state(project):
    """A sample collected by carla in unit 4, which is Pending review."""
    carla = as_user(project, "carla")
    carla.add_sample(box(10, 10), 1)
    carla.mark_unit_complete(4)
    return project


@pytest.mark.parametrize(("role", "action", "op"), CASES)
def test_permission_matrix(state, role, action, op):
    acting = as_user(state, USERS[role])
    if role in PERMISSIONS[action]:
        op(acting)
        return
    snapshot = dump(state.path)
    with pytest.raises(PermissionDeniedError) as err:
        op(acting)
    for needed in PERMISSIONS[action]:
        assert needed.value in str(err.value)
    assert USERS[role] in str(err.value)
    assert dump(state.path) == snapshot


def test_view_and_may(state):
    for role, user in USERS.items():
        acting = as_user(state, user)
        assert acting.may(Action.VIEW) is (role is not None)
        for action in OPERATIONS:
            assert acting.may(action) is (role in PERMISSIONS[action])
