"""Inference outputs styled by class: the model's class colours and names.

Vector outputs get a categorized renderer on the class value field, the classified raster a
paletted renderer. They are applied when Processing loads the output (a post-processor kept
alive here: Processing holds only a pointer to it), a .qml is written beside a GeoTIFF so it
opens styled anywhere, and a GeoPackage output gets the style as its default.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsPalettedRasterRenderer,
    QgsProcessingLayerPostProcessorInterface,
    QgsProviderRegistry,
    QgsRasterLayer,
    QgsRendererCategory,
    QgsSymbol,
    QgsVectorLayer,
)
from qgis.PyQt.QtGui import QColor

from ..core.model import PALETTE
from .base import GEOM_POLYGON, tr

UNCLASSIFIED_COLOR = "#9e9e9e"


@dataclass(frozen=True)
class ClassStyle:
    value: int
    name: str
    color: str  # #rrggbb


def classes_of(emd: dict) -> list[ClassStyle]:
    """The .emd's Classes (Value, Name, Color as [r, g, b] or '#rrggbb'); a missing or odd
    colour takes one from the palette."""
    out = []
    for i, row in enumerate(emd.get("Classes") or []):
        try:
            value = int(row.get("Value"))
        except (TypeError, ValueError):
            continue
        name = str(row.get("Name", row.get("ClassName", value)))
        out.append(ClassStyle(value, name, _hex(row.get("Color"), i)))
    return out


def _hex(color, i: int) -> str:
    if isinstance(color, list | tuple) and len(color) >= 3:
        with contextlib.suppress(TypeError, ValueError):
            r, g, b = (max(0, min(255, int(c))) for c in color[:3])
            return f"#{r:02x}{g:02x}{b:02x}"
    if isinstance(color, str) and QColor(color).isValid():
        return QColor(color).name()
    return PALETTE[i % len(PALETTE)]


# --- renderers -----------------------------------------------------------------------------


def categorized_renderer(layer: QgsVectorLayer, classes, field: str):
    """One category per class on `field`, and a grey one for features with no class."""
    categories = []
    for c in classes:
        categories.append(QgsRendererCategory(c.value, _symbol(layer, c.color), c.name))
    categories.append(
        QgsRendererCategory(None, _symbol(layer, UNCLASSIFIED_COLOR), tr("not classified"))
    )
    return QgsCategorizedSymbolRenderer(field, categories)


def _symbol(layer: QgsVectorLayer, color: str) -> QgsSymbol:
    """The class colour; polygons as a strong outline over a light fill, so that the imagery
    under the objects shows."""
    symbol = QgsSymbol.defaultSymbol(layer.geometryType())
    symbol.setColor(QColor(color))
    if layer.geometryType() == GEOM_POLYGON:
        fill = QColor(color)
        fill.setAlpha(50)
        outline = symbol.symbolLayer(0)
        outline.setFillColor(fill)
        outline.setStrokeColor(QColor(color))
        outline.setStrokeWidth(0.6)
    return symbol


def paletted_renderer(layer: QgsRasterLayer, classes) -> QgsPalettedRasterRenderer:
    entries = [QgsPalettedRasterRenderer.Class(c.value, QColor(c.color), c.name) for c in classes]
    return QgsPalettedRasterRenderer(layer.dataProvider(), 1, entries)


def apply_style(layer, classes, field: str | None = None) -> None:
    """Style `layer` by class: paletted for a raster, categorized on `field` for a vector."""
    if isinstance(layer, QgsRasterLayer):
        layer.setRenderer(paletted_renderer(layer, classes))
    elif isinstance(layer, QgsVectorLayer) and field:
        layer.setRenderer(categorized_renderer(layer, classes, field))
    else:
        return
    layer.triggerRepaint()


class ClassStyler(QgsProcessingLayerPostProcessorInterface):
    """Styles an output by class when Processing loads it."""

    def __init__(self, classes, field: str | None = None) -> None:
        super().__init__()
        self.classes = list(classes)
        self.field = field

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 - the Qt name
        apply_style(layer, self.classes, self.field)


#: the post-processors in use, by output: Processing does not own them, so they live here
_STYLERS: dict[str, ClassStyler] = {}


def style_when_loaded(context, dest_id: str, classes, field: str | None = None) -> None:
    """Have the output `dest_id` styled by class when Processing loads it into a project."""
    if not context.willLoadLayerOnCompletion(dest_id):
        return
    styler = ClassStyler(classes, field)
    _STYLERS[dest_id] = styler
    context.layerToLoadOnCompletionDetails(dest_id).setPostProcessor(styler)


def write_qml(tif: Path, classes, feedback) -> Path | None:
    """A .qml beside the GeoTIFF (QGIS loads it as the raster's default style)."""
    layer = QgsRasterLayer(str(tif), tif.stem, "gdal")
    qml = tif.with_suffix(".qml")
    if layer.isValid():
        apply_style(layer, classes)
        message, ok = layer.saveNamedStyle(str(qml))
        if ok:
            return qml
        feedback.pushWarning(tr(f"Could not write the style {qml}: {message}"))
    return None


def store_default_style(dest_id: str, classes, field: str, feedback) -> None:
    """A GeoPackage output keeps its style as its default (it then opens styled anywhere)."""
    parts = QgsProviderRegistry.instance().decodeUri("ogr", dest_id)
    path = parts.get("path") or ""
    if not path.lower().endswith(".gpkg") or not Path(path).is_file():
        return
    layer = QgsVectorLayer(dest_id, "output", "ogr")
    if not layer.isValid():
        return
    apply_style(layer, classes, field)
    error = layer.saveStyleToDatabase("default", tr("Styled by class"), True, "")
    if error:
        feedback.pushWarning(tr(f"Could not store the style in {path}: {error}"))
