"""The project's layers in QGIS: a group with the work units and samples (read-only OGR layers
of the project file) and the imagery, styled by status and class.

Work units: coloured by status, labelled with their name, status and assignee. Samples: filled
with their class colour; Pending approval has a dashed outline, Approved a solid one, Rejected
a red outline and a red cross.
"""

from __future__ import annotations

from pathlib import Path

from qgis.core import (
    Qgis,
    QgsCategorizedSymbolRenderer,
    QgsCentroidFillSymbolLayer,
    QgsFillSymbol,
    QgsLayerTreeGroup,
    QgsMarkerSymbol,
    QgsPalLayerSettings,
    QgsProject,
    QgsRasterLayer,
    QgsRendererCategory,
    QgsRuleBasedRenderer,
    QgsSimpleFillSymbolLayer,
    QgsSimpleMarkerSymbolLayer,
    QgsSimpleMarkerSymbolLayerBase,
    QgsTextBufferSettings,
    QgsTextFormat,
    QgsVectorLayer,
    QgsVectorLayerSimpleLabeling,
)
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QColor

from ..core import ProjectClass, SampleStatus, WorkUnitStatus
from ..processing.base import _enum
from .figures import UNIT_COLORS

REJECTED_COLOR = "#d62728"
SHAPE_CIRCLE = _enum((Qgis, "MarkerShape", "Circle"), (QgsSimpleMarkerSymbolLayerBase, "Circle"))
SHAPE_CROSS = _enum((Qgis, "MarkerShape", "Cross2"), (QgsSimpleMarkerSymbolLayerBase, "Cross2"))
GROUP_PREFIX = "Deep Learning Studio: "


def open_layer(path: str | Path, table: str, name: str) -> QgsVectorLayer:
    """A read-only OGR layer of one of the project's tables: all writes go through the core."""
    layer = QgsVectorLayer(f"{path}|layername={table}", name, "ogr")
    layer.setReadOnly(True)
    layer.setCustomProperty("dlstudio/table", table)
    layer.setCustomProperty("dlstudio/project", str(path))
    return layer


def style_work_units(layer: QgsVectorLayer) -> None:
    categories = []
    for status in WorkUnitStatus:
        color = QColor(UNIT_COLORS[status.value])
        fill = QColor(color)
        fill.setAlpha(35)
        symbol = QgsFillSymbol.createSimple({})
        sl = symbol.symbolLayer(0)
        sl.setFillColor(fill)
        sl.setStrokeColor(color)
        sl.setStrokeWidth(0.8)
        categories.append(QgsRendererCategory(status.value, symbol, status.label))
    layer.setRenderer(QgsCategorizedSymbolRenderer("status", categories))
    settings = QgsPalLayerSettings()
    settings.isExpression = True
    settings.fieldName = (
        "concat(coalesce(\"name\", 'unit ' || \"fid\"), '\\n', "
        "replace(\"status\", '_', ' '), if(\"assignee\" IS NULL, '', ' · ' || \"assignee\"))"
    )
    fmt = QgsTextFormat()
    fmt.setSize(8)
    buffer = QgsTextBufferSettings()
    buffer.setEnabled(True)
    buffer.setSize(0.8)
    fmt.setBuffer(buffer)
    settings.setFormat(fmt)
    layer.setLabeling(QgsVectorLayerSimpleLabeling(settings))
    layer.setLabelsEnabled(True)


def _symbol(kind, symbol_layers):
    """A symbol of these layers. (PyQGIS 3.22's list constructor does not take ownership of
    the layers, so Python would delete them too: build it with the transferring setters.)"""
    symbol = kind.createSimple({})
    symbol.changeSymbolLayer(0, symbol_layers[0])
    for sl in symbol_layers[1:]:
        symbol.appendSymbolLayer(sl)
    return symbol


def _polygon_symbol(color: QColor, status: SampleStatus) -> QgsFillSymbol:
    fill = QColor(color)
    fill.setAlpha({"pending": 70, "approved": 110, "rejected": 30}[status.value])
    base = QgsSimpleFillSymbolLayer(fill)
    base.setStrokeColor(QColor(REJECTED_COLOR) if status is SampleStatus.REJECTED else color)
    base.setStrokeWidth(0.7)
    if status is SampleStatus.PENDING:
        base.setStrokeStyle(Qt.PenStyle.DashLine)
    symbol = _symbol(QgsFillSymbol, [base])
    if status is SampleStatus.REJECTED:
        cross = QgsSimpleMarkerSymbolLayer(SHAPE_CROSS, 4.0)
        cross.setStrokeColor(QColor(REJECTED_COLOR))
        cross.setStrokeWidth(0.6)
        centroid = QgsCentroidFillSymbolLayer()
        centroid.setSubSymbol(_symbol(QgsMarkerSymbol, [cross]))
        symbol.appendSymbolLayer(centroid)
    return symbol


def _point_symbol(color: QColor, status: SampleStatus) -> QgsMarkerSymbol:
    dot = QgsSimpleMarkerSymbolLayer(SHAPE_CIRCLE, 3.0)
    dot.setColor(color)
    dot.setStrokeColor(QColor("#000000" if status is SampleStatus.APPROVED else "#ffffff"))
    if status is SampleStatus.PENDING:
        dot.setStrokeStyle(Qt.PenStyle.DashLine)
    layers = [dot]
    if status is SampleStatus.REJECTED:
        cross = QgsSimpleMarkerSymbolLayer(SHAPE_CROSS, 4.5)
        cross.setStrokeColor(QColor(REJECTED_COLOR))
        cross.setStrokeWidth(0.6)
        layers.append(cross)
    return _symbol(QgsMarkerSymbol, layers)


def style_samples(layer: QgsVectorLayer, classes: list[ProjectClass], points: bool) -> None:
    """A rule per class, and under it a rule per sample status."""
    make = _point_symbol if points else _polygon_symbol
    renderer = QgsRuleBasedRenderer(make(QColor("#808080"), SampleStatus.PENDING))
    root = renderer.rootRule()
    root.removeChildAt(0)  # the default rule; an ELSE rule for other classes is added last
    for cls in classes:
        color = QColor(cls.color)
        parent = QgsRuleBasedRenderer.Rule(None, 0, 0, f'"class_value" = {cls.value}', cls.name)
        root.appendChild(parent)
        for status in SampleStatus:
            parent.appendChild(
                QgsRuleBasedRenderer.Rule(
                    make(color, status), 0, 0, f"\"status\" = '{status.value}'", status.label
                )
            )
    other = QgsRuleBasedRenderer.Rule(make(QColor("#808080"), SampleStatus.PENDING), 0, 0, "",
                                      "other class", "", True)  # fmt: skip
    root.appendChild(other)
    layer.setRenderer(renderer)


def load_project_layers(
    path: str | Path, name: str, classes: list[ProjectClass], points: bool,
    imagery: str | None = None, project: QgsProject | None = None,
) -> tuple[QgsLayerTreeGroup, QgsVectorLayer, QgsVectorLayer]:  # fmt: skip
    """Add (or replace) the project's group at the top of the layer tree."""
    project = project or QgsProject.instance()
    remove_project_layers(path, project)
    root = project.layerTreeRoot()
    group = root.insertGroup(0, f"{GROUP_PREFIX}{name}")
    group.setCustomProperty("dlstudio/project", str(path))
    samples = open_layer(path, "training_samples", "Training samples")
    units = open_layer(path, "work_units", "Work units")
    style_samples(samples, classes, points)
    style_work_units(units)
    for layer in (samples, units):
        project.addMapLayer(layer, False)
        group.addLayer(layer)
    if imagery and Path(imagery).exists():
        raster = QgsRasterLayer(imagery, "Imagery")
        if raster.isValid():
            raster.setCustomProperty("dlstudio/project", str(path))
            project.addMapLayer(raster, False)
            group.addLayer(raster)
    return group, units, samples


def remove_project_layers(path: str | Path, project: QgsProject | None = None) -> None:
    """Remove the groups and layers loaded for this project file."""
    project = project or QgsProject.instance()
    root = project.layerTreeRoot()
    for group in list(root.findGroups()):
        if group.customProperty("dlstudio/project") == str(path):
            ids = [lyr.layerId() for lyr in group.findLayers()]
            project.removeMapLayers(ids)
            root.removeChildNode(group)
