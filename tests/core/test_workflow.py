"""Work unit and sample state machines, as the team uses them."""

import pytest

from dlstudio_qgis.core import (
    ConcurrentChangeError,
    GeometryError,
    IllegalTransitionError,
    OutsideImageryError,
    PermissionDeniedError,
    ProjectCompleteError,
    ValidationError,
    point,
    polygon,
)
from dlstudio_qgis.core import SampleStatus as S
from dlstudio_qgis.core import WorkUnitStatus as W

from .conftest import ORIGIN, as_user, box, dump, make_project

# The 2x2 grid starts at the top-left: R1C1 (fid 2) top-left, R1C2 (3), R2C1 (4), R2C2 (5).
TOP_LEFT, TOP_RIGHT, BOTTOM_LEFT, BOTTOM_RIGHT = 2, 3, 4, 5


def statuses(project):
    return {u.fid: u.status for u in project.work_units()}


def unit_history(project, fid):
    return [(h.action, h.from_status, h.to_status) for h in project.history("work_unit", fid)]


def test_grid_covers_the_imagery_from_the_top_left(project):
    units = project.work_units()
    assert [u.name for u in units] == ["R1C1", "R1C2", "R2C1", "R2C2"]
    assert units[0].geometry.bounds() == (
        ORIGIN[0],
        ORIGIN[1] + 100,
        ORIGIN[0] + 100,
        ORIGIN[1] + 200,
    )
    assert sum(u.geometry.area() for u in units) == pytest.approx(200 * 200)


def test_grid_in_pixels_and_partial_cells(tmp_path):
    p = make_project(tmp_path / "p.gpkg")
    p.create_grid_work_units(150, units="pixels")  # 0.5 m pixels: 75 m cells over 200 m
    units = p.work_units()
    assert len(units) == 9
    assert sum(u.geometry.area() for u in units) == pytest.approx(200 * 200)
    assert min(u.geometry.area() for u in units) == pytest.approx(50 * 50)
    with pytest.raises(ValidationError, match="larger cell size"):
        p.create_grid_work_units(0.001)
    with pytest.raises(ValidationError, match="positive"):
        p.create_grid_work_units(-5)


def test_polygon_work_units_are_clipped_and_outside_ones_refused(tmp_path):
    p = make_project(tmp_path / "p.gpkg")
    x, y = ORIGIN
    half_out = polygon([(x - 50, y), (x + 50, y), (x + 50, y + 50), (x - 50, y + 50)])
    far = polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
    ids = p.create_work_units([half_out, far], names=["edge", "far"])
    (unit,) = p.work_units()
    assert unit.fid == ids[0] and unit.name == "edge"
    assert unit.geometry.area() == pytest.approx(50 * 50)
    with pytest.raises(OutsideImageryError, match="CRS"):
        p.create_work_units([far])
    with pytest.raises(GeometryError, match="Fix geometries"):
        p.create_work_units([polygon([(x, y), (x + 10, y + 10), (x + 10, y), (x, y + 10)])])


def test_work_units_cannot_be_redefined_after_collection(project):
    as_user(project, "carla").add_sample(box(10, 10), 1)
    snapshot = dump(project.path)
    with pytest.raises(ValidationError, match="already has 1 samples"):
        project.create_grid_work_units(50)
    assert dump(project.path) == snapshot


def test_collection_moves_a_queued_unit_in_progress_once(project):
    carla = as_user(project, "carla")
    ids = carla.add_samples([(box(10, 10), 1), (box(20, 20), "road"), (box(150, 150), "Building")])
    assert len(ids) == 3
    st = statuses(project)
    assert st[BOTTOM_LEFT] is W.IN_PROGRESS and st[TOP_RIGHT] is W.IN_PROGRESS
    assert st[TOP_LEFT] is W.QUEUED
    assert unit_history(project, BOTTOM_LEFT) == [
        ("create", None, "queued"), ("collect", "queued", "in_progress")]  # fmt: skip
    s = carla.samples(ids=[ids[1]])[0]
    assert (s.class_value, s.status, s.collected_by, s.work_unit) == (2, S.PENDING, "carla", 4)


def test_border_and_outside_rules(project):
    carla = as_user(project, "carla")
    # centroid exactly on the border between R2C1 (4) and R2C2 (5): the lowest id wins
    (fid,) = carla.add_samples([(box(100, 50), 1)])
    assert carla.samples(ids=[fid])[0].work_unit == BOTTOM_LEFT
    snapshot = dump(project.path)
    with pytest.raises(OutsideImageryError, match="1 of 2 samples lie outside"):
        carla.add_samples([(box(10, 10), 1), (box(500, 500), 1)])
    assert dump(project.path) == snapshot  # all or nothing


def test_sample_validation(project, tmp_path):
    carla = as_user(project, "carla")
    x, y = ORIGIN
    bowtie = polygon([(x + 1, y + 1), (x + 9, y + 9), (x + 9, y + 1), (x + 1, y + 9)])
    with pytest.raises(GeometryError, match="invalid and nothing was added"):
        carla.add_samples([(box(10, 10), 1), (bowtie, 1)])
    with pytest.raises(GeometryError, match="rectangles"):
        carla.add_sample(polygon([(x + 1, y + 1), (x + 9, y + 1), (x + 5, y + 9)]), 1)
    with pytest.raises(GeometryError, match="not points"):
        carla.add_sample(point(x + 5, y + 5), 1)
    with pytest.raises(
        ValidationError, match=r"Class 'tree' is not in the project's schema \(1:building, 2:road\)"
    ):
        carla.add_sample(box(10, 10), "tree")
    with pytest.raises(ValidationError, match="Class '7'"):
        carla.add_sample(box(10, 10), 7)
    assert carla.samples() == []
    pts = make_project(tmp_path / "pts.gpkg", tool="CLASSIFY_OBJECTS", sample_geometry="POINT")
    pts.add_sample(point(x + 5, y + 5), 1)
    with pytest.raises(GeometryError, match="are points"):
        pts.add_sample(box(10, 10), 1)


def test_full_review_cycle_with_send_back(project):
    carla, adam = as_user(project, "carla"), as_user(project, "adam")
    good, bad = carla.add_samples([(box(10, 10), 1), (box(30, 30), 1)])
    with pytest.raises(IllegalTransitionError, match="In progress; samples are reviewed"):
        adam.review_samples([good], "approved")
    carla.mark_unit_complete(BOTTOM_LEFT)
    with pytest.raises(IllegalTransitionError, match="Queued or In progress"):
        carla.add_sample(box(40, 40), 1)
    # reviewing a sample of a unit Pending review opens that unit
    r = adam.review_samples([good], "APPROVED")
    assert r.opened_units == [BOTTOM_LEFT] and r.changed == [good]
    assert statuses(project)[BOTTOM_LEFT] is W.IN_REVIEW
    assert project.work_unit(BOTTOM_LEFT).reviewer == "adam"
    with pytest.raises(IllegalTransitionError, match="still has 1 samples Pending approval"):
        adam.finish_review(BOTTOM_LEFT)
    adam.review_samples([bad], "rejected", comment="that is a shadow")
    adam.finish_review(BOTTOM_LEFT, "QUEUED", comment="fix the shadow")
    assert statuses(project)[BOTTOM_LEFT] is W.QUEUED
    # the collector fixes the rejected sample: it goes back to pending, the unit in progress
    carla.edit_sample(bad, geometry=box(35, 35))
    s = carla.samples(ids=[bad])[0]
    assert s.status is S.PENDING and s.reviewed_by is None
    assert statuses(project)[BOTTOM_LEFT] is W.IN_PROGRESS
    carla.mark_unit_complete(BOTTOM_LEFT)
    adam.open_review(BOTTOM_LEFT)
    assert adam.review_samples([good, bad], "approved").unchanged == [good]
    adam.finish_review(BOTTOM_LEFT)
    assert statuses(project)[BOTTOM_LEFT] is W.REVIEWED
    assert unit_history(project, BOTTOM_LEFT) == [
        ("create", None, "queued"),
        ("collect", "queued", "in_progress"),
        ("mark_complete", "in_progress", "pending_review"),
        ("open_review", "pending_review", "in_review"),
        ("send_back", "in_review", "queued"),
        ("collect", "queued", "in_progress"),
        ("mark_complete", "in_progress", "pending_review"),
        ("open_review", "pending_review", "in_review"),
        ("finish_review", "in_review", "reviewed"),
    ]
    reviews = [(h.from_status, h.to_status, h.comment) for h in project.history("sample", bad)
               if h.action == "review"]  # fmt: skip
    assert reviews == [("pending", "rejected", "that is a shadow"), ("pending", "approved", None)]
    prog = project.progress()
    assert prog["exportable_samples"] == 2 and prog["approved"] == 2
    assert prog["percent_reviewed"] == 25.0


def test_illegal_workflow_transitions_change_nothing(project):
    adam = as_user(project, "adam")
    snapshot = dump(project.path)
    with pytest.raises(IllegalTransitionError, match="Pending review"):
        adam.open_review(TOP_LEFT)
    with pytest.raises(IllegalTransitionError, match="open the review first"):
        adam.finish_review(TOP_LEFT)
    with pytest.raises(ValidationError, match="Unknown work unit status 'DONE'"):
        adam.set_work_unit_status([TOP_LEFT], "DONE")
    with pytest.raises(ValidationError, match="Unknown sample status"):
        adam.review_samples([1], "maybe")
    assert dump(project.path) == snapshot


def test_manual_batch_status_is_all_or_nothing_and_audited(project):
    adam = as_user(project, "adam")
    changed = adam.set_work_unit_status([2, 3, 4], "REVIEWED", comment="checked offline")
    assert changed == [2, 3, 4]
    assert adam.set_work_unit_status([2, 5], "reviewed") == [5]
    snapshot = dump(project.path)
    with pytest.raises(Exception, match="No work unit 99"):
        adam.set_work_unit_status([2, 99], "queued")
    assert dump(project.path) == snapshot
    with pytest.raises(ConcurrentChangeError, match="someone changed it"):
        adam.set_work_unit_status([2], "queued", expected="in_progress")
    h = project.history("work_unit", 2)[-1]
    assert (h.user, h.action, h.to_status, h.comment) == ("adam", "set_status", "reviewed",
                                                         "checked offline")  # fmt: skip


def test_collectors_edit_only_their_own_samples_and_units(project):
    carla, colin = as_user(project, "carla"), as_user(project, "colin")
    (fid,) = carla.add_samples([(box(10, 10), 1)])
    with pytest.raises(PermissionDeniedError, match="collected by 'carla'"):
        colin.edit_sample(fid, class_value=2)
    with pytest.raises(PermissionDeniedError, match="collected by 'carla'"):
        colin.delete_sample(fid)
    as_user(project, "adam").edit_sample(fid, class_value=2)  # analysts may
    carla.delete_sample(fid)
    assert project.samples() == []
    # Start next hands out units and locks them against other collectors
    unit = carla.start_next_unit()
    assert unit.assignee == "carla" and unit.lock_expires
    other = colin.start_next_unit()
    assert other.fid != unit.fid
    x0, y0, x1, y1 = unit.geometry.bounds()
    cx, cy = (x0 + x1) / 2 - ORIGIN[0], (y0 + y1) / 2 - ORIGIN[1]
    with pytest.raises(PermissionDeniedError, match="assigned to 'carla'"):
        colin.add_sample(box(cx, cy), 1)
    with pytest.raises(PermissionDeniedError, match="assigned to 'carla'"):
        colin.mark_unit_complete(unit.fid)
    carla.add_sample(box(cx, cy), 1)


def test_complete_project_refuses_changes_until_reopened(project):
    project.set_complete()
    with pytest.raises(ProjectCompleteError, match="owner \\(olivia\\) can reopen"):
        as_user(project, "carla").add_sample(box(10, 10), 1)
    with pytest.raises(ProjectCompleteError):
        project.add_member("zoe", "collector")
    project.set_complete(False)
    as_user(project, "carla").add_sample(box(10, 10), 1)


def test_progress_is_derived_from_state(project):
    carla, colin, adam = (as_user(project, u) for u in ("carla", "colin", "adam"))
    carla.add_samples([(box(10, 10), 1), (box(20, 20), 2)])
    colin.add_samples([(box(150, 150), 1)])
    carla.mark_unit_complete(BOTTOM_LEFT)
    adam.review_samples([1], "approved")
    adam.review_samples([2], "rejected")
    p = project.progress()
    assert p["work_units"]["total"] == 4
    by_status = {"queued": 2, "in_progress": 1, "pending_review": 0, "in_review": 1, "reviewed": 0}
    assert p["work_units"]["by_status"] == by_status
    assert p["samples"]["by_status"] == {"pending": 1, "approved": 1, "rejected": 1}
    assert p["per_collector"]["carla"] == {"pending": 0, "approved": 1, "rejected": 1, "total": 2}
    assert p["per_collector"]["colin"]["total"] == 1
    assert p["per_class"][1] == {"name": "building", "count": 2}
    unit = next(u for u in p["per_unit"] if u["fid"] == BOTTOM_LEFT)
    assert unit["samples"] == {"pending": 0, "approved": 1, "rejected": 1}
    assert p["exportable_samples"] == 0  # approved, but its unit is not Reviewed yet
    assert sum(p["work_units"]["by_status"].values()) == p["work_units"]["total"]


def test_batch_workflow_step_is_all_or_nothing(project):
    carla, adam = as_user(project, "carla"), as_user(project, "adam")
    carla.add_samples([(box(10, 10), 1), (box(150, 150), 1)])  # units 4 and 3
    assert carla.workflow_units([3, 4], "mark_complete", "done") == [3, 4]
    assert carla.workflow_units([3, 4], "mark_complete") == []  # already there
    snapshot = dump(project.path)
    # unit 2 is Queued: opening its review is illegal, so units 3 and 4 stay as they are
    with pytest.raises(IllegalTransitionError, match="Work unit 2 is Queued"):
        adam.workflow_units([3, 4, 2], "open_review")
    assert dump(project.path) == snapshot
    assert adam.workflow_units([3, 4], "open_review", "looking") == [3, 4]
    assert project.work_unit(3).reviewer == "adam"
    assert project.history("work_unit", 3)[-1].comment == "looking"
    with pytest.raises(IllegalTransitionError, match="Pending approval"):
        adam.workflow_units([3], "finish_review")
    with pytest.raises(ValidationError, match="Unknown workflow step"):
        adam.workflow_units([3], "approve")
    with pytest.raises(PermissionDeniedError, match="analyst"):
        carla.workflow_units([3], "send_back")


def test_finish_reviews_sends_back_only_for_this_rounds_rejections(project):
    carla, adam = as_user(project, "carla"), as_user(project, "adam")
    a, b, c = carla.add_samples([(box(10, 10), 1), (box(30, 30), 1), (box(50, 50), 1)])
    carla.mark_unit_complete(BOTTOM_LEFT)
    adam.review_samples([a, b], "approved")
    assert adam.finish_reviews([BOTTOM_LEFT]) == {}  # c is still pending: nothing finished
    adam.review_samples([c], "rejected", "a shadow")
    assert adam.finish_reviews([BOTTOM_LEFT]) == {BOTTOM_LEFT: (W.QUEUED, 1)}
    # the collector adds a missing box but leaves c as it is; the reviewer keeps c rejected
    (d,) = carla.add_samples([(box(70, 70), 1)])
    carla.mark_unit_complete(BOTTOM_LEFT)
    adam.review_samples([d], "approved")
    assert adam.finish_reviews([BOTTOM_LEFT]) == {BOTTOM_LEFT: (W.REVIEWED, 0)}
    assert project.progress()["exportable_samples"] == 3
