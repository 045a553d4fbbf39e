"""The collect dock: a class picker, the draw, select and edit-shape map tools, undo, Mark
unit complete, and a message line with the last outcome or refusal.

Samples are drawn in the shape the project's inference tool needs (rectangles for Detect
Objects, polygons for Classify Pixels, points or polygons for Classify Objects). The first
sample drawn in a Queued unit makes it In progress (the core does that). What is done to a
selected sample (delete, class, shape) is in sampleedits.py; the Edit shape tool in
edittool.py.
"""

from __future__ import annotations

from qgis.core import QgsGeometry
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

from ..processing.base import project_crs
from .commands import AddSample
from .edittool import DELETE_KEYS, SampleEditTool
from .maptools import POINT, POLYGON, RECTANGLE, SampleDrawTool, SamplePickTool, shape_for
from .sampleedits import SampleEditsMixin
from .session import CRITICAL, INFO, WARNING, ProjectSession
from .widgets import set_ability

OBJECT_NAME = "DeepLearningStudioCollectDock"
CTRL = Qt.KeyboardModifier.ControlModifier
SHIFT = Qt.KeyboardModifier.ShiftModifier


HINTS = {
    RECTANGLE: "Rectangles: press, drag, release. Edit shape: drag a corner or the rectangle.",
    POINT: "Points: click. Edit shape: drag the point.",
    POLYGON: "Polygons: click the vertices; right-click or double-click to finish, Backspace "
    "removes a vertex, Esc cancels. Edit shape: drag a vertex or the polygon, double-click an "
    "edge to add a vertex, Delete over a vertex removes it.",
}
LEVEL_COLORS = {INFO: "#1a7f37", WARNING: "#9a6700", CRITICAL: "#cf222e"}


class CollectDock(SampleEditsMixin, QDockWidget):
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
        self.edit_tool = SampleEditTool(self.canvas)
        self.tools = (self.draw_tool, self.pick_tool, self.edit_tool)

        self.class_combo = QComboBox()
        self.class_combo.setToolTip("The class of the samples you draw (keys 1-9 on the map).")
        self.draw_button = QPushButton("Draw samples")
        self.draw_button.setCheckable(True)
        self.draw_button.setToolTip("Draw samples on the map.")
        self.pick_button = QPushButton("Select sample")
        self.pick_button.setCheckable(True)
        self.pick_button.setToolTip("Click one of your samples to delete it or change its class.")
        self.edit_button = QPushButton("Edit shape")
        self.edit_button.setCheckable(True)
        self.edit_button.setToolTip(
            "Click one of your samples, then drag a vertex or the whole shape; double-click an "
            "edge to add a vertex, Delete over a vertex removes it, Esc cancels a drag."
        )
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
        self.message = QLabel("")
        self.message.setWordWrap(True)

        classes_row = QHBoxLayout()
        classes_row.addWidget(QLabel("Class"))
        classes_row.addWidget(self.class_combo, 1)
        tools_row = QHBoxLayout()
        tools_row.addWidget(self.draw_button)
        tools_row.addWidget(self.pick_button)
        tools_row.addWidget(self.edit_button)
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
        layout.addWidget(self.message)
        layout.addStretch(1)
        self.setWidget(body)

        self.draw_button.toggled.connect(self._toggle_draw)
        self.pick_button.toggled.connect(self._toggle_pick)
        self.edit_button.toggled.connect(self._toggle_edit)
        self.delete_button.clicked.connect(self.delete_selected)
        self.reclass_button.clicked.connect(self.reclass_selected)
        self.undo_button.clicked.connect(self.undo_stack.undo)
        self.redo_button.clicked.connect(self.undo_stack.redo)
        self.complete_button.clicked.connect(self.mark_complete)
        self.undo_stack.indexChanged.connect(self._update_undo)
        for tool in self.tools:
            tool.class_key.connect(self.pick_class_key)
            tool.undo_requested.connect(self.undo_stack.undo)
            tool.redo_requested.connect(self.undo_stack.redo)
        self.draw_tool.drawn.connect(self.add_drawn)
        self.pick_tool.picked.connect(self.pick_at)
        self.edit_tool.picked.connect(self.pick_at)
        self.edit_tool.edited.connect(self.commit_shape)
        self.edit_tool.refused.connect(lambda text: session.report(text, WARNING))
        self.canvas.mapToolSet.connect(self._tool_changed)
        self.canvas.installEventFilter(self)
        session.opened.connect(self._project_opened)
        session.closed.connect(self._project_closed)
        session.changed.connect(self.update_state)
        session.changed.connect(self._selection_changed_on_file)
        session.message.connect(self._show_message)
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
        self.edit_tool.set_project(project_crs(project), shape)
        self.hint.setText(HINTS.get(shape, HINTS[POLYGON]) + " Keys 1-9 pick the class, "
                          "Ctrl+Z undoes.")  # fmt: skip
        self.undo_stack.clear()
        self.selected = None
        self.message.setText("")

    def _project_closed(self) -> None:
        for button in (self.draw_button, self.pick_button, self.edit_button):
            button.setChecked(False)
        self.edit_tool.clear()
        self.undo_stack.clear()
        self.class_combo.clear()
        self.classes, self.selected = [], None
        self.update_state()

    def update_state(self) -> None:
        can = self.session.abilities()
        for w in (self.draw_button, self.pick_button, self.edit_button, self.delete_button,
                  self.reclass_button, self.complete_button):  # fmt: skip
            set_ability(w, can["collect"])
        if not can["collect"].allowed:
            for button in (self.draw_button, self.pick_button, self.edit_button):
                button.setChecked(False)
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

    def _toggle(self, tool, on: bool) -> None:
        if on:
            self.canvas.setMapTool(tool)  # _tool_changed unchecks the other buttons
        elif self.canvas.mapTool() is tool:
            self.canvas.unsetMapTool(tool)

    def _toggle_draw(self, on: bool) -> None:
        self._toggle(self.draw_tool, on)

    def _toggle_pick(self, on: bool) -> None:
        self._toggle(self.pick_tool, on)

    def _toggle_edit(self, on: bool) -> None:
        self._toggle(self.edit_tool, on)
        if on:
            self._show_in_edit_tool()  # the sample already selected, if any

    def _tool_changed(self, new, *_old) -> None:
        self.draw_button.setChecked(new is self.draw_tool)
        self.pick_button.setChecked(new is self.pick_tool)
        self.edit_button.setChecked(new is self.edit_tool)
        self._highlight()

    def _show_message(self, text: str, level: int) -> None:
        color = LEVEL_COLORS.get(level, LEVEL_COLORS[INFO])
        self.message.setText(text)
        self.message.setStyleSheet(f"color: {color};")

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
            and tool in self.tools
            and event.type() == QEvent.Type.ShortcutOverride
            and (_is_undo_redo(event) or (tool is self.edit_tool and event.key() in DELETE_KEYS))
        ):
            event.accept()  # the key goes to the map tool, not to QGIS's own Undo or Delete
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
        for tool in self.tools:
            if self.canvas.mapTool() is tool:
                self.canvas.unsetMapTool(tool)
        self.draw_tool.band.reset()
        self.edit_tool.release()


def _is_undo_redo(event) -> bool:
    return (
        event.matches(QKeySequence.StandardKey.Undo)
        or event.matches(QKeySequence.StandardKey.Redo)
        or (event.key() == Qt.Key.Key_Z and bool(event.modifiers() & CTRL))
    )
