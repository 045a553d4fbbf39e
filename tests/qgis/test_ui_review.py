"""The review dashboard: figures derived from the data, the queue, a keyboard-driven review
(A, R, N, P in the dock and on the map), finishing, changes by another process, roles."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtTest import QTest
from qgis_support import ANALYST, COLLECTOR, ORIGIN, OWNER, unit_ids_by_name
from ui_support import close_docks, make_canvas

from dlstudio_qgis.core import Project, SampleStatus, WorkUnitStatus, rectangle
from dlstudio_qgis.ui.reviewdock import ReviewDock
from dlstudio_qgis.ui.session import ProjectSession

X0, Y1 = ORIGIN
REPO = Path(__file__).resolve().parents[2]
S, W = SampleStatus, WorkUnitStatus


@pytest.fixture
def reviewing(make_project):
    """A project with 3 samples in R1C1 (Pending review) and 1 in R2C2 (In progress)."""
    made = []

    def make(user=ANALYST):
        path = make_project()
        units = unit_ids_by_name(path)
        carl = Project.open(path, COLLECTOR)
        for i in range(3):
            carl.add_sample(rectangle(X0 + 10 + 25 * i, Y1 - 30, X0 + 30 + 25 * i, Y1 - 10), 1)
        carl.add_sample(rectangle(X0 + 120, Y1 - 180, X0 + 150, Y1 - 150), 2)
        carl.mark_unit_complete(units["R1C1"])
        canvas = make_canvas()
        session = ProjectSession(canvas, poll_ms=100000)
        dock = ReviewDock(session)
        assert session.open(path, user) is not None
        made.append((session, dock, canvas))
        return path, units, session, dock, canvas

    yield make
    close_docks(made)


def bar(dock, key):
    label, widget = dock.bars[key]
    return label.text(), widget.value(), widget.format()


def test_figures_are_derived_from_the_data(reviewing):
    path, units, session, dock, canvas = reviewing()
    assert bar(dock, "Work units:pending_review") == ("Pending review: 1", 25, "1 / 4")
    assert bar(dock, "Work units:in_progress") == ("In progress: 1", 25, "1 / 4")
    assert bar(dock, "Work units:queued") == ("Queued: 2", 50, "2 / 4")
    assert bar(dock, "Samples:pending") == ("Pending approval: 4", 100, "4 / 4")
    assert "0%</b> of work units reviewed" in dock.summary.text()
    assert dock.collectors.rowCount() == 1
    assert [dock.collectors.item(0, c).text() for c in range(5)] == [COLLECTOR, "4", "4", "0", "0"]
    assert dock.queue.count() == 1 and "R1C1" in dock.queue.item(0).text()


def test_keyboard_review_approve_reject_next_and_finish(reviewing):
    path, units, session, dock, canvas = reviewing()
    full = canvas.extent()
    dock.queue.setCurrentRow(0)
    review = dock.open_selected()
    assert review is not None
    owner = Project.open(path, OWNER)
    assert owner.work_unit(units["R1C1"]).status is W.IN_REVIEW
    first = review.current
    # the map is zoomed to the current sample, which is selected
    assert canvas.extent().width() < full.width() / 2
    assert canvas.extent().contains(session.to_map(first.geometry).boundingBox())
    assert session.samples_layer.selectedFeatureIds() == [first.fid]
    assert not dock.finish_reviewed.isEnabled()

    QTest.keyClick(dock, Qt.Key.Key_A)
    assert owner.samples(ids=[first.fid])[0].status is S.APPROVED
    second = review.current
    assert second.fid != first.fid and "3 samples" not in dock.sample_info.text()
    QTest.keyClick(dock, Qt.Key.Key_N)  # skip it for now
    third = review.current
    assert third.fid not in (first.fid, second.fid)
    dock.comment.setText("not a building")
    QTest.keyClick(dock, Qt.Key.Key_R)
    rejected = owner.samples(ids=[third.fid])[0]
    assert rejected.status is S.REJECTED and rejected.review_comment == "not a building"
    assert rejected.reviewed_by == ANALYST
    assert review.current.fid == second.fid  # back to the one skipped
    QTest.keyClick(dock, Qt.Key.Key_P)
    assert review.current.fid == first.fid
    QTest.keyClick(dock, Qt.Key.Key_N)
    QTest.keyClick(canvas, Qt.Key.Key_A)  # on the map too
    assert owner.samples(ids=[second.fid])[0].status is S.APPROVED
    assert review.done and dock.finish_queued.isEnabled() and dock.finish_reviewed.isEnabled()
    assert "finish as <b>Queued</b> (1 rejected)" in dock.sample_info.text()
    assert bar(dock, "Samples:approved")[0] == "Approved: 2"
    assert bar(dock, "Samples:rejected")[0] == "Rejected: 1"

    dock.finish_queued.click()
    assert owner.work_unit(units["R1C1"]).status is W.QUEUED
    assert dock.review is None and dock.queue.count() == 0
    assert not dock.approve_button.isEnabled()


def test_finishing_as_reviewed_and_refusing_to_finish_early(reviewing):
    path, units, session, dock, canvas = reviewing()
    review = dock.open_unit(units["R1C1"])
    assert not dock.finish(W.REVIEWED)  # samples still pending
    assert "still Pending approval" in session.last_message[0]
    for _ in range(3):
        QTest.keyClick(dock, Qt.Key.Key_A)
    assert review.done and review.suggested_finish() is W.REVIEWED
    assert dock.finish(W.REVIEWED)
    owner = Project.open(path, OWNER)
    assert owner.work_unit(units["R1C1"]).status is W.REVIEWED
    assert owner.progress()["exportable_samples"] == 3
    assert "25%</b> of work units reviewed" in dock.summary.text()


def test_a_unit_not_pending_review_cannot_be_opened(reviewing):
    path, units, session, dock, canvas = reviewing()
    assert dock.open_unit(units["R2C2"]) is None
    assert "Only units Pending review can be opened" in session.last_message[0]
    assert Project.open(path, OWNER).work_unit(units["R2C2"]).status is W.IN_PROGRESS


def test_collectors_see_the_figures_but_cannot_review(reviewing):
    path, units, session, dock, canvas = reviewing(user=COLLECTOR)
    assert bar(dock, "Samples:pending")[0] == "Pending approval: 4"
    assert not dock.open_button.isEnabled()
    assert "You are collector; to review samples" in dock.open_button.toolTip()
    QTest.keyClick(dock, Qt.Key.Key_A)  # nothing open: nothing happens
    assert all(s.status is S.PENDING for s in Project.open(path, OWNER).samples())


def test_changes_by_another_process_show_up_without_reopening(reviewing):
    path, units, session, dock, canvas = reviewing()
    assert not session.poll()  # nothing changed yet
    code = (
        "import sys; from dlstudio_qgis.core import Project, rectangle; "
        f"p = Project.open(sys.argv[1], {ANALYST!r}); "
        "ids = [s.fid for s in p.samples(work_unit=int(sys.argv[2]))]; "
        "p.review_samples(ids, 'approved'); p.finish_review(int(sys.argv[2]), 'reviewed')"
    )
    proc = subprocess.run([sys.executable, "-c", code, path, str(units["R1C1"])], cwd=REPO,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert bar(dock, "Samples:approved")[0] == "Approved: 0"  # not yet looked
    assert session.poll()
    assert bar(dock, "Samples:approved")[0] == "Approved: 3"
    assert bar(dock, "Work units:reviewed")[0] == "Reviewed: 1"
    assert dock.queue.count() == 0
    layer = session.units_layer
    statuses = {f["fid"]: f["status"] for f in layer.getFeatures()}
    assert statuses[units["R1C1"]] == "reviewed"
    assert not session.poll()  # once per change


def test_the_poll_timer_refreshes_by_itself(reviewing):
    from ui_support import wait_until

    path, units, session, dock, canvas = reviewing()
    session._timer.setInterval(50)
    session._timer.start()
    Project.open(path, ANALYST).set_work_unit_status([units["R2C2"]], "pending_review")
    assert wait_until(lambda: dock.queue.count() == 2, timeout=10)
