"""The Edit shape tool on a real map canvas, driven with real mouse and key events on its
viewport: rectangle corners, polygon vertices (move, add, remove), whole samples, points;
Esc; undo and redo read back from the file; refusals (someone else's sample, outside the
imagery) snap back; a reviewed sample goes back to Pending approval."""

from __future__ import annotations

import pytest
from qgis.core import QgsPointXY
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtTest import QTest
from qgis_support import ANALYST, COLLECTOR, ORIGIN, OWNER, unit_ids_by_name
from ui_support import (
    close_docks,
    double_click_at,
    make_canvas,
    mouse_drag,
    move_to,
    pixel,
    press_at,
    release_at,
)

from dlstudio_qgis.core import Project, SampleStatus, WorkUnitStatus, point, polygon, rectangle
from dlstudio_qgis.ui.collectdock import CollectDock
from dlstudio_qgis.ui.session import ProjectSession

X0, Y1 = ORIGIN  # top-left of the 200 m test raster; grid of 100 m: R1C1 is the top-left
CTRL, SHIFT = Qt.KeyboardModifier.ControlModifier, Qt.KeyboardModifier.ShiftModifier
BOX = (X0 + 20, Y1 - 60, X0 + 60, Y1 - 20)  # a 40 m box in R1C1
QUAD = [(X0 + 10, Y1 - 10), (X0 + 50, Y1 - 10), (X0 + 50, Y1 - 50), (X0 + 10, Y1 - 50)]


@pytest.fixture
def setup(make_project):
    made = []

    def make(tool="CLASSIFY_PIXELS", geometry="POLYGON", user=COLLECTOR, crs="EPSG:32611",
             sample=None, owner=COLLECTOR):  # fmt: skip
        path = make_project(tool, geometry)
        fid = None
        if sample is not None:
            if owner not in (OWNER, ANALYST, COLLECTOR):
                Project.open(path, OWNER).add_member(owner, "collector")
            fid = Project.open(path, owner).add_sample(sample, 1)
        canvas = make_canvas(crs)
        session = ProjectSession(canvas, poll_ms=100000)
        dock = CollectDock(session)
        assert session.open(path, user) is not None, session.last_message
        made.append((session, dock, canvas))
        dock.edit_button.click()
        assert canvas.mapTool() is dock.edit_tool and dock.edit_button.isChecked()
        return path, session, dock, canvas, fid

    yield make
    close_docks(made)


def px(canvas, x, y):
    return pixel(canvas, x, y, "EPSG:32611")


def stored(path, fid):
    return Project.open(path, OWNER).samples(ids=[fid])[0]


def ring(sample):
    return sample.geometry.rings[0][:-1]


def near(a, b, canvas, pixels=1.5):
    tol = canvas.mapUnitsPerPixel() * pixels
    return abs(a[0] - b[0]) <= tol and abs(a[1] - b[1]) <= tol


def select(canvas, dock, x, y):
    """A click on the sample at (x, y), in the project CRS."""
    pos = px(canvas, x, y)
    press_at(canvas, pos)
    release_at(canvas, pos)
    return dock.selected


def test_clicking_a_sample_shows_its_vertices_as_handles(setup):
    path, session, dock, canvas, fid = setup(sample=polygon(QUAD))
    assert dock.edit_tool.handles() == [] and dock.selected is None
    assert select(canvas, dock, X0 + 30, Y1 - 30) == fid
    assert session.samples_layer.selectedFeatureIds() == []  # the handles show it, no fill
    handles = [pixel(canvas, p.x(), p.y()) for p in dock.edit_tool.handles()]
    assert handles == [px(canvas, x, y) for x, y in QUAD]  # the closing vertex has none
    # a click where there is no sample selects nothing and drops the handles
    assert select(canvas, dock, X0 + 150, Y1 - 150) is None
    assert dock.edit_tool.handles() == [] and not dock.delete_button.isEnabled()
    # Select sample (the pick tool) selects on the layer, and keeps it across reloads
    select(canvas, dock, X0 + 30, Y1 - 30)
    dock.pick_button.click()
    assert session.samples_layer.selectedFeatureIds() == [fid]
    Project.open(path, COLLECTOR).edit_sample(fid, class_value=2)
    assert session.poll() and session.samples_layer.selectedFeatureIds() == [fid]
    dock.edit_button.click()  # back to editing: the handles again, no layer selection
    assert len(dock.edit_tool.handles()) == 4
    assert session.samples_layer.selectedFeatureIds() == []


def test_dragging_a_rectangle_corner_keeps_it_a_rectangle_undo_and_redo(setup):
    # the map in Web Mercator: the tool edits in the project's UTM, so the box stays exact
    path, session, dock, canvas, fid = setup("DETECT_OBJECTS", crs="EPSG:3857",
                                             sample=rectangle(*BOX))  # fmt: skip
    assert select(canvas, dock, X0 + 40, Y1 - 40) == fid
    assert len(dock.edit_tool.handles()) == 4
    mouse_drag(canvas, px(canvas, X0 + 60, Y1 - 20), px(canvas, X0 + 85, Y1 - 8))
    moved = stored(path, fid)
    assert moved.geometry.is_rectangle()
    x0, y0, x1, y1 = moved.geometry.bounds()
    assert (x0, y0) == (X0 + 20, Y1 - 60)  # the opposite corner did not move at all
    assert near((x1, y1), (X0 + 85, Y1 - 8), canvas, 2)
    assert "Edit the shape of sample" in dock.undo_button.toolTip()
    # a rectangle takes no new vertex: a double-click on its edge says so, inside is quiet
    double_click_at(canvas, px(canvas, X0 + 40, Y1 - 40))
    assert dock.message.text() == "" and dock.undo_stack.count() == 1
    double_click_at(canvas, px(canvas, X0 + 20, Y1 - 40))
    assert "keeps its 4 corners" in dock.message.text()
    assert stored(path, fid).geometry == moved.geometry and dock.undo_stack.count() == 1
    assert [h.action for h in Project.open(path).history("sample", fid)] == ["collect", "edit"]
    # the handles follow the stored shape
    corners = {(round(p.x()), round(p.y())) for p in dock.edit_tool.handles()}
    top_right = session.to_map(rectangle(x1 - 1e-6, y1 - 1e-6, x1, y1)).boundingBox()
    assert (round(top_right.xMaximum()), round(top_right.yMaximum())) in corners
    # dragging a corner across the opposite one flips the box, still a rectangle
    mouse_drag(canvas, px(canvas, X0 + 20, Y1 - 60), px(canvas, X0 + 100, Y1 - 50))
    flipped = stored(path, fid).geometry
    assert flipped.is_rectangle()
    assert near(flipped.bounds()[:2], (x1, Y1 - 50), canvas, 2)
    # Ctrl+Z on the map undoes each edit, Ctrl+Shift+Z redoes
    QTest.keyClick(canvas, Qt.Key.Key_Z, CTRL)
    assert stored(path, fid).geometry == moved.geometry
    QTest.keyClick(canvas, Qt.Key.Key_Z, CTRL)
    assert stored(path, fid).geometry == rectangle(*BOX)
    assert len(dock.edit_tool.handles()) == 4
    QTest.keyClick(canvas, Qt.Key.Key_Z, CTRL | SHIFT)
    assert stored(path, fid).geometry == moved.geometry


def test_moving_a_polygon_vertex_leaves_the_others_exactly(setup):
    path, session, dock, canvas, fid = setup(sample=polygon(QUAD))
    select(canvas, dock, X0 + 30, Y1 - 30)
    mouse_drag(canvas, px(canvas, X0 + 50, Y1 - 50), px(canvas, X0 + 70, Y1 - 65))
    after = ring(stored(path, fid))
    assert after[0] == QUAD[0] and after[1] == QUAD[1] and after[3] == QUAD[3]
    assert near(after[2], (X0 + 70, Y1 - 65), canvas)
    # the first vertex also moves the ring's closing one
    mouse_drag(canvas, px(canvas, X0 + 10, Y1 - 10), px(canvas, X0 + 5, Y1 - 5))
    s = stored(path, fid)
    assert s.geometry.rings[0][0] == s.geometry.rings[0][-1]
    assert near(s.geometry.rings[0][0], (X0 + 5, Y1 - 5), canvas)
    assert dock.undo_stack.count() == 2
    dock.undo_stack.undo()
    dock.undo_stack.undo()
    assert ring(stored(path, fid)) == tuple(QUAD)


def test_dragging_inside_moves_the_whole_sample_into_the_next_unit(setup):
    path, session, dock, canvas, fid = setup(sample=polygon(QUAD))
    ids = unit_ids_by_name(path)
    assert stored(path, fid).work_unit == ids["R1C1"]
    select(canvas, dock, X0 + 30, Y1 - 30)
    mouse_drag(canvas, px(canvas, X0 + 30, Y1 - 30), px(canvas, X0 + 110, Y1 - 40))
    s = stored(path, fid)
    dx, dy = s.geometry.rings[0][0][0] - QUAD[0][0], s.geometry.rings[0][0][1] - QUAD[0][1]
    assert near((dx, dy), (80, -10), canvas)
    assert all(
        near(p, (x + dx, y + dy), canvas, 0.01) for p, (x, y) in zip(ring(s), QUAD, strict=True)
    )
    assert s.work_unit == ids["R1C2"] and session.current_unit == ids["R1C2"]
    owner = Project.open(path, OWNER)
    assert owner.work_unit(ids["R1C2"]).status is WorkUnitStatus.IN_PROGRESS
    assert "moved to work unit" in dock.message.text()
    # a click (no drag) inside the selected sample changes nothing
    before = stored(path, fid).geometry
    select(canvas, dock, X0 + 110, Y1 - 40)
    assert stored(path, fid).geometry == before and dock.undo_stack.count() == 1


def test_double_click_on_an_edge_adds_a_vertex_delete_removes_one(setup):
    path, session, dock, canvas, fid = setup(sample=polygon(QUAD))
    select(canvas, dock, X0 + 30, Y1 - 30)
    double_click_at(canvas, px(canvas, X0 + 30, Y1 - 10))  # the top edge
    after = ring(stored(path, fid))
    assert len(after) == 5 and after[0] == QUAD[0] and after[2:] == tuple(QUAD[1:])
    assert near(after[1], (X0 + 30, Y1 - 10), canvas)
    assert len(dock.edit_tool.handles()) == 5
    # Delete with the mouse over a vertex removes it
    move_to(canvas, px(canvas, X0 + 50, Y1 - 50))
    QTest.keyClick(canvas, Qt.Key.Key_Delete)
    after = ring(stored(path, fid))
    assert len(after) == 4 and (X0 + 50, Y1 - 50) not in after
    move_to(canvas, px(canvas, X0 + 50, Y1 - 10))
    QTest.keyClick(canvas, Qt.Key.Key_Backspace)
    triangle = ring(stored(path, fid))
    assert len(triangle) == 3 and (X0 + 50, Y1 - 10) not in triangle
    # never below 3
    move_to(canvas, px(canvas, X0 + 10, Y1 - 50))
    QTest.keyClick(canvas, Qt.Key.Key_Delete)
    assert ring(stored(path, fid)) == triangle
    assert "at least 3 vertices" in dock.message.text()
    # Delete away from any vertex does nothing
    move_to(canvas, px(canvas, X0 + 150, Y1 - 150))
    QTest.keyClick(canvas, Qt.Key.Key_Delete)
    assert dock.undo_stack.count() == 3
    for _ in range(3):
        dock.undo_stack.undo()
    assert ring(stored(path, fid)) == tuple(QUAD)


def test_escape_cancels_a_drag(setup):
    path, session, dock, canvas, fid = setup(sample=polygon(QUAD))
    select(canvas, dock, X0 + 30, Y1 - 30)
    handles = dock.edit_tool.handles()
    start, end = px(canvas, X0 + 50, Y1 - 50), px(canvas, X0 + 90, Y1 - 90)
    press_at(canvas, start)
    move_to(canvas, end, held=True)
    assert dock.edit_tool.handles() != handles  # the drag is shown
    QTest.keyClick(canvas, Qt.Key.Key_Escape)  # the button still down: via keyPressed
    assert dock.edit_tool.handles() == handles
    release_at(canvas, end)
    assert ring(stored(path, fid)) == tuple(QUAD)
    assert dock.undo_stack.count() == 0 and dock.edit_tool.handles() == handles


def test_a_point_sample_is_dragged(setup):
    path, session, dock, canvas, fid = setup("CLASSIFY_OBJECTS", "POINT",
                                             sample=point(X0 + 150, Y1 - 150))  # fmt: skip
    assert select(canvas, dock, X0 + 150, Y1 - 150) == fid
    assert len(dock.edit_tool.handles()) == 1
    mouse_drag(canvas, px(canvas, X0 + 150, Y1 - 150), px(canvas, X0 + 160, Y1 - 120))
    assert near(stored(path, fid).geometry.xy, (X0 + 160, Y1 - 120), canvas)
    dock.undo_stack.undo()
    assert stored(path, fid).geometry.xy == (X0 + 150, Y1 - 150)


def test_someone_elses_sample_is_refused_and_snaps_back(setup):
    path, session, dock, canvas, fid = setup(sample=polygon(QUAD), owner="cora")
    assert select(canvas, dock, X0 + 30, Y1 - 30) == fid
    handles = dock.edit_tool.handles()
    mouse_drag(canvas, px(canvas, X0 + 50, Y1 - 50), px(canvas, X0 + 70, Y1 - 70))
    assert ring(stored(path, fid)) == tuple(QUAD)
    assert "collectors edit only their own samples" in dock.message.text()
    assert dock.edit_tool.handles() == handles and dock.undo_stack.count() == 0


def test_a_shape_dragged_outside_the_imagery_is_refused(setup):
    path, session, dock, canvas, fid = setup("DETECT_OBJECTS", sample=rectangle(*BOX))
    canvas.setExtent(canvas.extent().buffered(300))
    canvas.refresh()
    select(canvas, dock, X0 + 40, Y1 - 40)
    handles = dock.edit_tool.handles()
    mouse_drag(canvas, px(canvas, X0 + 40, Y1 - 40), px(canvas, X0 - 150, Y1 + 150))
    assert stored(path, fid).geometry == rectangle(*BOX)
    assert "outside the imagery" in dock.message.text()
    assert dock.edit_tool.handles() == handles and dock.undo_stack.count() == 0


def test_a_reviewed_sample_goes_back_to_pending_approval(setup):
    path, session, dock, canvas, fid = setup(sample=polygon(QUAD))
    unit = unit_ids_by_name(path)["R1C1"]
    collector, analyst = Project.open(path, COLLECTOR), Project.open(path, ANALYST)
    collector.mark_unit_complete(unit)
    analyst.review_samples([fid], "rejected", comment="too small")
    analyst.finish_review(unit, "QUEUED")
    session.refresh()
    select(canvas, dock, X0 + 30, Y1 - 30)
    assert "Rejected" in dock.sample_label.text()
    mouse_drag(canvas, px(canvas, X0 + 50, Y1 - 50), px(canvas, X0 + 60, Y1 - 60))
    s = stored(path, fid)
    assert s.status is SampleStatus.PENDING and s.reviewed_by is None
    assert near(ring(s)[2], (X0 + 60, Y1 - 60), canvas)
    assert "Pending approval again" in dock.message.text()
    assert Project.open(path).work_unit(unit).status is WorkUnitStatus.IN_PROGRESS


def test_the_handles_follow_a_change_made_by_another_process(setup):
    path, session, dock, canvas, fid = setup(sample=polygon(QUAD))
    select(canvas, dock, X0 + 30, Y1 - 30)
    Project.open(path, ANALYST).edit_sample(fid, geometry=rectangle(X0 + 10, Y1 - 90,
                                                                    X0 + 90, Y1 - 10))  # fmt: skip
    assert session.poll()
    far = session.to_map(rectangle(X0 + 89, Y1 - 90, X0 + 90, Y1 - 89)).boundingBox()
    assert any(p.distance(QgsPointXY(far.xMaximum(), far.yMinimum())) < 1e-6
               for p in dock.edit_tool.handles())  # fmt: skip
    Project.open(path, ANALYST).delete_sample(fid)
    assert session.poll()
    assert dock.selected is None and dock.edit_tool.handles() == []


def test_layers_are_drawn_afresh_at_the_renders_after_a_change(setup):
    # QGIS 3.22 caches a layer image drawn by a render job that began before a change; the
    # session asks for fresh drawings of its layers at the next two renders
    path, session, dock, canvas, fid = setup(sample=polygon(QUAD))
    requests = []
    session.samples_layer.repaintRequested.connect(lambda *_: requests.append(1))
    canvas.mapCanvasRefreshed.emit()
    assert requests == []  # nothing changed: the cache is good
    Project.open(path, COLLECTOR).edit_sample(fid, class_value=2)
    assert session.poll()
    count = len(requests)
    assert count >= 1
    for _ in range(3):
        canvas.mapCanvasRefreshed.emit()
    assert len(requests) == count + 2
