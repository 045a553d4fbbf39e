"""Map tools for collecting samples: drawing (rectangle, polygon, point) and picking.

The tools only draw and report geometries in the map's CRS; the collect dock converts them to
the project CRS and hands them to the core.

Drawing: rectangle = press, drag, release; polygon = click the vertices, right-click or
double-click to finish (Backspace removes the last vertex); point = click. Esc cancels the
shape being drawn. Keys 1-9 pick a class; Ctrl+Z / Ctrl+Shift+Z undo and redo.
"""

from __future__ import annotations

from qgis.core import QgsGeometry, QgsPointXY, QgsRectangle
from qgis.gui import QgsMapTool, QgsRubberBand
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtGui import QColor, QKeySequence

from ..processing.base import GEOM_POINT, GEOM_POLYGON

RECTANGLE, POLYGON, POINT = "rectangle", "polygon", "point"
MIN_PIXELS = 3  # a drag shorter than this is a click, not a rectangle

LEFT, RIGHT = Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton
_DIGITS = {getattr(Qt.Key, f"Key_{i}"): i for i in range(1, 10)}


def shape_for(inference_tool: str, sample_geometry: str) -> str:
    """The shape a project's samples are drawn as."""
    if sample_geometry == "POINT":
        return POINT
    return RECTANGLE if inference_tool == "DETECT_OBJECTS" else POLYGON


class _KeysMixin:
    """Class keys and undo/redo for the collect tools (the dock connects the signals)."""

    def handle_key(self, event) -> bool:
        key, mods = event.key(), event.modifiers()
        if event.matches(QKeySequence.StandardKey.Undo):
            self.undo_requested.emit()
        elif event.matches(QKeySequence.StandardKey.Redo) or (
            key == Qt.Key.Key_Z and mods & Qt.KeyboardModifier.ControlModifier
            and mods & Qt.KeyboardModifier.ShiftModifier
        ):  # fmt: skip
            self.redo_requested.emit()
        elif key in _DIGITS and not mods & Qt.KeyboardModifier.ControlModifier:
            self.class_key.emit(_DIGITS[key])
        else:
            return False
        event.accept()
        return True


class SampleDrawTool(QgsMapTool, _KeysMixin):
    drawn = pyqtSignal(QgsGeometry)  # in the map's CRS
    class_key = pyqtSignal(int)
    undo_requested = pyqtSignal()
    redo_requested = pyqtSignal()

    def __init__(self, canvas, shape: str = POLYGON) -> None:
        super().__init__(canvas)
        self.shape = shape
        self.points: list[QgsPointXY] = []
        self._start = None
        self._start_px = None
        kind = GEOM_POINT if shape == POINT else GEOM_POLYGON
        self.band = QgsRubberBand(canvas, kind)
        self.band.setColor(QColor(255, 140, 0, 90))
        self.band.setStrokeColor(QColor(255, 140, 0))
        self.band.setWidth(2)
        self.setCursor(Qt.CursorShape.CrossCursor)

    def set_shape(self, shape: str) -> None:
        self.reset()
        self.shape = shape
        self.band.reset(GEOM_POINT if shape == POINT else GEOM_POLYGON)

    def reset(self) -> None:
        self.points, self._start, self._start_px = [], None, None
        self.band.reset(GEOM_POINT if self.shape == POINT else GEOM_POLYGON)

    def deactivate(self) -> None:
        self.reset()
        super().deactivate()

    # --- mouse ---

    def canvasPressEvent(self, e) -> None:  # noqa: N802 - QGIS's name
        if self.shape == RECTANGLE and e.button() == LEFT:
            self._start, self._start_px = e.mapPoint(), e.pos()

    def canvasMoveEvent(self, e) -> None:  # noqa: N802
        if self.shape == RECTANGLE and self._start is not None:
            self.band.setToGeometry(QgsGeometry.fromRect(QgsRectangle(self._start, e.mapPoint())))
        elif self.shape == POLYGON and self.points:
            self.band.setToGeometry(QgsGeometry.fromPolygonXY([[*self.points, e.mapPoint()]]))

    def canvasReleaseEvent(self, e) -> None:  # noqa: N802
        if self.shape == RECTANGLE:
            if e.button() != LEFT or self._start is None:
                return
            start, start_px = self._start, self._start_px
            self.reset()
            d = e.pos() - start_px
            if abs(d.x()) < MIN_PIXELS or abs(d.y()) < MIN_PIXELS:
                return
            self.drawn.emit(QgsGeometry.fromRect(QgsRectangle(start, e.mapPoint())))
        elif self.shape == POINT and e.button() == LEFT:
            self.drawn.emit(QgsGeometry.fromPointXY(e.mapPoint()))
        elif self.shape == POLYGON:
            if e.button() == LEFT:
                self.points.append(e.mapPoint())
                self._show_polygon()
            elif e.button() == RIGHT:
                self.finish_polygon()

    def canvasDoubleClickEvent(self, e) -> None:  # noqa: N802
        if self.shape == POLYGON:
            self.finish_polygon()

    def finish_polygon(self) -> None:
        pts = []
        for p in self.points:  # a double-click adds its point twice
            if not pts or p != pts[-1]:
                pts.append(p)
        self.reset()
        if len(pts) >= 3:
            self.drawn.emit(QgsGeometry.fromPolygonXY([pts]))

    def _show_polygon(self) -> None:
        if len(self.points) >= 2:
            self.band.setToGeometry(QgsGeometry.fromPolygonXY([self.points]))

    # --- keys ---

    def keyPressEvent(self, e) -> None:  # noqa: N802
        if e.key() == Qt.Key.Key_Escape:
            self.reset()
            e.accept()
        elif e.key() == Qt.Key.Key_Backspace and self.points:
            self.points.pop()
            self._show_polygon()
            e.accept()
        elif e.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.shape == POLYGON:
            self.finish_polygon()
            e.accept()
        elif not self.handle_key(e):
            e.ignore()


class SamplePickTool(QgsMapTool, _KeysMixin):
    """Click a sample to select it (for deleting it or changing its class)."""

    picked = pyqtSignal(QgsPointXY, float)  # map point, search radius in map units
    class_key = pyqtSignal(int)
    undo_requested = pyqtSignal()
    redo_requested = pyqtSignal()

    def __init__(self, canvas) -> None:
        super().__init__(canvas)
        self.setCursor(Qt.CursorShape.PointingHandCursor)

    def canvasReleaseEvent(self, e) -> None:  # noqa: N802
        if e.button() == LEFT:
            radius = self.searchRadiusMU(self.canvas())
            self.picked.emit(e.mapPoint(), radius)

    def keyPressEvent(self, e) -> None:  # noqa: N802
        if not self.handle_key(e):
            e.ignore()
