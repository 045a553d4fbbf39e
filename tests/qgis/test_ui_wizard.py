"""The New project wizard: its answers create a project through the Processing algorithms
(members, grid or polygon work units), open it; bad answers are refused, nothing written."""

from __future__ import annotations

import pytest
from osgeo import ogr
from qgis.core import QgsProject, QgsRasterLayer, QgsVectorLayer
from qgis_support import ANALYST, COLLECTOR, OWNER, rect_wkt, write_vector
from ui_support import make_canvas

from dlstudio_qgis.core import Project, ProjectClass, Role
from dlstudio_qgis.ui.newproject import ProjectSpec, create_project
from dlstudio_qgis.ui.session import ProjectSession
from dlstudio_qgis.ui.wizard import ProjectWizard


@pytest.fixture
def wizard(monkeypatch):
    monkeypatch.setenv("DLSTUDIO_USER", OWNER)
    canvas = make_canvas()
    session = ProjectSession(canvas, poll_ms=100000)
    w = ProjectWizard(session)
    yield w, session
    session.close()
    w.deleteLater()
    canvas.deleteLater()
    QgsProject.instance().removeAllMapLayers()


def test_the_wizard_creates_and_opens_a_project(wizard, raster, tmp_path):
    w, session = wizard
    layer = QgsRasterLayer(raster, "scene")
    QgsProject.instance().addMapLayer(layer)
    w.name.setText("Roofs")
    w.raster_layer.setLayer(layer)
    w.tool.setCurrentIndex(w.tool.findData("DETECT_OBJECTS"))
    assert not w.geometry.isEnabled()
    w.classes.item(0, 1).setText("roof")
    w.add_class("tree", 2, "#00aa00")
    w.grid.setChecked(True)
    w.cell.setValue(50)
    w.cell_units.setCurrentIndex(w.cell_units.findData("PIXELS"))
    w.add_member(ANALYST, "analyst")
    w.add_member(COLLECTOR, "collector")
    out = tmp_path / "roofs.gpkg"
    w.output.setFilePath(str(out))
    w.accept()
    assert w.created == str(out) and w.error.text() == ""
    project = Project.open(out, OWNER)
    info = project.info()
    assert info.name == "Roofs" and info.inference_tool.value == "DETECT_OBJECTS"
    assert [(c.value, c.name, c.color) for c in project.classes()] == [
        (1, "roof", "#e41a1c"), (2, "tree", "#00aa00")]  # fmt: skip
    assert project.members() == {OWNER: Role.OWNER, ANALYST: Role.ANALYST,
                                 COLLECTOR: Role.COLLECTOR}  # fmt: skip
    assert len(project.work_units()) == 16  # 200 px / 50 px = 4 x 4
    assert session.project is not None and str(session.project.path) == str(out)


def test_work_units_from_a_polygon_layer(wizard, raster, tmp_path):
    w, session = wizard
    polys = write_vector(tmp_path / "areas.gpkg", [
        (rect_wkt(500000, 4000100, 500100, 4000200), {"cls": "a"}),
        (rect_wkt(500100, 4000000, 500200, 4000100), {"cls": "b"})],
        32611, ogr.wkbPolygon)  # fmt: skip
    layer = QgsVectorLayer(polys, "areas")
    QgsProject.instance().addMapLayer(layer)
    w.name.setText("Areas")
    w.raster_file.setFilePath(raster)
    w.by_layer.setChecked(True)
    w.polygons.setLayer(layer)
    w.output.setFilePath(str(tmp_path / "areas_project.gpkg"))
    w.accept()
    assert w.created, w.error.text()
    assert len(Project.open(w.created, OWNER).work_units()) == 2


def test_bad_answers_are_refused_and_nothing_is_written(wizard, raster, tmp_path):
    w, session = wizard
    w.raster_file.setFilePath(raster)
    w.add_class("building")  # the same name twice, and no project name
    w.output.setFilePath(str(tmp_path / "x.gpkg"))
    w.accept()
    assert w.created is None
    assert "Give the project a name." in w.error.text()
    assert "repeated: building" in w.error.text()
    assert not (tmp_path / "x.gpkg").exists() and session.project is None


def test_a_failure_after_creation_removes_the_new_file(raster, tmp_path, monkeypatch):
    monkeypatch.setenv("DLSTUDIO_USER", OWNER)
    spec = ProjectSpec("P", raster, "CLASSIFY_PIXELS", [ProjectClass(1, "a", "#ff0000")],
                       str(tmp_path / "p.gpkg"), grid_size=1e-6)  # fmt: skip
    with pytest.raises(Exception, match="limit"):
        create_project(spec)  # the grid would have far too many cells
    assert not (tmp_path / "p.gpkg").exists()
    spec.members = [("x", "owner")]
    assert "the role is analyst or collector" in " ".join(spec.problems())
