"""The collect dock: a class picker, the draw and pick map tools, undo, Mark unit complete.

Samples are drawn in the shape the project's inference tool needs (rectangles for Detect
Objects, polygons for Classify Pixels, points or polygons for Classify Objects). The first
sample drawn in a Queued unit makes it In progress (the core does that).
"""

from __future__ import annotations

from qgis.core import QgsFeatureRequest, QgsGeometry, QgsPointXY, QgsRectangle
from qgis.PyQt.QtCore import QEvent, Qt
from qgis.PyQt.QtGui import QColor, QIcon, QKeySequence, QPixmap
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QDockWidget,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

try:  # Qt6 (QGIS 4) has the undo framework in QtGui; Qt5 in QtWidgets
    from qgis.PyQt.QtGui import QUndoStack
except ImportError:  # pragma: no cover - depends on the Qt version
    from qgis.PyQt.QtWidgets import QUndoStack

from ..core import SampleStatus
from ..processing.base import GEOM_POINT
from .commands import AddSample, ChangeClass, DeleteSample
from .maptools import POINT, RECTANGLE, SampleDrawTool, SamplePickTool, shape_for
from .session import WARNING, ProjectSession
from .widgets import set_ability

OBJECT_NAME = "DeepLearningStudioCollectDock"
CTRL = Qt.KeyboardModifier.ControlModifier
SHIFT = Qt.KeyboardModifier.ShiftModifier


class CollectDock(QDockWidget):
    def __init__(self, session: ProjectSession, parent=None) -> None:
        super().__init__("DLS Collect", parent)
        self.setObjectName(OBJECT_NAME)
        self.session = session
        self.canvas = session.canvas
        self.classes = []
        self.selected: int | None = None  # the picked sample's fid
        self.undo_stack = QUndoStack(self)
        self.draw_tool = SampleDrawTool(self.canvas)
        self.pick_tool = SamplePickTool(self.canvas)

        self.class_combo = QComboBox()
        self.class_combo.setToolTip("The class of the samples you draw (keys 1-9 on the map).")
        self.draw_button = QPushButton("Draw samples")
        self.draw_button.setCheckable(True)
        self.draw_button.setToolTip("Draw samples on the map.")
        self.pick_button = QPushButton("Select sample")
        self.pick_button.setCheckable(True)
        self.pick_button.setToolTip("Click one of your samples to delete it or change its class.")
        self.delete_button = QPushButton("Delete sample")
        self.reclass_button = QPushButton("Set to current class")
        self.undo_button = QPushButton("Undo")
        self.redo_button = QPushButton("Redo")
        self.complete_button = QPushButton("Mark unit complete")
        self.complete_button.setToolTip("Send the current work unit to Pending review.")
        self.unit_label = QLabel("No current work unit.")
        self.unit_label.setWordWrap(True)
        self.sample_label = QLabel("")
        self.sample_label.setWordWrap(True)
        self.hint = QLabel()
        self.hint.setWordWrap(True)

        classes_row = QHBoxLayout()
        classes_row.addWidget(QLabel("Class"))
        classes_row.addWidget(self.class_combo, 1)
        tools_row = QHBoxLayout()
        tools_row.addWidget(self.draw_button)
        tools_row.addWidget(self.pick_button)
        edit_row = QHBoxLayout()
        edit_row.addWidget(self.delete_button)
        edit_row.addWidget(self.reclass_button)
        undo_row = QHBoxLayout()
        undo_row.addWidget(self.undo_button)
        undo_row.addWidget(self.redo_button)
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.addLayout(classes_row)
        layout.addLayout(tools_row)
        layout.addWidget(self.hint)
        layout.addWidget(self.sample_label)
        layout.addLayout(edit_row)
        layout.addLayout(undo_row)
        layout.addWidget(self.unit_label)
        layout.addWidget(self.complete_button)
        layout.addStretch(1)
        self.setWidget(body)

        self.draw_button.toggled.connect(self._toggle_draw)
        self.pick_button.toggled.connect(self._toggle_pick)
        self.delete_button.clicked.connect(self.delete_selected)
        self.reclass_button.clicked.connect(self.reclass_selected)
        self.undo_button.clicked.connect(self.undo_stack.undo)
        self.redo_button.clicked.connect(self.undo_stack.redo)
        self.complete_button.clicked.connect(self.mark_complete)
        self.undo_stack.indexChanged.connect(self._update_undo)
        for tool in (self.draw_tool, self.pick_tool):
            tool.class_key.connect(self.pick_class_key)
            tool.undo_requested.connect(self.undo_stack.undo)
            tool.redo_requested.connect(self.undo_stack.redo)
        self.draw_tool.drawn.connect(self.add_drawn)
        self.pick_tool.picked.connect(self.pick_at)
        self.canvas.mapToolSet.connect(self._tool_changed)
        self.canvas.installEventFilter(self)
        session.opened.connect(self._project_opened)
        session.closed.connect(self._project_closed)
        session.changed.connect(self.update_state)
        session.current_unit_changed.connect(lambda _fid: self.update_state())
        self.update_state()

    # --- project ---------------------------------------------------------------------------

    def _project_opened(self) -> None:
        project = self.session.project
        info = project.info()
        self.classes = project.classes()
        self.class_combo.clear()
        for i, cls in enumerate(self.classes):
            pix = QPixmap(12, 12)
            pix.fill(QColor(cls.color))
            key = f"  [{i + 1}]" if i < 9 else ""
            self.class_combo.addItem(QIcon(pix), f"{cls.name} ({cls.value}){key}", cls.value)
        shape = shape_for(info.inference_tool.value, info.sample_geometry)
        self.draw_tool.set_shape(shape)
        self.hint.setText({
            RECTANGLE: "Rectangles: press, drag, release.",
            POINT: "Points: click.",
        }.get(shape, "Polygons: click the vertices; right-click or double-click to finish, "
                     "Backspace removes a vertex, Esc cancels.")
            + " Keys 1-9 pick the class, Ctrl+Z undoes.")  # fmt: skip
        self.undo_stack.clear()
        self.selected = None

    def _project_closed(self) -> None:
        self.draw_button.setChecked(False)
        self.pick_button.setChecked(False)
        self.undo_stack.clear()
        self.class_combo.clear()
        self.classes, self.selected = [], None
        self.update_state()

    def update_state(self) -> None:
        can = self.session.abilities()
        for w in (self.draw_button, self.pick_button, self.delete_button, self.reclass_button,
                  self.complete_button):  # fmt: skip
            set_ability(w, can["collect"])
        if not can["collect"].allowed:
            self.draw_button.setChecked(False)
            self.pick_button.setChecked(False)
        has_sample = self.selected is not None
        if can["collect"].allowed:
            self.delete_button.setEnabled(has_sample)
            self.reclass_button.setEnabled(has_sample)
            self.complete_button.setEnabled(self.session.current_unit is not None)
        self.class_combo.setEnabled(bool(self.classes))
        unit = self.session.current_unit
        if unit is not None and self.session.project is not None:
            try:
                u = self.session.project.work_unit(unit)
                self.unit_label.setText(f"Current work unit: <b>{u.name or u.fid}</b> "
                                        f"({u.status.label}).")  # fmt: skip
            except Exception:  # deleted meanwhile
                self.unit_label.setText("No current work unit.")
        else:
            self.unit_label.setText("No current work unit.")
        self._update_undo()

    def _update_undo(self, *_args) -> None:
        self.undo_button.setEnabled(self.undo_stack.canUndo())
        self.redo_button.setEnabled(self.undo_stack.canRedo())
        self.undo_button.setToolTip(self.undo_stack.undoText() or "Nothing to undo")
        self.redo_button.setToolTip(self.undo_stack.redoText() or "Nothing to redo")

    # --- tools -----------------------------------------------------------------------------

    def _toggle_draw(self, on: bool) -> None:
        if on:
            self.pick_button.setChecked(False)
            self.canvas.setMapTool(self.draw_tool)
        elif self.canvas.mapTool() is self.draw_tool:
            self.canvas.unsetMapTool(self.draw_tool)

    def _toggle_pick(self, on: bool) -> None:
        if on:
            self.draw_button.setChecked(False)
            self.canvas.setMapTool(self.pick_tool)
        elif self.canvas.mapTool() is self.pick_tool:
            self.canvas.unsetMapTool(self.pick_tool)

    def _tool_changed(self, new, *_old) -> None:
        self.draw_button.setChecked(new is self.draw_tool)
        self.pick_button.setChecked(new is self.pick_tool)

    def pick_class_key(self, number: int) -> None:
        if 1 <= number <= self.class_combo.count():
            self.class_combo.setCurrentIndex(number - 1)

    def current_class(self) -> int | None:
        return self.class_combo.currentData()

    def _class_name(self, value) -> str:
        return next((c.name for c in self.classes if c.value == value), str(value))

    # --- collecting ------------------------------------------------------------------------

    def add_drawn(self, geometry: QgsGeometry) -> int | None:
        """A shape drawn on the map (map CRS) becomes a sample of the current class."""
        project, value = self.session.project, self.current_class()
        if project is None or value is None:
            return None
        parts = self.session.to_project(geometry, rectangle=self.draw_tool.shape == RECTANGLE)
        if len(parts) != 1:
            self.session.report("Draw one simple shape at a time.", WARNING)
            return None
        fid = self.session.act(project.add_sample, parts[0], value)
        if fid is None:
            return None
        self.undo_stack.push(AddSample(self.session, fid, parts[0], value,
                                       self._class_name(value)))  # fmt: skip
        sample = project.samples(ids=[fid])[0]
        self.session.set_current_unit(sample.work_unit)
        return fid

    def pick_at(self, point: QgsPointXY, radius: float) -> int | None:
        """Select the sample at a map point (the topmost: the last collected)."""
        self.session.layers()  # forget layers the user removed
        layer = self.session.samples_layer
        if layer is None:
            self.session.report("The training samples layer was removed; reopen the project.",
                                WARNING)  # fmt: skip
            return None
        transform = self.session._transform(True)
        box = QgsRectangle(point.x() - radius, point.y() - radius,
                           point.x() + radius, point.y() + radius)  # fmt: skip
        if not transform.isShortCircuited():
            box = transform.transformBoundingBox(box)
            point = transform.transform(point)
        is_point = layer.geometryType() == GEOM_POINT
        hit = QgsGeometry.fromRect(box) if is_point else QgsGeometry.fromPointXY(point)
        found = [f.id() for f in layer.getFeatures(QgsFeatureRequest().setFilterRect(box))
                 if f.geometry().intersects(hit)]  # fmt: skip
        self.selected = max(found) if found else None
        layer.selectByIds([self.selected] if found else [])
        if self.selected is not None:
            s = self.session.project.samples(ids=[self.selected])[0]
            self.sample_label.setText(
                f"Sample {s.fid}: {self._class_name(s.class_value)}, {s.status.label}, by "
                f"{s.collected_by}."
                + (f" Review comment: {s.review_comment}" if s.review_comment else "")
            )
            self.session.set_current_unit(s.work_unit)
        else:
            self.sample_label.setText("No sample there.")
        self.update_state()
        return self.selected

    def delete_selected(self) -> bool:
        project, fid = self.session.project, self.selected
        if project is None or fid is None:
            return False
        s = project.samples(ids=[fid])
        if not s or self.session.act(project.delete_sample, fid) is None:
            return False
        self.undo_stack.push(DeleteSample(self.session, fid, s[0].geometry, s[0].class_value))
        self.selected = None
        self.sample_label.setText(f"Sample {fid} deleted.")
        self.update_state()
        return True

    def reclass_selected(self) -> bool:
        project, fid, value = self.session.project, self.selected, self.current_class()
        if project is None or fid is None or value is None:
            return False
        old = project.samples(ids=[fid])[0]
        if old.class_value == value:
            return False
        if self.session.act(project.edit_sample, fid, class_value=value) is None:
            return False
        self.undo_stack.push(ChangeClass(self.session, fid, old.class_value, value,
                                         self._class_name(value)))  # fmt: skip
        if old.status is not SampleStatus.PENDING:
            self.session.report(f"Sample {fid} is Pending approval again.")
        return True

    def mark_complete(self) -> bool:
        project, unit = self.session.project, self.session.current_unit
        if project is None or unit is None:
            return False
        done = self.session.act(project.mark_unit_complete, unit)
        if done is None:
            return False
        self.undo_stack.clear()  # the samples are under review now
        self.session.report(f"Work unit {unit} is Pending review.")
        return True

    # --- Ctrl+Z on the map while a collect tool is active ----------------------------------

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt's name
        tool = self.canvas.mapTool()
        if (
            obj is self.canvas
            and tool in (self.draw_tool, self.pick_tool)
            and event.type() == QEvent.Type.ShortcutOverride
            and _is_undo_redo(event)
        ):
            event.accept()  # the key goes to the map tool, not to QGIS's own Undo
            return True
        return False

    def event(self, e) -> bool:
        """Ctrl+Z / Ctrl+Shift+Z in the dock undo and redo its sample edits."""
        if e.type() == QEvent.Type.ShortcutOverride and _is_undo_redo(e):
            e.accept()
            return True
        return super().event(e)

    def keyPressEvent(self, e) -> None:  # noqa: N802
        if e.matches(QKeySequence.StandardKey.Redo) or (
            e.key() == Qt.Key.Key_Z and e.modifiers() & CTRL and e.modifiers() & SHIFT
        ):
            self.undo_stack.redo()
        elif e.matches(QKeySequence.StandardKey.Undo):
            self.undo_stack.undo()
        else:
            super().keyPressEvent(e)

    def cleanup(self) -> None:
        self.canvas.removeEventFilter(self)
        for tool in (self.draw_tool, self.pick_tool):
            if self.canvas.mapTool() is tool:
                self.canvas.unsetMapTool(tool)
        self.draw_tool.band.reset()


def _is_undo_redo(event) -> bool:
    return (
        event.matches(QKeySequence.StandardKey.Undo)
        or event.matches(QKeySequence.StandardKey.Redo)
        or (event.key() == Qt.Key.Key_Z and bool(event.modifiers() & CTRL))
    )
