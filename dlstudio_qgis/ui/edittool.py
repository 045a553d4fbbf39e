"""The Edit shape map tool: move a sample's vertices or the whole sample, add and remove
vertices, as QGIS's vertex tool does.

Click a sample to select it: its vertices show as handles. Drag a handle to move that vertex
(a rectangle's corner keeps it an axis-aligned rectangle, the opposite corner fixed; a point
sample is its one handle); drag inside the shape, or on its outline, to move it all. On a
polygon, double-click an edge to add a vertex there, and press Delete or Backspace with the
mouse over a vertex to remove it (a ring keeps at least 3). Esc during a drag cancels it.
Pressing outside the selected sample selects the sample there (or none), so a press on
another sample can go straight on into a drag.

The tool edits in the project's CRS (the samples layer's), converting the mouse position, so
the vertices it does not touch stay exactly as stored and a rectangle stays axis-aligned in
the project CRS whatever the map's CRS. Each finished edit is emitted as `edited(fid,
geometry)`; the collect dock commits it through the core and shows with `show_sample` the
shape the file holds afterwards: the new one, or the old one when the core refused.
"""

from __future__ import annotations

import contextlib

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsGeometry,
    QgsPointXY,
    QgsRectangle,
)
from qgis.gui import QgsMapTool, QgsRubberBand, QgsVertexMarker
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtGui import QColor

from ..processing.base import GEOM_POINT, GEOM_POLYGON
from .maptools import LEFT, MIN_PIXELS, POINT, POLYGON, RECTANGLE, _KeysMixin

TOLERANCE = 8  # pixels: how near a handle or an edge the mouse must be
MOVE, VERTEX = "move", "vertex"
ESCAPE = Qt.Key.Key_Escape
DELETE_KEYS = (Qt.Key.Key_Delete, Qt.Key.Key_Backspace)
HANDLE_COLOR = QColor(255, 0, 255)


class SampleEditTool(QgsMapTool, _KeysMixin):
    picked = pyqtSignal(QgsPointXY, float)  # map point, search radius in map units
    edited = pyqtSignal(int, QgsGeometry)  # fid, the new shape in the project CRS
    refused = pyqtSignal(str)  # an edit the tool itself does not make, and why
    class_key = pyqtSignal(int)
    undo_requested = pyqtSignal()
    redo_requested = pyqtSignal()

    def __init__(self, canvas) -> None:
        super().__init__(canvas)
        self.shape = POLYGON
        self.crs = QgsCoordinateReferenceSystem()  # the project's; invalid = the map's
        self.fid: int | None = None
        self.geometry: QgsGeometry | None = None  # the selected sample, project CRS
        self.band = QgsRubberBand(canvas, GEOM_POLYGON)
        self.band.setColor(QColor(255, 0, 255, 40))
        self.band.setStrokeColor(HANDLE_COLOR)
        self.band.setWidth(2)
        self.markers: list[QgsVertexMarker] = []
        self._press = None  # (pixel, MOVE or VERTEX, vertex index, project point) of a press
        self._preview: QgsGeometry | None = None  # the shape being dragged
        self._hover = None  # the last mouse pixel
        self.setCursor(Qt.CursorShape.ArrowCursor)
        # while a mouse button is down the canvas gives keys to no map tool, only this signal
        canvas.keyPressed.connect(self._canvas_key)

    # --- what is shown ---------------------------------------------------------------------

    def set_project(self, crs: QgsCoordinateReferenceSystem, shape: str) -> None:
        self.crs, self.shape = QgsCoordinateReferenceSystem(crs), shape
        self.show_sample(None, None)

    def show_sample(self, fid: int | None, geometry: QgsGeometry | None) -> None:
        """Select a sample (its shape in the project CRS), or nothing; ends any drag."""
        self._press = self._preview = None
        self.fid = fid
        self.geometry = None if fid is None or geometry is None else QgsGeometry(geometry)
        self._draw(self.geometry)

    @property
    def dragging(self) -> bool:
        return self._press is not None

    def cancel(self) -> None:
        """Drop the drag under way: the shape goes back to where it was."""
        self._press = self._preview = None
        self._draw(self.geometry)

    def handles(self) -> list[QgsPointXY]:
        """The handles' positions on the map (map CRS), for tests and the probe."""
        return [QgsPointXY(m.center()) for m in self.markers]

    def deactivate(self) -> None:
        self.show_sample(None, None)
        super().deactivate()

    def clear(self) -> None:
        self.show_sample(None, None)
        self.band.reset(GEOM_POLYGON)

    def release(self) -> None:
        """Forget the canvas's key signal (the plugin unloads)."""
        self.clear()
        with contextlib.suppress(TypeError):  # not connected
            self.canvas().keyPressed.disconnect(self._canvas_key)

    # --- mouse -----------------------------------------------------------------------------

    def canvasPressEvent(self, e) -> None:  # noqa: N802 - QGIS's name
        if e.button() != LEFT:
            return
        kind, vertex = self._grab(e.pos())
        if kind is None:  # not on the selection: select what is there (the dock calls back)
            self.picked.emit(e.mapPoint(), self.searchRadiusMU(self.canvas()))
            kind, vertex = self._grab(e.pos())
        if kind is not None:
            self._press = (e.pos(), kind, vertex, self._to_layer(e.mapPoint()))

    def canvasMoveEvent(self, e) -> None:  # noqa: N802
        self._hover = e.pos()
        if self._press is not None and (self._preview is not None or self._moved(e.pos())):
            self._preview = self._dragged(e.pos())
            self._draw(self._preview)

    def canvasReleaseEvent(self, e) -> None:  # noqa: N802
        if e.button() != LEFT or self._press is None:
            return
        moved = self._preview is not None or self._moved(e.pos())
        new = self._dragged(e.pos()) if moved else None
        self.cancel()
        if new is not None and self.fid is not None:
            self.edited.emit(self.fid, new)

    def canvasDoubleClickEvent(self, e) -> None:  # noqa: N802
        """Double-click on a polygon's edge: a vertex there."""
        self.cancel()
        if self.shape == POINT or self.geometry is None or self._vertex_at(e.pos()) is not None:
            return
        edge = self._edge_at(e.mapPoint())
        if edge is None:
            return
        if self.shape == RECTANGLE:
            self.refused.emit("A rectangle keeps its 4 corners; drag a corner instead.")
            return
        after, at = edge
        pt = self._to_layer(at)
        new = QgsGeometry(self.geometry)
        if new.insertVertex(pt.x(), pt.y(), after):
            self.edited.emit(self.fid, new)

    # --- keys ------------------------------------------------------------------------------

    def keyPressEvent(self, e) -> None:  # noqa: N802
        if e.key() == ESCAPE and self._press is not None:
            self.cancel()
            e.accept()
        elif e.key() in DELETE_KEYS and self.geometry is not None and self._hover is not None:
            self.delete_vertex_at(self._hover)
            e.accept()
        elif not self.handle_key(e):
            e.ignore()

    def _canvas_key(self, e) -> None:
        if e.key() == ESCAPE and self._press is not None and self.canvas().mapTool() is self:
            self.cancel()

    def delete_vertex_at(self, pos) -> bool:
        """Remove the polygon vertex under a pixel (never below 3 in a ring)."""
        vertex = self._vertex_at(pos)
        if vertex is None:
            return False
        if self.shape != POLYGON:
            self.refused.emit("Only a polygon's vertices can be removed.")
            return False
        if _ring_size(self.geometry, vertex) <= 3:
            self.refused.emit("A polygon keeps at least 3 vertices.")
            return False
        new = QgsGeometry(self.geometry)
        if not new.deleteVertex(vertex):
            return False
        self.edited.emit(self.fid, new)
        return True

    # --- geometry --------------------------------------------------------------------------

    def _transform(self, to_map: bool) -> QgsCoordinateTransform:
        settings = self.canvas().mapSettings()
        crs = self.crs if self.crs.isValid() else settings.destinationCrs()
        src, dst = (crs, settings.destinationCrs()) if to_map else (settings.destinationCrs(), crs)
        return QgsCoordinateTransform(src, dst, settings.transformContext())

    def _to_layer(self, map_point: QgsPointXY) -> QgsPointXY:
        return self._transform(False).transform(map_point)

    def _on_map(self, geometry: QgsGeometry) -> QgsGeometry:
        geom = QgsGeometry(geometry)
        geom.transform(self._transform(True))
        return geom

    def _pixel(self, map_point: QgsPointXY) -> QgsPointXY:
        return self.canvas().getCoordinateTransform().transform(map_point)

    def _moved(self, pos) -> bool:
        return (pos - self._press[0]).manhattanLength() >= MIN_PIXELS

    def _vertex_at(self, pos) -> int | None:
        """The index (QgsGeometry's vertex numbering) of the handle nearest a pixel."""
        if self.geometry is None:
            return None
        best, best_d = None, TOLERANCE
        for index, pt in _handles(self._on_map(self.geometry)):
            px = self._pixel(pt)
            d = max(abs(px.x() - pos.x()), abs(px.y() - pos.y()))
            if d <= best_d:
                best, best_d = index, d
        return best

    def _edge_at(self, map_point: QgsPointXY):
        """(index of the vertex after the nearest edge, the nearest point) within tolerance."""
        geom = self._on_map(self.geometry)
        sqr, at, after, _left = geom.closestSegmentWithContext(map_point)
        tol = TOLERANCE * self.canvas().mapUnitsPerPixel()
        return (after, at) if after >= 0 and sqr <= tol * tol else None

    def _grab(self, pos) -> tuple[str | None, int | None]:
        """What a press at a pixel takes hold of: a vertex, the whole shape, or nothing."""
        if self.geometry is None:
            return None, None
        vertex = self._vertex_at(pos)
        if vertex is not None:
            return VERTEX, vertex
        if self.shape == POINT:
            return None, None
        map_point = self.toMapCoordinates(pos)
        if self._on_map(self.geometry).contains(map_point) or self._edge_at(map_point):
            return MOVE, None
        return None, None

    def _dragged(self, pos) -> QgsGeometry:
        """The selected shape as the drag from the press to a pixel makes it."""
        _px, kind, vertex, start = self._press
        now = self._to_layer(self.toMapCoordinates(pos))
        geom = QgsGeometry(self.geometry)
        if kind == MOVE:
            geom.translate(now.x() - start.x(), now.y() - start.y())
        elif self.shape == RECTANGLE:
            box, corner = geom.boundingBox(), geom.vertexAt(vertex)
            # the opposite corner stays: the far side from the dragged one on each axis
            right = corner.x() - box.xMinimum() > box.width() / 2
            top = corner.y() - box.yMinimum() > box.height() / 2
            fixed = QgsPointXY(box.xMinimum() if right else box.xMaximum(),
                               box.yMinimum() if top else box.yMaximum())  # fmt: skip
            geom = QgsGeometry.fromRect(QgsRectangle(fixed, now))
        else:
            geom.moveVertex(now.x(), now.y(), vertex)
        return geom

    def _draw(self, geometry: QgsGeometry | None) -> None:
        self.band.reset(GEOM_POINT if self.shape == POINT else GEOM_POLYGON)
        scene = self.canvas().scene()
        for marker in self.markers:
            scene.removeItem(marker)
        self.markers = []
        if geometry is None:
            return
        on_map = self._on_map(geometry)
        if self.shape != POINT:
            self.band.setToGeometry(on_map)
        for _index, pt in _handles(on_map):
            marker = QgsVertexMarker(self.canvas())
            marker.setIconType(QgsVertexMarker.IconType.ICON_BOX)
            marker.setIconSize(10)
            marker.setPenWidth(2)
            marker.setColor(HANDLE_COLOR)
            marker.setCenter(pt)
            self.markers.append(marker)


def _rings(geometry: QgsGeometry):
    """(index of the ring's first vertex, its points) for each ring of each part."""
    start = 0
    for part in geometry.constGet().coordinateSequence():
        for ring in part:
            yield start, ring
            start += len(ring)


def _closed(ring) -> bool:
    return len(ring) > 1 and (ring[0].x(), ring[0].y()) == (ring[-1].x(), ring[-1].y())


def _handles(geometry: QgsGeometry) -> list[tuple[int, QgsPointXY]]:
    """(vertex index, point) of every vertex but a ring's closing one."""
    out = []
    for start, ring in _rings(geometry):
        count = len(ring) - 1 if _closed(ring) else len(ring)
        out += [(start + i, QgsPointXY(ring[i].x(), ring[i].y())) for i in range(count)]
    return out


def _ring_size(geometry: QgsGeometry, vertex: int) -> int:
    """How many distinct vertices the ring holding a vertex has."""
    for start, ring in _rings(geometry):
        if start <= vertex < start + len(ring):
            return len(ring) - 1 if _closed(ring) else len(ring)
    return 0
