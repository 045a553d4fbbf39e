"""Runs INSIDE the QGIS desktop (``qgis --code docks_probe.py``), started by test_docks_desktop.py:
a scripted session with the plugin's docks. It creates a project on a synthetic scene (through
the Processing algorithms), opens it in the project dock, takes the next work unit, draws
samples on the map with real mouse events, drags a corner of one with the Edit shape tool
(undo, redo), marks the unit complete, reviews it with the keyboard (A, R, A) and finishes the
review, taking screenshots on the way; then unloads the plugin. Writes a JSON result and quits
QGIS. At start-up the plugin tried to reopen the last project (the test's profile names a file
that is gone): that is recorded too.

Environment: DLS_UI_RESULT (JSON path), DLS_UI_DIR (screenshots), DLS_SCENE (GeoTIFF),
DLS_BUILDINGS (its buildings GeoJSON), DLS_PROJECT (the project file to create).
"""

import json
import os
import traceback

import qgis.utils
from qgis.core import QgsApplication, QgsPointXY, QgsProject, QgsSettings
from qgis.PyQt.QtCore import QPoint, Qt, QTimer
from qgis.PyQt.QtTest import QTest
from qgis.PyQt.QtWidgets import QDockWidget

PLUGIN = "dlstudio_qgis"
RESULT = os.environ["DLS_UI_RESULT"]
OUT = os.environ["DLS_UI_DIR"]
iface = qgis.utils.iface
res: dict = {"steps": []}
state: dict = {}


def shot(name: str) -> None:
    iface.mapCanvas().waitWhileRendering()
    path = os.path.join(OUT, f"{name}.png")
    iface.mainWindow().grab().save(path)
    res.setdefault("shots", []).append(path)


def our_docks():
    return sorted(d.objectName() for d in iface.mainWindow().findChildren(QDockWidget)
                  if d.objectName().startswith("DeepLearningStudio"))  # fmt: skip


def to_pixel(x: float, y: float) -> QPoint:
    """The canvas pixel of a point in the project CRS."""
    pt = state["m"].session._transform(False).transform(QgsPointXY(x, y))
    p = iface.mapCanvas().getCoordinateTransform().transform(pt)
    return QPoint(round(p.x()), round(p.y()))


# --- the steps -----------------------------------------------------------------------------


def create_and_open():
    import processing

    manager = qgis.utils.plugins[PLUGIN].docks
    state["m"] = manager
    # the plugin's start-up reopen of the last project (a file that is gone)
    res["startup_message"] = list(manager.session.last_message)
    res["last_project_at_start"] = QgsSettings().value("dlstudio/last_project", "")
    res["docks_before"] = our_docks()
    res["tabbed_with_project_dock"] = sorted(
        d.objectName() for d in iface.mainWindow().tabifiedDockWidgets(manager.project_dock)
    )
    path = os.environ["DLS_PROJECT"]
    processing.run("dlstudio:createproject", {
        "NAME": "Desktop demo", "INPUT_RASTER": os.environ["DLS_SCENE"],
        "INFERENCE_TOOL": "DETECT_OBJECTS", "CLASSES": "1:building:#e6194b,2:shed:#4363d8",
        "OUTPUT": path})  # fmt: skip
    processing.run("dlstudio:createworkunits", {"PROJECT": path, "CELL_SIZE": 256,
                                                "CELL_UNITS": "PIXELS"})  # fmt: skip
    processing.run("dlstudio:addmember", {"PROJECT": path, "MEMBER": "carl",
                                          "ROLE": "collector"})  # fmt: skip
    project = manager.session.open(path)
    res["opened"] = project is not None
    res["who"] = manager.project_dock.who.text()
    res["layers"] = sorted(lyr.name() for lyr in QgsProject.instance().mapLayers().values())


def start_next():
    m = state["m"]
    m.project_dock.raise_()
    m.project_dock.units.start_next.click()
    res["current_unit"] = m.session.current_unit
    res["table_rows"] = m.project_dock.units.model.rowCount()


def draw_samples():
    m = state["m"]
    m.collect_dock.raise_()
    m.collect_dock.draw_button.click()
    res["draw_tool_active"] = iface.mapCanvas().mapTool() is m.collect_dock.draw_tool
    unit = m.session.project.work_unit(m.session.current_unit)
    x0, y0, x1, y1 = unit.geometry.bounds()
    with open(os.environ["DLS_BUILDINGS"], encoding="utf-8") as f:
        features = json.load(f)["features"]
    boxes = []
    for feat in features:
        ring = feat["geometry"]["coordinates"][0]
        xs, ys = [p[0] for p in ring], [p[1] for p in ring]
        cx, cy = (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2
        if x0 < cx < x1 and y0 < cy < y1:
            boxes.append((min(xs), min(ys), max(xs), max(ys)))
    viewport = iface.mapCanvas().viewport()
    for i, (bx0, by0, bx1, by1) in enumerate(boxes[:4]):
        QTest.keyClick(iface.mapCanvas(), Qt.Key.Key_1 if i % 3 else Qt.Key.Key_2)
        a, b = to_pixel(bx0 - 1, by1 + 1), to_pixel(bx1 + 1, by0 - 1)
        QTest.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, a)
        QTest.mouseMove(viewport, b)
        QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, b)
    samples = m.session.project.samples()
    res["drawn"] = len(samples)
    res["drawn_rectangles"] = all(s.geometry.is_rectangle() for s in samples)
    res["classes_drawn"] = sorted({s.class_value for s in samples})
    res["unit_after_draw"] = m.session.project.work_unit(m.session.current_unit).status.value
    # one more, then undo it with Ctrl+Z on the map
    a, b = to_pixel(x0 + 3, y1 - 3), to_pixel(x0 + 9, y1 - 9)
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, a)
    QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, b)
    res["after_extra"] = len(m.session.project.samples())
    iface.mapCanvas().setFocus()
    QTest.keyClick(iface.mapCanvas(), Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    res["after_undo"] = len(m.session.project.samples())


def shot_collect():
    shot("collect_dock")


def drag(a: QPoint, b: QPoint) -> None:
    viewport = iface.mapCanvas().viewport()
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, a)
    QTest.mouseMove(viewport, b)
    QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, b)


def edit_shape():
    """Select the first sample with the Edit shape tool and drag its top-right corner out."""
    m = state["m"]
    canvas = iface.mapCanvas()
    dock = m.collect_dock
    dock.edit_button.click()
    res["edit_tool_active"] = canvas.mapTool() is dock.edit_tool
    sample = min(m.session.project.samples(), key=lambda s: s.fid)
    x0, y0, x1, y1 = sample.geometry.bounds()
    m.session.zoom_to(sample.geometry, buffer=0.6)
    centre = to_pixel((x0 + x1) / 2, (y0 + y1) / 2)
    drag(centre, centre)  # a click
    res["edit_selected"] = dock.selected == sample.fid
    res["edit_handles"] = len(dock.edit_tool.handles())
    target = (x1 + 3.0, y1 + 2.0)
    drag(to_pixel(x1, y1), to_pixel(*target))
    edited = m.session.project.samples(ids=[sample.fid])[0].geometry
    res["edit_rectangle"] = edited.is_rectangle()
    res["edit_bounds"] = [list(sample.geometry.bounds()), list(edited.bounds())]
    res["edit_target"] = list(target)
    res["edit_tolerance"] = 2 * canvas.mapUnitsPerPixel()
    canvas.setFocus()
    QTest.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    undone = m.session.project.samples(ids=[sample.fid])[0].geometry
    res["edit_undone"] = undone == sample.geometry
    QTest.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier
                   | Qt.KeyboardModifier.ShiftModifier)  # fmt: skip
    res["edit_redone"] = m.session.project.samples(ids=[sample.fid])[0].geometry == edited
    res["edit_history"] = [h.action for h in m.session.project.history("sample", sample.fid)]


def shot_edit():
    shot("edit_shape")


def complete_and_review():
    m = state["m"]
    m.collect_dock.complete_button.click()
    res["unit_after_complete"] = m.session.project.work_unit(m.session.current_unit).status.value
    iface.mapCanvas().unsetMapTool(m.collect_dock.edit_tool)
    m.review_dock.raise_()
    m.review_dock.queue.setCurrentRow(0)
    m.review_dock.open_button.click()
    review = m.review_dock.review
    res["review_opened"] = review is not None
    dock = m.review_dock
    QTest.keyClick(dock, Qt.Key.Key_A)
    dock.comment.setText("the roof is cut off")
    QTest.keyClick(dock, Qt.Key.Key_R)
    res["review_info"] = dock.sample_info.text()


def shot_review():
    shot("review_dock")


def finish_review():
    m = state["m"]
    dock = m.review_dock
    while dock.review is not None and not dock.review.done:
        QTest.keyClick(dock, Qt.Key.Key_A)
    res["suggested"] = dock.review.suggested_finish().value
    dock.finish_queued.click()
    p = m.session.project
    res["final_unit"] = p.work_unit(m.session.current_unit).status.value
    res["final_samples"] = sorted(s.status.value for s in p.samples())
    res["summary"] = dock.summary.text()
    m.project_dock.raise_()
    from dlstudio_qgis.core import rectangle

    m.session.zoom_to(rectangle(*p.info().imagery.extent), buffer=0.02)


def shot_project():
    shot("project_dock")


def unload():
    res["last_project_at_end"] = QgsSettings().value("dlstudio/last_project", "")
    res["unload_ok"] = bool(qgis.utils.unloadPlugin(PLUGIN))


def after_unload():
    res["docks_after"] = our_docks()


STEPS = [(create_and_open, 2500), (start_next, 2000), (draw_samples, 2500),
         (shot_collect, 500), (edit_shape, 2000), (shot_edit, 500),
         (complete_and_review, 2500), (shot_review, 500),
         (finish_review, 2500), (shot_project, 500), (unload, 800),
         (after_unload, 200)]  # fmt: skip


def run_step(i: int = 0) -> None:
    if i >= len(STEPS):
        return write_and_quit()
    fn, delay = STEPS[i]
    try:
        fn()
        res["steps"].append(fn.__name__)
    except Exception:
        res["error"] = f"{fn.__name__}: {traceback.format_exc()}"
        return write_and_quit()
    QTimer.singleShot(delay, lambda: run_step(i + 1))


def write_and_quit():
    with open(RESULT, "w", encoding="utf-8") as f:
        json.dump(res, f, indent=1)
    QgsProject.instance().setDirty(False)
    QTimer.singleShot(200, iface.actionExit().trigger)
    QTimer.singleShot(8000, lambda: QgsApplication.exit(0))
    QTimer.singleShot(15000, lambda: os._exit(3))


iface.mainWindow().resize(1500, 950)
QTimer.singleShot(3000, run_step)
