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
