"""The work unit tracker: a filterable table, Start next, batch status changes, history."""

from __future__ import annotations

from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from ..core import WorkUnitStatus
from .figures import ALL, assignees, filter_rows, unit_rows
from .session import WARNING, ProjectSession
from .widgets import HistoryDialog, UnitTableModel, set_ability

W = WorkUnitStatus


class UnitsPanel(QWidget):
    def __init__(self, session: ProjectSession, parent=None) -> None:
        super().__init__(parent)
        self.session = session
        self.all_rows = []
        self.history_dialog = None

        self.status_filter = QComboBox()
        self.status_filter.addItem("All statuses", ALL)
        for s in W:
            self.status_filter.addItem(s.label, s.value)
        self.assignee_filter = QComboBox()
        self.assignee_filter.addItem("Anyone", ALL)
        self.count_label = QLabel()
        filters = QHBoxLayout()
        filters.addWidget(self.status_filter)
        filters.addWidget(self.assignee_filter)
        filters.addWidget(self.count_label, 1)

        self.model = UnitTableModel(self)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)

        self.start_next = QPushButton("Start next")
        self.start_next.setToolTip("Assign yourself the next Queued work unit and zoom to it.")
        self.history = QPushButton("History…")
        self.history.setToolTip("The audit history of the selected work unit.")
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_next)
        buttons.addWidget(self.history)
        buttons.addStretch(1)

        self.batch_status = QComboBox()
        for s in W:
            self.batch_status.addItem(s.label, s.value)
        self.batch_comment = QLineEdit()
        self.batch_comment.setPlaceholderText("Comment (kept in the history)")
        self.set_status = QPushButton("Set status")
        self.set_status.setToolTip("Set the status of the selected work units, with the comment.")
        batch = QHBoxLayout()
        batch.addWidget(self.batch_status)
        batch.addWidget(self.batch_comment, 1)
        batch.addWidget(self.set_status)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(filters)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        layout.addLayout(batch)

        self.status_filter.currentIndexChanged.connect(self.apply_filters)
        self.assignee_filter.currentIndexChanged.connect(self.apply_filters)
        self.table.doubleClicked.connect(self._double_clicked)
        self.table.selectionModel().selectionChanged.connect(self._update_buttons)
        self.start_next.clicked.connect(self.take_next)
        self.history.clicked.connect(self.show_history)
        self.set_status.clicked.connect(self.apply_status)
        session.changed.connect(self.reload)
        session.closed.connect(self.reload)

    # --- data ------------------------------------------------------------------------------

    def reload(self) -> None:
        project = self.session.project
        self.all_rows = unit_rows(project) if project is not None else []
        keep = self.assignee_filter.currentData()
        self.assignee_filter.blockSignals(True)
        self.assignee_filter.clear()
        self.assignee_filter.addItem("Anyone", ALL)
        self.assignee_filter.addItem("Nobody", "-")
        for name in assignees(self.all_rows):
            self.assignee_filter.addItem(name, name)
        i = self.assignee_filter.findData(keep)
        self.assignee_filter.setCurrentIndex(max(i, 0))
        self.assignee_filter.blockSignals(False)
        self.apply_filters()

    def apply_filters(self) -> None:
        selected = set(self.selected_ids())
        rows = filter_rows(self.all_rows, self.status_filter.currentData() or ALL,
                           self.assignee_filter.currentData() or ALL)  # fmt: skip
        self.model.set_rows(rows)
        self.count_label.setText(f"{len(rows)} of {len(self.all_rows)} work units")
        selection = self.table.selectionModel()
        for r, row in enumerate(rows):
            if row.fid in selected:
                selection.select(
                    self.model.index(r, 0),
                    selection.SelectionFlag.Select | selection.SelectionFlag.Rows,
                )
        self._update_buttons()

    def selected_ids(self) -> list[int]:
        rows = sorted({i.row() for i in self.table.selectionModel().selectedRows()})
        return [self.model.fid(r) for r in rows if r < len(self.model.rows)]

    def select_ids(self, ids) -> None:
        ids = set(ids)
        self.table.clearSelection()
        selection = self.table.selectionModel()
        for r, row in enumerate(self.model.rows):
            if row.fid in ids:
                selection.select(
                    self.model.index(r, 0),
                    selection.SelectionFlag.Select | selection.SelectionFlag.Rows,
                )

    def _update_buttons(self, *_args) -> None:
        can = self.session.abilities()
        set_ability(self.start_next, can["collect"])
        set_ability(self.set_status, can["set_status"])
        self.batch_status.setEnabled(can["set_status"].allowed)
        self.batch_comment.setEnabled(can["set_status"].allowed)
        self.history.setEnabled(self.session.project is not None and len(self.selected_ids()) == 1)

    # --- actions ---------------------------------------------------------------------------

    def zoom_to_unit(self, fid: int) -> None:
        unit = self.session.project.work_unit(fid)
        self.session.zoom_to(unit.geometry, buffer=0.05)
        self.session.set_current_unit(fid)

    def _double_clicked(self, index) -> None:
        if index.isValid() and self.session.project is not None:
            self.zoom_to_unit(self.model.fid(index.row()))

    def take_next(self) -> None:
        unit = self.session.act(self.session.project.start_next_unit)
        if unit is None:  # refused; the reason was reported
            return
        if unit is True:  # the core found none
            self.session.report("No Queued work unit is free for you.", WARNING)
            return
        self.zoom_to_unit(unit.fid)
        self.select_ids([unit.fid])
        self.session.report(f"Work unit {unit.name or unit.fid} is yours for now.")

    def apply_status(self) -> None:
        ids = self.selected_ids()
        if not ids:
            self.session.report("Select the work units to change first.", WARNING)
            return
        status = self.batch_status.currentData()
        comment = self.batch_comment.text().strip()
        changed = self.session.act(self.session.project.set_work_unit_status, ids, status,
                                   comment)  # fmt: skip
        if changed is not None:
            self.session.report(
                f"{len(changed)} of {len(ids)} work units set to {W(status).label}."
            )
            self.batch_comment.clear()
            self.select_ids(ids)

    def show_history(self) -> None:
        ids = self.selected_ids()
        if len(ids) != 1:
            return
        entries = self.session.project.history("work_unit", ids[0])
        self.history_dialog = HistoryDialog(f"History of work unit {ids[0]}", entries, self)
        self.history_dialog.setWindowModality(Qt.WindowModality.NonModal)
        self.history_dialog.show()
