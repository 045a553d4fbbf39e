"""The project dock: opening, who you are, the styled layers, the work unit table (filters,
Start next, zoom, batch status, history), abilities with reasons, the long-job buttons."""

from __future__ import annotations

import pytest
from qgis.core import QgsCategorizedSymbolRenderer, QgsProject, QgsRuleBasedRenderer
from qgis_support import ANALYST, COLLECTOR, ORIGIN, OWNER, unit_ids_by_name
from ui_support import make_canvas

from dlstudio_qgis.core import Project, WorkUnitStatus
from dlstudio_qgis.ui.layers import GROUP_PREFIX
from dlstudio_qgis.ui.projectdock import ProjectDock
from dlstudio_qgis.ui.session import CRITICAL, ProjectSession

X0, Y1 = ORIGIN
W = WorkUnitStatus


@pytest.fixture
def docked(make_project):
    made = []

    def make(user=ANALYST, path=None, **kw):
        path = path or make_project(**kw)
        canvas = make_canvas()
        session = ProjectSession(canvas, poll_ms=100000)
        dock = ProjectDock(session)
        opened = session.open(path, user)
        made.append((session, dock, canvas))
        return path, session, dock, canvas, opened

    yield make
    for session, dock, canvas in made:
        for d in dock.runner.dialogs:
            d.close()
        session.close()
        canvas.deleteLater()
    QgsProject.instance().removeAllMapLayers()


def test_opening_loads_a_styled_group_and_says_who_you_are(docked):
    path, session, dock, canvas, opened = docked(COLLECTOR)
    assert opened is not None
    assert "Test classify_pixels" in dock.title.text()
    assert "<b>carl</b>, <b>collector</b>" in dock.who.text()
    root = QgsProject.instance().layerTreeRoot()
    (group,) = [g for g in root.findGroups() if g.name().startswith(GROUP_PREFIX)]
    names = [n.layer().name() for n in group.findLayers()]
    assert names == ["Training samples", "Work units", "Imagery"]
    units, samples = session.units_layer, session.samples_layer
    assert units.readOnly() and samples.readOnly()
    assert units.featureCount() == 4
    renderer = units.renderer()
    assert isinstance(renderer, QgsCategorizedSymbolRenderer)
    assert [c.value() for c in renderer.categories()] == [s.value for s in W]
    assert units.labelsEnabled()
    rules = samples.renderer()
    assert isinstance(rules, QgsRuleBasedRenderer)
    classes = rules.rootRule().children()
    assert [r.label() for r in classes] == ["building", "road", "other class"]
    assert [r.filterExpression() for r in classes[0].children()] == [
        "\"status\" = 'pending'", "\"status\" = 'approved'", "\"status\" = 'rejected'"]  # fmt: skip
    # pending dashed, rejected with a second (cross) symbol layer
    pending, _approved, rejected = (r.symbol() for r in classes[0].children())
    assert pending.symbolLayer(0).strokeStyle() == 2  # Qt.DashLine
    assert rejected.symbolLayerCount() == 2
    # closing removes the group and its layers
    session.close()
    assert not [g for g in root.findGroups() if g.name().startswith(GROUP_PREFIX)]
    assert dock.title.text().startswith("No project open")


def test_what_a_collector_may_not_do_is_disabled_with_the_reason(docked):
    path, session, dock, canvas, _ = docked(COLLECTOR)
    for button in (dock.export_button, dock.train_button, dock.train_now):
        assert not button.isEnabled()
        assert "You are collector;" in button.toolTip() and "owner or analyst" in button.toolTip()
    assert not dock.units.set_status.isEnabled()
    assert "to review samples and set work unit statuses" in dock.units.set_status.toolTip()
    assert dock.units.start_next.isEnabled()


def test_an_analyst_may_export_and_train_and_infer_only_if_the_algorithm_exists(docked):
    from qgis.core import QgsApplication

    path, session, dock, canvas, _ = docked(ANALYST)
    assert dock.export_button.isEnabled() and dock.train_button.isEnabled()
    assert dock.export_button.toolTip().startswith("Open Export training data")
    has_infer = QgsApplication.processingRegistry().algorithmById("dlstudio:classifypixels")
    assert dock.infer_button.isEnabled() == bool(has_infer)
    if not has_infer:
        assert "dlstudio:classifypixels is not available" in dock.infer_button.toolTip()


def test_a_bad_file_is_refused_with_the_reason_and_nothing_opens(docked, tmp_path):
    bad = tmp_path / "notes.gpkg"
    bad.write_text("hello")
    path, session, dock, canvas, opened = docked(ANALYST, path=str(bad))
    assert opened is None and session.project is None
    text, level = session.last_message
    assert level == CRITICAL and "is not a GeoPackage" in text
    assert dock.title.text().startswith("No project open")
    assert not dock.export_button.isEnabled()


def test_work_unit_table_filters_and_start_next(docked):
    path, session, dock, canvas, _ = docked(COLLECTOR)
    units = dock.units
    assert units.model.rowCount() == 4 and units.count_label.text() == "4 of 4 work units"
    assert units.model.data(units.model.index(0, 2)) == "Queued"
    full = canvas.extent()
    units.start_next.click()
    ids = unit_ids_by_name(path)
    owner = Project.open(path, OWNER)
    assert owner.work_unit(ids["R1C1"]).assignee == COLLECTOR
    assert session.current_unit == ids["R1C1"]
    assert units.selected_ids() == [ids["R1C1"]]
    assert canvas.extent().width() < full.width() * 0.75  # zoomed to the unit
    row = [r for r in units.model.rows if r.fid == ids["R1C1"]][0]
    assert row.assignee == COLLECTOR
    # filter by assignee
    units.assignee_filter.setCurrentIndex(units.assignee_filter.findData(COLLECTOR))
    assert [r.fid for r in units.model.rows] == [ids["R1C1"]]
    units.assignee_filter.setCurrentIndex(units.assignee_filter.findData("-"))
    assert len(units.model.rows) == 3
    units.assignee_filter.setCurrentIndex(0)
    # filter by status
    Project.open(path, ANALYST).set_work_unit_status([ids["R2C2"]], "pending_review")
    session.refresh()
    units.status_filter.setCurrentIndex(units.status_filter.findData("pending_review"))
    assert [r.fid for r in units.model.rows] == [ids["R2C2"]]
    assert units.count_label.text() == "1 of 4 work units"


def test_double_click_zooms_to_the_unit(docked):
    path, session, dock, canvas, _ = docked(ANALYST)
    ids = unit_ids_by_name(path)
    table = dock.units.table
    r = [i for i, row in enumerate(dock.units.model.rows) if row.fid == ids["R2C2"]][0]
    table.doubleClicked.emit(dock.units.model.index(r, 1))
    ext = canvas.extent()
    assert ext.contains(session.to_map(Project.open(path).work_unit(ids["R2C2"]).geometry)
                        .boundingBox())  # fmt: skip
    assert ext.xMinimum() > X0 + 50 and ext.yMaximum() < Y1 - 50
    assert session.current_unit == ids["R2C2"]


def test_batch_status_with_a_comment_and_the_history(docked):
    path, session, dock, canvas, _ = docked(ANALYST)
    ids = unit_ids_by_name(path)
    units = dock.units
    units.select_ids([ids["R1C1"], ids["R1C2"]])
    units.batch_status.setCurrentIndex(units.batch_status.findData("reviewed"))
    units.batch_comment.setText("checked on site")
    units.set_status.click()
    owner = Project.open(path, OWNER)
    assert {owner.work_unit(i).status for i in (ids["R1C1"], ids["R1C2"])} == {W.REVIEWED}
    assert owner.work_unit(ids["R2C1"]).status is W.QUEUED
    assert "2 of 2 work units set to Reviewed" in session.last_message[0]
    assert units.selected_ids() == sorted([ids["R1C1"], ids["R1C2"]])
    units.select_ids([ids["R1C1"]])
    assert units.history.isEnabled()
    units.history.click()
    table = units.history_dialog.table
    rows = [[table.item(r, c).text() for c in range(6)] for r in range(table.rowCount())]
    assert rows[-1][1:] == [ANALYST, "set_status", "queued", "reviewed", "checked on site"]


def test_batch_status_refused_by_the_core_changes_nothing(docked):
    path, session, dock, canvas, _ = docked(ANALYST)
    Project.open(path, OWNER).set_complete(True)
    session.refresh()
    assert not dock.units.set_status.isEnabled()
    assert "marked complete" in dock.units.set_status.toolTip()
    ids = unit_ids_by_name(path)
    dock.units.select_ids([ids["R1C1"]])
    dock.units.apply_status()  # called anyway: the core refuses
    assert "takes no more changes" in session.last_message[0]
    assert Project.open(path).work_unit(ids["R1C1"]).status is W.QUEUED


def test_export_and_train_open_their_dialogs_pre_filled(docked):
    path, session, dock, canvas, _ = docked(ANALYST, tool="DETECT_OBJECTS")
    dialog = dock.open_export()
    assert dialog is not None and dialog.isVisible() and not dialog.isModal()
    params = dialog.mainWidget().createProcessingParameters()
    assert params["PROJECT"] == path
    assert params["METADATA_FORMAT"] == "PASCAL_VOC_rectangles"
    assert params["OUTPUT_FOLDER"].endswith("_training_data")
    train = dock.open_train()
    tparams = train.mainWidget().createProcessingParameters()
    assert tparams["MODEL_TYPE"] == "SSD" and tparams["PROJECT"] == path
    assert tparams["OUTPUT"].endswith("_model.dlpk")


def test_layers_removed_by_the_user_are_forgotten_not_crashed_on(docked):
    path, session, dock, canvas, _ = docked(ANALYST)
    QgsProject.instance().removeMapLayers([session.units_layer.id(), session.samples_layer.id()])
    Project.open(path, OWNER).set_work_unit_status([unit_ids_by_name(path)["R1C1"]], "reviewed")
    assert session.poll()  # refreshes the table; the layers are gone
    assert session.layers() == [] and session.units_layer is None
    assert [r.status for r in dock.units.model.rows].count(W.REVIEWED) == 1
