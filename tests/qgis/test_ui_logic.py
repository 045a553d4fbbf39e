"""The docks' Qt-free logic on real project files: abilities and their reasons, table rows and
filters, the review stepping, change detection, job parameters, training progress lines."""

from __future__ import annotations

import pytest
from qgis_support import ANALYST, COLLECTOR, ORIGIN, OWNER, unit_ids_by_name

from dlstudio_qgis.core import (
    PERMISSIONS,
    IllegalTransitionError,
    Project,
    Role,
    SampleStatus,
    ValidationError,
    WorkUnitStatus,
    rectangle,
)
from dlstudio_qgis.ui.abilities import ABILITY_ACTIONS, INFERENCE_ALGORITHMS, abilities
from dlstudio_qgis.ui.figures import dashboard, filter_rows, unit_rows
from dlstudio_qgis.ui.jobs import export_parameters, parse_epoch, train_parameters
from dlstudio_qgis.ui.review import ReviewSession
from dlstudio_qgis.ui.watch import ChangeProbe

X0, Y1 = ORIGIN
S, W = SampleStatus, WorkUnitStatus
ALL_ALGS = {"dlstudio:exporttrainingdata", "dlstudio:traindeeplearningmodel",
            *INFERENCE_ALGORITHMS.values()}  # fmt: skip


@pytest.mark.parametrize("role", [*Role, None])
def test_abilities_follow_the_core_permissions(role):
    got = abilities("u", role, "active", "CLASSIFY_PIXELS", ALL_ALGS)
    for key, action in ABILITY_ACTIONS.items():
        assert got[key].allowed == (role in PERMISSIONS[action]), key
        if not got[key].allowed:
            assert ("not a member" if role is None else f"You are {role.value};") in \
                got[key].reason  # fmt: skip


def test_abilities_in_a_complete_project_and_with_missing_algorithms():
    got = abilities("olivia", Role.OWNER, "complete", "DETECT_OBJECTS", ALL_ALGS)
    assert got["complete"].allowed and not got["collect"].allowed
    assert "marked complete" in got["collect"].reason
    got = abilities("ann", Role.ANALYST, "active", "DETECT_OBJECTS",
                    {"dlstudio:exporttrainingdata"})  # fmt: skip
    assert got["export"].allowed and not got["train"].allowed and not got["infer"].allowed
    assert "dlstudio:detectobjects is not available" in got["infer"].reason


@pytest.fixture
def project(make_project):
    path = make_project()
    carl = Project.open(path, COLLECTOR)
    for i in range(3):
        carl.add_sample(rectangle(X0 + 10 + 25 * i, Y1 - 30, X0 + 30 + 25 * i, Y1 - 10), 1)
    carl.mark_unit_complete(unit_ids_by_name(path)["R1C1"])
    return path


def test_rows_filters_and_dashboard(project):
    ids = unit_ids_by_name(project)
    rows = unit_rows(Project.open(project, ANALYST))
    r11 = [r for r in rows if r.fid == ids["R1C1"]][0]
    assert (r11.status, r11.pending, r11.approved, r11.rejected) == (W.PENDING_REVIEW, 3, 0, 0)
    assert r11.cells()[:3] == (ids["R1C1"], "R1C1", "Pending review")
    assert [r.fid for r in filter_rows(rows, "pending_review")] == [ids["R1C1"]]
    assert len(filter_rows(rows, assignee="-")) == 4 and filter_rows(rows, assignee="x") == []
    d = dashboard(Project.open(project, ANALYST))
    assert [b.count for b in d.unit_bars] == [3, 0, 1, 0, 0]
    assert [b.count for b in d.sample_bars] == [3, 0, 0]
    assert d.collectors == [(COLLECTOR, 3, 3, 0, 0)] and [r.fid for r in d.queue] == [r11.fid]


def test_review_session_steps_and_finishes(project):
    fid = unit_ids_by_name(project)["R1C1"]
    review = ReviewSession(Project.open(project, ANALYST), fid).open()
    a, b, c = (s.fid for s in review.samples)
    assert review.current.fid == a and review.position() == "sample 1 of 3, 3 pending"
    review.next()
    assert review.reject("blurry").fid == c  # moves to the next pending
    review.approve()
    assert review.current.fid == a  # wraps around to the one skipped
    with pytest.raises(ValidationError, match="1 samples are still Pending"):
        review.finish()
    review.approve()
    assert review.done and review.rejected_this_round == 1
    assert review.suggested_finish() is W.QUEUED
    assert review.finish() is W.QUEUED
    owner = Project.open(project, OWNER)
    assert owner.work_unit(fid).status is W.QUEUED
    assert [s.status for s in owner.samples()] == [S.APPROVED, S.REJECTED, S.APPROVED]
    # a unit that is not Pending review cannot be opened
    with pytest.raises(IllegalTransitionError):
        ReviewSession(owner, fid).open()


def test_the_change_probe_sees_every_commit_once(project):
    probe = ChangeProbe(project)
    assert not probe.changed()
    Project.open(project, ANALYST).set_work_unit_status(
        [unit_ids_by_name(project)["R2C2"]], "reviewed"
    )
    assert probe.changed() and not probe.changed()
    Project.open(project).info()  # reading changes nothing
    assert not probe.changed()
    probe.close()


def test_job_parameters_come_from_the_project(project):
    p = Project.open(project, ANALYST)
    params = export_parameters(p)
    assert params["PROJECT"] == project and params["USER"] == ANALYST
    assert params["METADATA_FORMAT"] == "Classified_Tiles"
    assert params["INPUT_RASTER"] == p.info().imagery.source
    assert train_parameters(p)["MODEL_TYPE"] == "UNET"


def test_training_progress_lines():
    line = ("epoch 3/20, train_loss 0.4123, valid_loss 0.5, accuracy 0.81, lr 0.001, 2.5 s, "
            "ETA 125 s")  # fmt: skip
    e = parse_epoch(line)
    assert (e.epoch, e.epochs, e.train_loss, e.valid_loss, e.eta_s) == (3, 20, 0.4123, 0.5, 125)
    assert e.text() == "Epoch 3/20 · loss 0.4123 · validation 0.5 · ETA 2 min 05 s"
    assert parse_epoch("Starting the training worker") is None
