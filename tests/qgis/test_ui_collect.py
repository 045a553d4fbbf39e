"""The collect dock on a real map canvas: drawing samples with the map tools (mouse events),
class keys, undo/redo with Ctrl+Z, picking, deleting, Mark unit complete; refusals."""

from __future__ import annotations

import pytest
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtTest import QTest
from qgis_support import ANALYST, COLLECTOR, ORIGIN, OWNER, unit_ids_by_name
from ui_support import click, close_docks, drag, make_canvas, mouse, pixel

from dlstudio_qgis.core import Project, SampleStatus, WorkUnitStatus, rectangle
from dlstudio_qgis.ui.collectdock import CollectDock
from dlstudio_qgis.ui.maptools import POINT, POLYGON, RECTANGLE
from dlstudio_qgis.ui.session import CRITICAL, ProjectSession

X0, Y1 = ORIGIN  # top-left of the 200 m test raster; grid of 100 m: R1C1 is the top-left
CTRL, SHIFT = Qt.KeyboardModifier.ControlModifier, Qt.KeyboardModifier.ShiftModifier


@pytest.fixture
def setup(make_project):
    made = []

    def make(tool="CLASSIFY_PIXELS", geometry="POLYGON", user=COLLECTOR, crs="EPSG:32611"):
        path = make_project(tool, geometry)
        canvas = make_canvas(crs)
        session = ProjectSession(canvas, poll_ms=100000)
        dock = CollectDock(session)
        assert session.open(path, user) is not None, session.last_message
        made.append((session, dock, canvas))
        return path, session, dock, canvas

    yield make
    close_docks(made)


def draw_polygon(canvas, tool, ring, crs="EPSG:32611"):
    pts = [pixel(canvas, x, y, crs) for x, y in ring]
    for p in pts:
        click(canvas, tool, p)
    tool.canvasReleaseEvent(mouse(canvas, "release", pts[-1], Qt.MouseButton.RightButton))


def test_polygon_drawn_on_the_map_becomes_a_sample_and_starts_the_unit(setup):
    path, session, dock, canvas = setup()
    assert dock.draw_tool.shape == POLYGON
    dock.draw_button.click()
    assert canvas.mapTool() is dock.draw_tool and dock.draw_button.isChecked()
    ring = [(X0 + 10, Y1 - 10), (X0 + 40, Y1 - 10), (X0 + 40, Y1 - 40), (X0 + 10, Y1 - 40)]
    draw_polygon(canvas, dock.draw_tool, ring)
    owner = Project.open(path, OWNER)
    (sample,) = owner.samples()
    assert sample.collected_by == COLLECTOR and sample.class_value == 1
    assert sample.status is SampleStatus.PENDING
    x0, y0, x1, y1 = sample.geometry.bounds()
    px = canvas.mapUnitsPerPixel()
    assert abs(x0 - (X0 + 10)) <= px and abs(y1 - (Y1 - 10)) <= px
    assert abs(x1 - (X0 + 40)) <= px and abs(y0 - (Y1 - 40)) <= px
    unit = owner.work_unit(unit_ids_by_name(path)["R1C1"])
    assert unit.status is WorkUnitStatus.IN_PROGRESS
    assert session.current_unit == unit.fid and "R1C1" in dock.unit_label.text()
    assert dock.undo_button.isEnabled() and "Add building sample" in dock.undo_button.toolTip()
    session.samples_layer.dataProvider().reloadData()
    assert session.samples_layer.featureCount() == 1


def test_ctrl_z_on_the_map_undoes_and_ctrl_shift_z_redoes(setup):
    path, session, dock, canvas = setup()
    dock.draw_button.click()
    ring = [(X0 + 110, Y1 - 10), (X0 + 150, Y1 - 10), (X0 + 150, Y1 - 50)]
    draw_polygon(canvas, dock.draw_tool, ring)
    project = Project.open(path, OWNER)
    assert len(project.samples()) == 1
    QTest.keyClick(canvas, Qt.Key.Key_Z, CTRL)
    assert project.samples() == [] and dock.undo_stack.count() == 1
    QTest.keyClick(canvas, Qt.Key.Key_Z, CTRL | SHIFT)
    (again,) = project.samples()
    assert again.status is SampleStatus.PENDING
    assert [h.action for h in project.history("sample")] == ["collect", "delete", "collect"]
    # in the dock too
    QTest.keyClick(dock, Qt.Key.Key_Z, CTRL)
    assert project.samples() == []


def test_class_keys_pick_the_class_of_the_next_sample(setup):
    path, session, dock, canvas = setup()
    dock.draw_button.click()
    assert dock.class_combo.count() == 2 and "[2]" in dock.class_combo.itemText(1)
    QTest.keyClick(canvas, Qt.Key.Key_2)
    assert dock.current_class() == 2
    QTest.keyClick(canvas, Qt.Key.Key_9)  # no 9th class: unchanged
    assert dock.current_class() == 2
    draw_polygon(canvas, dock.draw_tool, [(X0 + 10, Y1 - 110), (X0 + 60, Y1 - 110),
                                          (X0 + 60, Y1 - 160)])  # fmt: skip
    assert [s.class_value for s in Project.open(path, OWNER).samples()] == [2]


def test_escape_and_backspace_while_drawing_a_polygon(setup):
    path, session, dock, canvas = setup()
    dock.draw_button.click()
    tool = dock.draw_tool
    for x, y in [(X0 + 10, Y1 - 10), (X0 + 50, Y1 - 10)]:
        click(canvas, tool, pixel(canvas, x, y))
    QTest.keyClick(canvas, Qt.Key.Key_Backspace)
    assert len(tool.points) == 1
    QTest.keyClick(canvas, Qt.Key.Key_Escape)
    assert tool.points == []
    tool.canvasReleaseEvent(mouse(canvas, "release", pixel(canvas, X0 + 5, Y1 - 5),
                                  Qt.MouseButton.RightButton))  # fmt: skip
    assert Project.open(path, OWNER).samples() == []  # fewer than 3 points: nothing


def test_rectangles_for_detect_objects_stay_rectangles_in_the_project_crs(setup):
    # the map in Web Mercator: the drawn box is not axis-aligned in UTM, its bounding box is
    path, session, dock, canvas = setup("DETECT_OBJECTS", crs="EPSG:3857")
    assert dock.draw_tool.shape == RECTANGLE
    dock.draw_button.click()
    a = pixel(canvas, X0 + 20, Y1 - 20, "EPSG:32611")
    b = pixel(canvas, X0 + 60, Y1 - 70, "EPSG:32611")
    drag(canvas, dock.draw_tool, a, b)
    (sample,) = Project.open(path, OWNER).samples()
    assert sample.geometry.is_rectangle()
    x0, y0, x1, y1 = sample.geometry.bounds()
    assert abs(x0 - (X0 + 20)) < 1.5 and abs(y1 - (Y1 - 20)) < 1.5
    assert abs(x1 - (X0 + 60)) < 1.5 and abs(y0 - (Y1 - 70)) < 1.5
    # a click (no drag) draws nothing
    drag(canvas, dock.draw_tool, a, a)
    assert len(Project.open(path, OWNER).samples()) == 1


def test_points_for_classify_objects_point_projects(setup):
    path, session, dock, canvas = setup("CLASSIFY_OBJECTS", "POINT")
    assert dock.draw_tool.shape == POINT
    dock.draw_button.click()
    click(canvas, dock.draw_tool, pixel(canvas, X0 + 150, Y1 - 150))
    (sample,) = Project.open(path, OWNER).samples()
    assert sample.geometry.is_point
    x, y = sample.geometry.xy
    assert abs(x - (X0 + 150)) <= canvas.mapUnitsPerPixel()
    assert sample.work_unit == unit_ids_by_name(path)["R2C2"]


def test_drawing_outside_the_imagery_is_refused_with_the_reason(setup):
    path, session, dock, canvas = setup()
    messages = []
    session.message.connect(lambda text, level: messages.append((text, level)))
    canvas.setExtent(canvas.extent().buffered(500))
    dock.draw_button.click()
    draw_polygon(canvas, dock.draw_tool, [(X0 - 300, Y1 + 100), (X0 - 250, Y1 + 100),
                                          (X0 - 250, Y1 + 50)])  # fmt: skip
    assert Project.open(path, OWNER).samples() == []
    assert dock.undo_stack.count() == 0
    ((text, level),) = messages
    assert level == CRITICAL and "outside the project imagery" in text


def test_pick_then_change_class_and_delete_with_undo(setup):
    path, session, dock, canvas = setup()
    owner = Project.open(path, OWNER)
    fid = Project.open(path, COLLECTOR).add_sample(rectangle(X0 + 10, Y1 - 60, X0 + 60, Y1 - 10), 1)
    session.refresh()
    dock.pick_button.click()
    assert canvas.mapTool() is dock.pick_tool and not dock.draw_button.isChecked()
    click(canvas, dock.pick_tool, pixel(canvas, X0 + 30, Y1 - 30))
    assert dock.selected == fid and "Sample" in dock.sample_label.text()
    assert session.samples_layer.selectedFeatureIds() == [fid]
    dock.class_combo.setCurrentIndex(1)
    assert dock.reclass_selected()
    assert owner.samples(ids=[fid])[0].class_value == 2
    dock.undo_stack.undo()
    assert owner.samples(ids=[fid])[0].class_value == 1
    assert dock.delete_selected()
    assert owner.samples() == []
    dock.undo_stack.undo()  # the same sample back: its id, class and history
    (back,) = owner.samples()
    assert back.fid == fid and back.class_value == 1
    assert [h.action for h in owner.history("sample", fid)] == [
        "collect", "edit", "edit", "delete", "restore"]  # fmt: skip
    dock.undo_stack.redo()  # deleted again, and back once more
    assert owner.samples() == []
    dock.undo_stack.undo()
    assert [s.fid for s in owner.samples()] == [fid]
    click(canvas, dock.pick_tool, pixel(canvas, X0 + 150, Y1 - 150))
    assert dock.selected is None and not dock.delete_button.isEnabled()


def test_a_collector_cannot_delete_someone_elses_sample(setup):
    path, session, dock, canvas = setup(user=COLLECTOR)
    Project.open(path, OWNER).add_member("cora", "collector")
    fid = Project.open(path, "cora").add_sample(rectangle(X0 + 10, Y1 - 60, X0 + 60, Y1 - 10), 1)
    session.refresh()
    dock.pick_button.click()
    click(canvas, dock.pick_tool, pixel(canvas, X0 + 30, Y1 - 30))
    assert dock.selected == fid
    assert not dock.delete_selected()
    assert "collectors edit only their own samples" in session.last_message[0]
    assert [s.fid for s in Project.open(path, OWNER).samples()] == [fid]
    assert dock.undo_stack.count() == 0


def test_mark_unit_complete_sends_it_to_pending_review(setup):
    path, session, dock, canvas = setup()
    assert not dock.complete_button.isEnabled()  # no current unit yet
    dock.draw_button.click()
    draw_polygon(canvas, dock.draw_tool, [(X0 + 10, Y1 - 10), (X0 + 50, Y1 - 10),
                                          (X0 + 50, Y1 - 50)])  # fmt: skip
    assert dock.complete_button.isEnabled()
    assert dock.mark_complete()
    unit = Project.open(path, OWNER).work_unit(session.current_unit)
    assert unit.status is WorkUnitStatus.PENDING_REVIEW
    assert dock.undo_stack.count() == 0  # its samples are under review now
    # drawing into it now is refused by the core
    draw_polygon(canvas, dock.draw_tool, [(X0 + 60, Y1 - 60), (X0 + 90, Y1 - 60),
                                          (X0 + 90, Y1 - 90)])  # fmt: skip
    assert "Pending review" in session.last_message[0]
    assert len(Project.open(path, OWNER).samples()) == 1


def test_an_undo_the_core_refuses_is_reported_and_dropped(setup):
    path, session, dock, canvas = setup()
    dock.draw_button.click()
    draw_polygon(canvas, dock.draw_tool, [(X0 + 10, Y1 - 10), (X0 + 50, Y1 - 10),
                                          (X0 + 50, Y1 - 50)])  # fmt: skip
    Project.open(path, ANALYST).mark_unit_complete(session.current_unit)
    dock.undo_stack.undo()
    assert "Pending review" in session.last_message[0]
    assert len(Project.open(path, OWNER).samples()) == 1
    assert dock.undo_stack.count() == 0


def test_non_members_cannot_collect(setup):
    path, session, dock, canvas = setup(user="mallory")
    assert not dock.draw_button.isEnabled()
    assert "not a member" in dock.draw_button.toolTip()
