"""Helpers for the dock tests: a real map canvas, mouse events on it, waiting for Qt."""

from __future__ import annotations

import time

from qgis.core import QgsCoordinateReferenceSystem, QgsPointXY, QgsProject
from qgis.gui import QgsMapCanvas, QgsMapMouseEvent
from qgis.PyQt.QtCore import QEvent, QPoint, Qt
from qgis.PyQt.QtWidgets import QApplication

LEFT, RIGHT, NONE = Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton, Qt.MouseButton.NoButton
NO_MODS = Qt.KeyboardModifier.NoModifier


def make_canvas(crs: str = "EPSG:32611") -> QgsMapCanvas:
    canvas = QgsMapCanvas()
    canvas.resize(600, 600)
    canvas.setDestinationCrs(QgsCoordinateReferenceSystem(crs))
    canvas.show()
    QApplication.processEvents()
    return canvas


def close_docks(made: list) -> None:
    """Tear down the (session, dock, canvas) triples a dock fixture made, and the layers."""
    for session, dock, canvas in made:
        dock.cleanup()
        session.close()
        canvas.deleteLater()
    QgsProject.instance().removeAllMapLayers()


def pixel(canvas, x: float, y: float, crs: str | None = None) -> QPoint:
    """The canvas pixel of a map point (given in `crs`, default the canvas's)."""
    pt = QgsPointXY(x, y)
    if crs is not None:
        from qgis.core import QgsCoordinateTransform

        ct = QgsCoordinateTransform(QgsCoordinateReferenceSystem(crs),
                                    canvas.mapSettings().destinationCrs(),
                                    QgsProject.instance())  # fmt: skip
        pt = ct.transform(pt)
    p = canvas.getCoordinateTransform().transform(pt)
    return QPoint(round(p.x()), round(p.y()))


def mouse(canvas, kind: str, pos: QPoint, button=LEFT) -> QgsMapMouseEvent:
    types = {"press": QEvent.Type.MouseButtonPress, "release": QEvent.Type.MouseButtonRelease,
             "move": QEvent.Type.MouseMove, "double": QEvent.Type.MouseButtonDblClick}  # fmt: skip
    buttons = NONE if kind == "release" else button
    return QgsMapMouseEvent(canvas, types[kind], pos, button, buttons, NO_MODS)


def click(canvas, tool, pos: QPoint, button=LEFT) -> None:
    tool.canvasPressEvent(mouse(canvas, "press", pos, button))
    tool.canvasReleaseEvent(mouse(canvas, "release", pos, button))


def drag(canvas, tool, start: QPoint, end: QPoint) -> None:
    tool.canvasPressEvent(mouse(canvas, "press", start))
    tool.canvasMoveEvent(mouse(canvas, "move", end, NONE))
    tool.canvasReleaseEvent(mouse(canvas, "release", end))


def wait_until(predicate, timeout: float = 60.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        QApplication.processEvents()
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


# --- real mouse events on the canvas's viewport (through QgsMapCanvas to its map tool) ---


def press_at(canvas, pos: QPoint) -> None:
    from qgis.PyQt.QtTest import QTest

    QTest.mousePress(canvas.viewport(), LEFT, NO_MODS, pos)


def move_to(canvas, pos: QPoint, held: bool = False) -> None:
    """A mouse move to the viewport itself (QTest.mouseMove moves the cursor instead, and
    the platform gives that move to whichever top-level window lies under it)."""
    from qgis.PyQt.QtCore import QPointF
    from qgis.PyQt.QtGui import QMouseEvent

    viewport = canvas.viewport()
    event = QMouseEvent(QEvent.Type.MouseMove, QPointF(pos), QPointF(viewport.mapToGlobal(pos)),
                        NONE, LEFT if held else NONE, NO_MODS)  # fmt: skip
    QApplication.sendEvent(viewport, event)


def release_at(canvas, pos: QPoint) -> None:
    from qgis.PyQt.QtTest import QTest

    QTest.mouseRelease(canvas.viewport(), LEFT, NO_MODS, pos)


def mouse_drag(canvas, start: QPoint, end: QPoint, steps: int = 4) -> None:
    """Press, move in steps, release: a drag as a hand makes it."""
    press_at(canvas, start)
    for i in range(1, steps + 1):
        move_to(canvas, start + (end - start) * (i / steps), held=True)
    release_at(canvas, end)


def double_click_at(canvas, pos: QPoint) -> None:
    """Qt's sequence for a double-click: press, release, double-click, release."""
    from qgis.PyQt.QtTest import QTest

    viewport = canvas.viewport()
    QTest.mouseClick(viewport, LEFT, NO_MODS, pos)
    QTest.mouseDClick(viewport, LEFT, NO_MODS, pos)
    QTest.mouseRelease(viewport, LEFT, NO_MODS, pos)
