"""The New project wizard: imagery and inference tool, classes with colours, work units (whole
extent, a grid, or a polygon layer), members and roles, the file. Finishing creates the project
through the Processing algorithms (newproject.create_project) and opens it."""

from __future__ import annotations

from qgis.core import Qgis, QgsMapLayerProxyModel
from qgis.gui import QgsColorButton, QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt.QtGui import QColor
from qgis.PyQt.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWizard,
    QWizardPage,
)

from ..core import InferenceTool, ProjectClass
from ..core.model import PALETTE
from ..processing.base import _enum
from .newproject import ProjectSpec, create_project
from .session import ProjectSession

RASTERS = _enum((Qgis, "LayerFilter", "RasterLayer"), (QgsMapLayerProxyModel, "RasterLayer"))
POLYGONS = _enum((Qgis, "LayerFilter", "PolygonLayer"), (QgsMapLayerProxyModel, "PolygonLayer"))


class ProjectWizard(QWizard):
    def __init__(self, session: ProjectSession, parent=None) -> None:
        super().__init__(parent)
        self.session = session
        self.created: str | None = None
        self.setWindowTitle("New Deep Learning Studio project")

        # 1. imagery and tool
        p1 = QWizardPage()
        p1.setTitle("Imagery and inference tool")
        self.name = QLineEdit()
        self.raster_layer = QgsMapLayerComboBox()
        self.raster_layer.setFilters(RASTERS)
        self.raster_file = QgsFileWidget()
        self.raster_file.setFilter("Rasters (*.tif *.tiff *.vrt *.img *.jp2);;All files (*)")
        self.tool = QComboBox()
        for t in InferenceTool:
            self.tool.addItem(t.value.replace("_", " ").title(), t.value)
        self.geometry = QComboBox()
        self.geometry.addItems(["POLYGON", "POINT"])
        f1 = QFormLayout(p1)
        f1.addRow("Project name", self.name)
        f1.addRow("Imagery layer", self.raster_layer)
        f1.addRow("… or raster file", self.raster_file)
        f1.addRow("Inference tool", self.tool)
        f1.addRow("Sample geometry", self.geometry)
        self.tool.currentIndexChanged.connect(self._tool_changed)
        self._tool_changed()

        # 2. classes
        p2 = QWizardPage()
        p2.setTitle("Classes")
        p2.setSubTitle("Values are positive integers (0 is no data in exported labels).")
        self.classes = QTableWidget(0, 3)
        self.classes.setHorizontalHeaderLabels(["Value", "Name", "Colour"])
        add, remove = QPushButton("Add class"), QPushButton("Remove class")
        add.clicked.connect(lambda: self.add_class())
        remove.clicked.connect(lambda: self.classes.removeRow(self.classes.currentRow()))
        v2 = QVBoxLayout(p2)
        v2.addWidget(self.classes)
        row = QHBoxLayout()
        row.addWidget(add)
        row.addWidget(remove)
        row.addStretch(1)
        v2.addLayout(row)
        self.add_class("building")

        # 3. work units
        p3 = QWizardPage()
        p3.setTitle("Work units")
        self.whole = QRadioButton("The whole imagery extent is one work unit")
        self.grid = QRadioButton("A grid of square cells")
        self.by_layer = QRadioButton("The polygons of a layer")
        self.unit_choice = QButtonGroup(self)
        for b in (self.whole, self.grid, self.by_layer):
            self.unit_choice.addButton(b)
        self.grid.setChecked(True)
        self.cell = QDoubleSpinBox()
        self.cell.setRange(0.0, 1e9)
        self.cell.setDecimals(3)
        self.cell.setValue(256)
        self.cell_units = QComboBox()
        self.cell_units.addItem("pixels", "PIXELS")
        self.cell_units.addItem("map units", "MAP_UNITS")
        self.polygons = QgsMapLayerComboBox()
        self.polygons.setFilters(POLYGONS)
        f3 = QFormLayout(p3)
        f3.addRow(self.whole)
        f3.addRow(self.grid)
        cell_row = QHBoxLayout()
        cell_row.addWidget(self.cell)
        cell_row.addWidget(self.cell_units)
        f3.addRow("Cell size", cell_row)
        f3.addRow(self.by_layer)
        f3.addRow("Polygon layer", self.polygons)

        # 4. members and file
        p4 = QWizardPage()
        p4.setTitle("Members and file")
        p4.setSubTitle("You are the owner. Add analysts (review, train) and collectors.")
        self.members = QTableWidget(0, 2)
        self.members.setHorizontalHeaderLabels(["User name", "Role"])
        add_m, remove_m = QPushButton("Add member"), QPushButton("Remove member")
        add_m.clicked.connect(lambda: self.add_member())
        remove_m.clicked.connect(lambda: self.members.removeRow(self.members.currentRow()))
        self.output = QgsFileWidget()
        self.output.setStorageMode(QgsFileWidget.StorageMode.SaveFile)
        self.output.setFilter("GeoPackage (*.gpkg)")
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #b00020;")
        v4 = QVBoxLayout(p4)
        v4.addWidget(self.members)
        mrow = QHBoxLayout()
        mrow.addWidget(add_m)
        mrow.addWidget(remove_m)
        mrow.addStretch(1)
        v4.addLayout(mrow)
        v4.addWidget(QLabel("Project file"))
        v4.addWidget(self.output)
        v4.addWidget(self.error)

        for page in (p1, p2, p3, p4):
            self.addPage(page)

    # --- rows ------------------------------------------------------------------------------

    def add_class(self, name: str = "", value: int | None = None, color: str | None = None):
        r = self.classes.rowCount()
        self.classes.insertRow(r)
        value = value if value is not None else r + 1
        spin = QSpinBox()
        spin.setRange(1, 255)
        spin.setValue(value)
        self.classes.setCellWidget(r, 0, spin)
        self.classes.setItem(r, 1, QTableWidgetItem(name or f"class {value}"))
        button = QgsColorButton()
        button.setColor(QColor(color or PALETTE[r % len(PALETTE)]))
        self.classes.setCellWidget(r, 2, button)

    def add_member(self, user: str = "", role: str = "collector") -> None:
        r = self.members.rowCount()
        self.members.insertRow(r)
        self.members.setItem(r, 0, QTableWidgetItem(user))
        combo = QComboBox()
        combo.addItems(["collector", "analyst"])
        combo.setCurrentText(role)
        self.members.setCellWidget(r, 1, combo)

    def _tool_changed(self) -> None:
        objects = self.tool.currentData() == InferenceTool.CLASSIFY_OBJECTS.value
        self.geometry.setEnabled(objects)
        if not objects:
            self.geometry.setCurrentText("POLYGON")

    # --- result ----------------------------------------------------------------------------

    def spec(self) -> ProjectSpec:
        classes = []
        for r in range(self.classes.rowCount()):
            name = self.classes.item(r, 1)
            classes.append(ProjectClass(
                self.classes.cellWidget(r, 0).value(), name.text().strip() if name else "",
                self.classes.cellWidget(r, 2).color().name(),
            ))  # fmt: skip
        members = []
        for r in range(self.members.rowCount()):
            item = self.members.item(r, 0)
            members.append((item.text() if item else "", self.members.cellWidget(r, 1)
                            .currentText()))  # fmt: skip
        raster = self.raster_file.filePath().strip() or self.raster_layer.currentLayer()
        return ProjectSpec(
            name=self.name.text(), raster=raster, inference_tool=self.tool.currentData(),
            classes=classes, output=self.output.filePath().strip(),
            sample_geometry=self.geometry.currentText(),
            grid_size=self.cell.value() if self.grid.isChecked() else None,
            grid_units=self.cell_units.currentData(),
            polygons=self.polygons.currentLayer() if self.by_layer.isChecked() else None,
            members=members,
        )  # fmt: skip

    def accept(self) -> None:
        """Create and open the project; on failure stay open and say why."""
        spec = self.spec()
        try:
            path = create_project(spec)
        except Exception as exc:  # QgsProcessingException: the algorithms' own words
            self.error.setText(str(exc))
            self.session.report(f"The project was not created: {exc}", 2)
            return
        self.created = path
        self.session.open(path)
        super().accept()
