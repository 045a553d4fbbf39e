"""Restoring a deleted sample (the collect dock's undo of a deletion): the same fid, class,
status and review come back, the history goes on under the same id; the rules of deletion."""

import dataclasses

import pytest

from dlstudio_qgis.core import (
    ConcurrentChangeError,
    IllegalTransitionError,
    NotFoundError,
    OutsideImageryError,
    PermissionDeniedError,
    ValidationError,
)
from dlstudio_qgis.core import SampleStatus as S
from dlstudio_qgis.core import WorkUnitStatus as W

from .conftest import as_user, box, dump

BOTTOM_LEFT = 4  # the 2x2 grid: R2C1 holds box(10, 10) and box(30, 30)


def history(project, fid):
    return [(h.user, h.action, h.from_status, h.to_status)
            for h in project.history("sample", fid)]  # fmt: skip


def test_a_deleted_sample_comes_back_with_its_id_class_and_history(project):
    carla = as_user(project, "carla")
    keep, fid = carla.add_samples([(box(10, 10), 1), (box(30, 30), 2)])
    before = carla.samples(ids=[fid])[0]
    carla.delete_sample(fid)
    carla.add_sample(box(50, 50), 1)  # a later sample does not take the freed id
    assert carla.restore_sample(before) == fid
    (back,) = carla.samples(ids=[fid])
    assert back.class_value == 2 and back.status is S.PENDING
    assert back.geometry == before.geometry and back.work_unit == before.work_unit
    assert (back.collected_by, back.collected_at) == ("carla", before.collected_at)
    assert history(project, fid) == [
        ("carla", "collect", None, "pending"),
        ("carla", "delete", "pending", None),
        ("carla", "restore", None, "pending"),
    ]
    assert sorted(s.fid for s in project.samples()) == sorted([keep, fid, fid + 1])
    # it can be deleted and restored again
    carla.delete_sample(fid)
    carla.restore_sample(before)
    assert [h[1] for h in history(project, fid)][-2:] == ["delete", "restore"]


def test_a_reviewed_sample_comes_back_reviewed_with_its_comment(project):
    carla, adam = as_user(project, "carla"), as_user(project, "adam")
    good, bad = carla.add_samples([(box(10, 10), 1), (box(30, 30), 1)])
    carla.mark_unit_complete(BOTTOM_LEFT)
    adam.review_samples([good], "approved")
    adam.review_samples([bad], "rejected", comment="a shadow")
    adam.finish_review(BOTTOM_LEFT, "QUEUED")
    rejected = carla.samples(ids=[bad])[0]
    carla.delete_sample(bad)
    carla.restore_sample(rejected)
    back = carla.samples(ids=[bad])[0]
    assert back.status is S.REJECTED
    assert (back.reviewed_by, back.review_comment) == ("adam", "a shadow")
    assert history(project, bad)[-2:] == [("carla", "delete", "rejected", None),
                                          ("carla", "restore", None, "rejected")]  # fmt: skip
    # the restore collects into the unit again: Queued -> In progress
    assert project.work_unit(BOTTOM_LEFT).status is W.IN_PROGRESS


def test_a_restore_cannot_change_the_status_it_had(project):
    carla = as_user(project, "carla")
    fid = carla.add_sample(box(10, 10), 1)
    pending = carla.samples(ids=[fid])[0]
    carla.delete_sample(fid)
    forged = dataclasses.replace(pending, status=S.APPROVED, reviewed_by="adam")
    snapshot = dump(project.path)
    with pytest.raises(ValidationError, match="was Pending approval when it was deleted"):
        carla.restore_sample(forged)
    assert dump(project.path) == snapshot


def test_refusals_change_nothing(project):
    carla, colin = as_user(project, "carla"), as_user(project, "colin")
    fid = carla.add_sample(box(10, 10), 1)
    sample = carla.samples(ids=[fid])[0]
    with pytest.raises(ConcurrentChangeError, match=f"Sample {fid} exists"):
        carla.restore_sample(sample)  # not deleted: the fid is taken
    carla.delete_sample(fid)
    snapshot = dump(project.path)
    with pytest.raises(PermissionDeniedError, match="collectors restore only their own"):
        colin.restore_sample(sample)
    never = dataclasses.replace(sample, fid=fid + 50)
    with pytest.raises(NotFoundError, match=f"Sample {fid + 50} was not deleted"):
        carla.restore_sample(never)
    with pytest.raises(OutsideImageryError, match="outside the imagery"):
        carla.restore_sample(dataclasses.replace(sample, geometry=box(900, 900)))
    with pytest.raises(PermissionDeniedError, match="not a member"):
        as_user(project, "mallory").restore_sample(sample)
    assert dump(project.path) == snapshot
    # an analyst may restore a collector's sample
    assert as_user(project, "adam").restore_sample(sample) == fid
    assert history(project, fid)[-1] == ("adam", "restore", None, "pending")


def test_no_restore_into_a_unit_under_review(project):
    carla, adam = as_user(project, "carla"), as_user(project, "adam")
    fid, other = carla.add_samples([(box(10, 10), 1), (box(30, 30), 1)])
    sample = carla.samples(ids=[fid])[0]
    carla.delete_sample(fid)
    carla.mark_unit_complete(BOTTOM_LEFT)
    snapshot = dump(project.path)
    with pytest.raises(IllegalTransitionError, match="Pending review"):
        carla.restore_sample(sample)
    assert dump(project.path) == snapshot
    adam.open_review(BOTTOM_LEFT)
    with pytest.raises(IllegalTransitionError, match="In review"):
        adam.restore_sample(sample)
    assert [s.fid for s in project.samples()] == [other]
