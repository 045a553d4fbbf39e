"""The open project the docks share: the core Project, its layers, and change watching.

Every write goes through `act`, which calls the core, reports a refusal in the user's words
and refreshes the layers and docks. A QTimer polls the file so that changes made by other
processes (a colleague, a Processing run, qgis_process) show up without reopening.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from qgis.core import (
    QgsApplication,
    QgsCoordinateTransform,
    QgsGeometry,
    QgsProject,
    QgsRectangle,
)
from qgis.PyQt import sip
from qgis.PyQt.QtCore import QObject, QTimer, pyqtSignal

from .. import settings
from ..core import DLStudioError, Geometry, Project, Role, rectangle
from ..core.geometry import to_wkb
from ..processing.base import project_crs, to_core
from . import layers as project_layers
from .abilities import Ability, abilities, no_project
from .watch import ChangeProbe

INFO, WARNING, CRITICAL = 0, 1, 2
POLL_MS = 1000
#: renders after a change at which the project's layers are drawn afresh again (see refresh)
REPAINTS_AFTER_CHANGE = 2


class ProjectSession(QObject):
    """One open project for the docks; `canvas` is the map canvas they draw and zoom on."""

    opened = pyqtSignal()
    closed = pyqtSignal()
    changed = pyqtSignal()
    message = pyqtSignal(str, int)
    #: the work unit the user works in now (Start next, a double-click, the last sample drawn)
    current_unit_changed = pyqtSignal(int)

    def __init__(self, canvas, qgs_project: QgsProject | None = None, iface=None,
                 poll_ms: int = POLL_MS) -> None:  # fmt: skip
        super().__init__()
        self.canvas = canvas
        self.qgs_project = qgs_project or QgsProject.instance()
        self.iface = iface
        self.project: Project | None = None
        self.units_layer = None
        self.samples_layer = None
        self.current_unit: int | None = None
        self.last_message = ("", INFO)
        self._probe: ChangeProbe | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(poll_ms)
        self._timer.timeout.connect(self.poll)
        self._repaints_due = 0
        canvas.mapCanvasRefreshed.connect(self._rendered)

    # --- opening and closing ---------------------------------------------------------------

    def open(self, path: str, user: str | None = None) -> Project | None:
        """Open a project file and load its layers; None (and a message) if it cannot be."""
        try:
            project = Project.open(path, user or settings.user_name())
        except (DLStudioError, sqlite3.Error) as exc:
            self.report(str(exc), CRITICAL)
            return None
        self.close()
        self.project = project
        for warning in project.warnings:
            self.report(warning, WARNING)
        info = project.info()
        _group, self.units_layer, self.samples_layer = project_layers.load_project_layers(
            project.path, info.name, project.classes(), info.sample_geometry == "POINT",
            info.imagery.source, self.qgs_project,
        )  # fmt: skip
        self._probe = ChangeProbe(project.path)
        self._timer.start()
        self.zoom_to(rectangle(*info.imagery.extent), buffer=0.05)
        self.opened.emit()
        self.changed.emit()
        return project

    def close(self) -> None:
        if self.project is None:
            return
        self._timer.stop()
        if self._probe is not None:
            self._probe.close()
            self._probe = None
        project_layers.remove_project_layers(self.project.path, self.qgs_project)
        self.project = None
        self.units_layer = self.samples_layer = None
        self.current_unit = None
        self.closed.emit()

    # --- acting through the core -----------------------------------------------------------

    def act(self, fn: Callable, *args, success: str = "", **kwargs):
        """Call a core method and refresh; its result (True if it returns nothing), or None
        when the core refused, with the reason reported."""
        try:
            result = fn(*args, **kwargs)
        except (DLStudioError, sqlite3.Error) as exc:
            self.report(str(exc), CRITICAL)
            return None
        finally:
            self.refresh()
        if success:
            self.report(success, INFO)
        return True if result is None else result

    def report(self, text: str, level: int = INFO) -> None:
        self.last_message = (text, level)
        if self.iface is not None:
            bar = self.iface.messageBar()
            levels = {INFO: bar.pushInfo, WARNING: bar.pushWarning, CRITICAL: bar.pushCritical}
            levels[level]("Deep Learning Studio", text)
        self.message.emit(text, level)

    # --- watching ---------------------------------------------------------------------------

    def refresh(self) -> None:
        """Reload the layers and tell the docks to re-read the project."""
        if self.project is None:
            return
        if self._probe is not None:
            self._probe.changed()  # our own change: no second refresh from the poll
        for layer in self.layers():
            layer.dataProvider().reloadData()
            layer.triggerRepaint()
        # QGIS 3.22: a render job under way (or cancelled) that drew a layer before the change
        # still caches that image when it ends, after our repaint request invalidated the
        # cache, so a later render shows the old shapes. Draw the layers afresh at the next
        # renders too.
        self._repaints_due = REPAINTS_AFTER_CHANGE
        self.changed.emit()

    def _rendered(self) -> None:
        if self._repaints_due > 0:
            self._repaints_due -= 1
            for layer in self.layers():
                layer.triggerRepaint()

    def layers(self) -> list:
        """The project's layers still loaded (the user may have removed them)."""
        if self.units_layer is not None and sip.isdeleted(self.units_layer):
            self.units_layer = None
        if self.samples_layer is not None and sip.isdeleted(self.samples_layer):
            self.samples_layer = None
        return [lyr for lyr in (self.units_layer, self.samples_layer) if lyr is not None]

    def poll(self) -> bool:
        """Refresh when the file changed since the last look (any process); True if it did."""
        if self._probe is None or not self._probe.changed():
            return False
        self.refresh()
        return True

    # --- who, and what they may do ---------------------------------------------------------

    def role(self) -> Role | None:
        return None if self.project is None else self.project.role_of()

    def abilities(self) -> dict[str, Ability]:
        if self.project is None:
            return no_project()
        info = self.project.info()
        registry = QgsApplication.processingRegistry()
        algs = {a.id() for a in registry.algorithms()}
        return abilities(self.project.user, self.role(), info.status,
                         info.inference_tool.value, algs)  # fmt: skip

    def set_current_unit(self, fid: int | None) -> None:
        self.current_unit = fid
        self.current_unit_changed.emit(-1 if fid is None else int(fid))

    # --- geometry between the map and the project ------------------------------------------

    def _transform(self, to_project: bool) -> QgsCoordinateTransform:
        crs = project_crs(self.project)
        canvas_crs = self.canvas.mapSettings().destinationCrs()
        src, dst = (canvas_crs, crs) if to_project else (crs, canvas_crs)
        return QgsCoordinateTransform(src, dst, self.qgs_project.transformContext())

    def to_project(self, geometry: QgsGeometry, rectangle: bool = False) -> list[Geometry]:
        """A geometry drawn on the map as core geometries in the project CRS.

        A rectangle stays an axis-aligned rectangle: its bounding box in the project CRS.
        """
        geom = QgsGeometry(geometry)
        transform = self._transform(True)
        if not transform.isShortCircuited():
            if rectangle:
                geom = QgsGeometry.fromRect(transform.transformBoundingBox(geom.boundingBox()))
            else:
                geom.transform(transform)
        return to_core(geom)

    def to_map(self, geometry: Geometry) -> QgsGeometry:
        geom = QgsGeometry()
        geom.fromWkb(to_wkb(geometry))
        if not self._transform(False).isShortCircuited():
            geom.transform(self._transform(False))
        return geom

    def zoom_to(self, geometry: Geometry, buffer: float = 0.25) -> None:
        self.zoom_to_extent(self.to_map(geometry).boundingBox(), buffer)

    def zoom_to_extent(self, box: QgsRectangle, buffer: float = 0.25) -> None:
        if box.isNull():
            return
        box = QgsRectangle(box)
        if box.width() == 0 and box.height() == 0:  # a point sample
            size = max(self.canvas.extent().width() / 20.0, 1e-9)
            box = QgsRectangle(box.xMinimum() - size, box.yMinimum() - size,
                               box.xMaximum() + size, box.yMaximum() + size)  # fmt: skip
        box.grow(max(box.width(), box.height()) * buffer)
        self.canvas.setExtent(box)
        self.canvas.refresh()
