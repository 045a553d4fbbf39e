#!/usr/bin/env python3
"""The demo's QGIS project (demo.qgz) and its map pictures, written with PyQGIS, offscreen.

    /usr/bin/python3 scripts/demo_qgis.py DEMO_OUT

Reads what scripts/demo.sh left in DEMO_OUT and writes there:

- ``demo.qgz``: the imagery, the project's work units (by status) and training samples (by
  class and status), the detected buildings (by class), the classified land cover (paletted),
  the ground truth and the training / held-out areas, every layer styled with the plugin's own
  styling (ui/layers.py, processing/inferstyle.py) and stored with relative paths, so the
  folder can be moved: ``qgis DEMO_OUT/demo.qgz``;
- ``figures/``: PNG pictures rendered from those layers (the team's work units over the
  scene, the detections and the classified pixels over the imagery of the held-out area).

Run it with the Python QGIS runs on (Debian's /usr/bin/python3).
"""

from __future__ import annotations

import json
import os
import sys
import zipfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from qgis.core import (  # noqa: E402
    QgsApplication,
    QgsCategorizedSymbolRenderer,
    QgsCoordinateReferenceSystem,
    QgsFillSymbol,
    QgsLayerTreeGroup,
    QgsMapRendererParallelJob,
    QgsMapSettings,
    QgsPalLayerSettings,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsReferencedRectangle,
    QgsRendererCategory,
    QgsVectorLayer,
    QgsVectorLayerSimpleLabeling,
)
from qgis.PyQt.QtCore import QSize  # noqa: E402
from qgis.PyQt.QtGui import QColor  # noqa: E402

#: what the picture of a result shows at most, in pixels along its longer side
MAX_PICTURE = 1600
DETAIL = 384  # the detail picture: this many scene pixels per side, drawn at twice the size


def emd_of(package: Path) -> dict:
    """The model definition inside a .dlpk (read with zipfile: no torch here)."""
    with zipfile.ZipFile(package) as z:
        name = next(n for n in z.namelist() if n.endswith(".emd") and "/" not in n)
        return json.loads(z.read(name))


def outline_symbol(color: str, width: float = 0.5, dashed: bool = False) -> QgsFillSymbol:
    return QgsFillSymbol.createSimple(
        {"style": "no", "outline_color": color, "outline_width": str(width),
         "outline_style": "dash" if dashed else "solid"}
    )  # fmt: skip


class DemoProject:
    """The layers of the demo, added to a QgsProject in groups, styled."""

    def __init__(self, out: Path) -> None:
        from dlstudio_qgis.core import Project

        self.out = out
        self.qgs = QgsProject()
        self.split = json.loads((out / "reference" / "split.json").read_text())
        self.crs = QgsCoordinateReferenceSystem(self.split["crs"])
        self.qgs.setCrs(self.crs)
        self.team = Project.open(out / "project.gpkg", user="demo-reader")
        self.layers: dict[str, object] = {}

    def _add(self, key: str, layer, group: QgsLayerTreeGroup, visible: bool = True):
        if not layer.isValid():
            raise SystemExit(f"demo_qgis: cannot open {layer.source()} as a layer.")
        self.qgs.addMapLayer(layer, False)
        node = group.addLayer(layer)
        node.setItemVisibilityChecked(visible)
        self.layers[key] = layer
        return layer

    def build(self) -> None:
        from dlstudio_qgis.processing.inferstyle import apply_style, classes_of
        from dlstudio_qgis.ui.layers import load_project_layers

        out, root = self.out, self.qgs.layerTreeRoot()
        # the team's project: work units, samples and the imagery (as the plugin's dock loads it)
        group, units, samples = load_project_layers(
            str(out / "project.gpkg"), self.team.name, self.team.classes(), False,
            imagery=str(out / "scene.tif"), project=self.qgs,
        )  # fmt: skip
        self.layers.update(units=units, samples=samples)
        self.layers["imagery"] = next(
            n.layer() for n in group.findLayers() if isinstance(n.layer(), QgsRasterLayer)
        )

        results = root.insertGroup(0, "Results in the held-out area")
        detector = classes_of(emd_of(out / "models" / "buildings_ssd.dlpk"))
        detections = QgsVectorLayer(str(out / "results" / "detections.gpkg"), "Detected buildings")
        apply_style(self._add("detections", detections, results), detector, "class_value")

        truth = QgsVectorLayer(str(out / "buildings.geojson"), "Buildings (ground truth)")
        truth.setRenderer(
            QgsCategorizedSymbolRenderer(
                "class", [QgsRendererCategory(1, outline_symbol("#ffff33", 0.4, True), "building")]
            )
        )
        self._add("truth", truth, results)

        land_cover = classes_of(emd_of(out / "models" / "land_cover_unet.dlpk"))
        classified = QgsRasterLayer(str(out / "results" / "land_cover.tif"), "Land cover (UNET)")
        apply_style(self._add("classified", classified, results), land_cover)
        classified.renderer().setOpacity(0.6)

        reference = QgsVectorLayer(
            str(out / "reference" / "land_cover.geojson"), "Land cover (reference)"
        )
        apply_style(reference, land_cover, "class_value")
        self._add("reference", reference, results, visible=False)

        areas = QgsVectorLayer(str(out / "reference" / "areas.geojson"), "Training / held-out")
        areas.setRenderer(
            QgsCategorizedSymbolRenderer(
                "area",
                [
                    QgsRendererCategory("training", outline_symbol("#1f78b4", 0.9), "training"),
                    QgsRendererCategory("held-out", outline_symbol("#ff7f00", 0.9), "held-out"),
                ],
            )
        )
        labels = QgsPalLayerSettings()
        labels.fieldName = "area"
        areas.setLabeling(QgsVectorLayerSimpleLabeling(labels))
        areas.setLabelsEnabled(True)
        self._add("areas", areas, root)

        extent = QgsRectangle(*json.loads((out / "logs" / "00_synth-scene.jsonl").read_text()
                                          .strip().splitlines()[-1])["extent"])  # fmt: skip
        self.qgs.viewSettings().setDefaultViewExtent(QgsReferencedRectangle(extent, self.crs))
        self.qgs.setTitle(f"Deep Learning Studio demo: {self.team.name}")

    def write(self, path: Path) -> None:
        self.qgs.writeEntryBool("Paths", "/Absolute", False)
        if not self.qgs.write(str(path)):
            raise SystemExit(f"demo_qgis: could not write {path}: {self.qgs.error()}")

    # --- pictures ------------------------------------------------------------------------

    def render(self, keys: list[str], extent: QgsRectangle, path: Path, width: int) -> Path:
        settings = QgsMapSettings()
        settings.setLayers([self.layers[k] for k in keys])
        settings.setDestinationCrs(self.crs)
        height = max(1, round(width * extent.height() / extent.width()))
        settings.setOutputSize(QSize(width, height))
        settings.setExtent(extent)
        settings.setBackgroundColor(QColor("white"))
        job = QgsMapRendererParallelJob(settings)
        job.start()
        job.waitForFinished()
        path.parent.mkdir(parents=True, exist_ok=True)
        if not job.renderedImage().save(str(path), "PNG"):
            raise SystemExit(f"demo_qgis: could not write {path}")
        return path

    def pictures(self) -> list[Path]:
        figures = self.out / "figures"
        scene = json.loads((self.out / "logs" / "00_synth-scene.jsonl").read_text().strip()
                           .splitlines()[-1])  # fmt: skip
        px = float(scene["pixel_size"])
        held = QgsRectangle(*self.split["held_out"])
        cols = round(held.width() / px)
        width = min(MAX_PICTURE, cols)
        detail_side = min(DETAIL, cols, round(held.height() / px)) * px
        detail = QgsRectangle(held.xMinimum(), held.yMaximum() - detail_side,
                              held.xMinimum() + detail_side, held.yMaximum())  # fmt: skip
        whole = QgsRectangle(*scene["extent"])
        return [
            self.render(["areas", "units", "samples", "imagery"], whole,
                        figures / "team.png", min(1000, int(scene["width"]))),
            self.render(["detections", "truth", "imagery"], held,
                        figures / "detections.png", width),
            self.render(["detections", "truth", "imagery"], detail,
                        figures / "detections_detail.png", round(2 * detail_side / px)),
            self.render(["classified", "imagery"], held, figures / "land_cover.png", width),
        ]  # fmt: skip


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[0]).resolve()
    app = QgsApplication([], False)
    app.initQgis()
    try:
        demo = DemoProject(out)
        demo.build()
        demo.write(out / "demo.qgz")
        pictures = demo.pictures()
        print(f"demo.qgz: {len(demo.qgs.mapLayers())} layers, styled, with relative paths")
        print("figures: " + ", ".join(p.name for p in pictures))
        del demo
    finally:
        app.exitQgis()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
