"""Small Qt pieces the docks share: ability-driven enabling, the work unit table model, the
history dialog."""

from __future__ import annotations

from qgis.PyQt.QtCore import QAbstractTableModel, Qt
from qgis.PyQt.QtGui import QColor
from qgis.PyQt.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..core.model import HistoryEntry
from .abilities import Ability
from .figures import UNIT_COLORS, UNIT_COLUMNS, UnitRow

DISPLAY = Qt.ItemDataRole.DisplayRole
USER = Qt.ItemDataRole.UserRole
DECORATION = Qt.ItemDataRole.DecorationRole
ALIGN = Qt.ItemDataRole.TextAlignmentRole


def set_ability(widget: QWidget, ability: Ability, tip: str = "") -> None:
    """Enable `widget` when the ability allows it; else disable it and say why."""
    if widget.property("dls_tip") is None:
        widget.setProperty("dls_tip", tip or widget.toolTip())
    widget.setEnabled(ability.allowed)
    widget.setToolTip(widget.property("dls_tip") if ability.allowed else ability.reason)


class UnitTableModel(QAbstractTableModel):
    """The work unit rows (figures.UnitRow) for a QTableView."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.rows: list[UnitRow] = []

    def set_rows(self, rows: list[UnitRow]) -> None:
        self.beginResetModel()
        self.rows = list(rows)
        self.endResetModel()

    def rowCount(self, parent=None) -> int:  # noqa: N802 - Qt's name
        return 0 if parent is not None and parent.isValid() else len(self.rows)

    def columnCount(self, parent=None) -> int:  # noqa: N802
        return 0 if parent is not None and parent.isValid() else len(UNIT_COLUMNS)

    def data(self, index, role=DISPLAY):
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        if role == DISPLAY:
            return str(row.cells()[index.column()])
        if role == USER:
            return row.fid
        if role == DECORATION and index.column() == 2:
            return QColor(UNIT_COLORS[row.status.value])
        if role == ALIGN and index.column() in (0, 4, 5, 6):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def headerData(self, section, orientation, role=DISPLAY):  # noqa: N802
        if role == DISPLAY and orientation == Qt.Orientation.Horizontal:
            return UNIT_COLUMNS[section]
        return None

    def fid(self, row: int) -> int:
        return self.rows[row].fid


class HistoryDialog(QDialog):
    """A work unit's audit history (who, when, from, to, comment)."""

    COLUMNS = ("When", "Who", "Action", "From", "To", "Comment")

    def __init__(self, title: str, entries: list[HistoryEntry], parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.resize(640, 320)
        self.table = QTableWidget(len(entries), len(self.COLUMNS), self)
        self.table.setHorizontalHeaderLabels(self.COLUMNS)
        for r, h in enumerate(entries):
            values = (h.at[:19].replace("T", " "), h.user, h.action, h.from_status or "",
                      h.to_status or "", h.comment or "")  # fmt: skip
            for c, value in enumerate(values):
                self.table.setItem(r, c, QTableWidgetItem(value))
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(buttons)
