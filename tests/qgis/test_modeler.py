"""The algorithms chained in a graphical model, and the QGIS side's import rules at run time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from osgeo import ogr
from qgis.core import (
    QgsProcessingModelAlgorithm,
    QgsProcessingModelChildAlgorithm,
    QgsProcessingModelChildDependency,
    QgsProcessingModelChildParameterSource,
    QgsProcessingModelOutput,
    QgsProcessingModelParameter,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterVectorLayer,
)
from qgis_support import COLLECTOR, ORIGIN, OWNER, Capture, rect_wkt, write_vector

from dlstudio_qgis.core import Project

REPO = Path(__file__).resolve().parents[2]
X0, Y1 = ORIGIN
Y0 = Y1 - 200


def _child(model, child_id, alg_id, static=None, sources=None, outputs=None, after=()):
    child = QgsProcessingModelChildAlgorithm(alg_id)
    child.setChildId(child_id)
    child.setDescription(child_id)
    for name, value in (static or {}).items():
        child.addParameterSources(
            name, [QgsProcessingModelChildParameterSource.fromStaticValue(value)]
        )
    for name, source in (sources or {}).items():
        child.addParameterSources(name, [source])
    model_outputs = {}
    for out_name, child_output in (outputs or {}).items():
        out = QgsProcessingModelOutput(out_name, out_name)
        out.setChildId(child_id)
        out.setChildOutputName(child_output)
        model_outputs[out_name] = out
    child.setModelOutputs(model_outputs)
    child.setDependencies([QgsProcessingModelChildDependency(c) for c in after])
    model.addChildAlgorithm(child)
    return child


def test_algorithms_chain_in_a_model(tmp_path, raster):
    """createproject -> createworkunits -> importsamples -> projectstatus, wired by outputs."""
    import processing

    model = QgsProcessingModelAlgorithm("dls_chain", "tests")
    model.addModelParameter(
        QgsProcessingParameterRasterLayer("imagery", "Imagery"),
        QgsProcessingModelParameter("imagery"),
    )
    model.addModelParameter(
        QgsProcessingParameterVectorLayer("labels", "Labels"), QgsProcessingModelParameter("labels")
    )
    project_out = QgsProcessingModelChildParameterSource.fromChildOutput("create", "OUTPUT")
    _child(
        model,
        "create",
        "dlstudio:createproject",
        static=dict(
            NAME="Modelled",
            INFERENCE_TOOL="CLASSIFY_PIXELS",
            CLASSES="1:building,2:road",
            USER=OWNER,
        ),
        sources={
            "INPUT_RASTER": QgsProcessingModelChildParameterSource.fromModelParameter("imagery")
        },
        outputs={"project": "OUTPUT"},
    )
    _child(
        model,
        "grid",
        "dlstudio:createworkunits",
        static=dict(CELL_SIZE=100.0, CELL_UNITS="MAP_UNITS", USER=OWNER),
        sources={"PROJECT": project_out},
    )
    _child(
        model,
        "import",
        "dlstudio:importsamples",
        static=dict(CLASS_FIELD="cls", USER=OWNER),
        sources={
            "PROJECT": project_out,
            "INPUT": QgsProcessingModelChildParameterSource.fromModelParameter("labels"),
        },
        after=["grid"],
    )
    _child(
        model,
        "status",
        "dlstudio:projectstatus",
        sources={"PROJECT": project_out},
        outputs={"report": "OUTPUT_JSON"},
        after=["import"],
    )
    ok, errors = model.validate()
    assert ok, errors

    labels = write_vector(
        tmp_path / "labels.gpkg",
        [(rect_wkt(X0 + 10, Y0 + 10, X0 + 20, Y0 + 20), {"cls": "road"})],
        32611,
        ogr.wkbPolygon,
    )
    project_path = tmp_path / "modelled.gpkg"
    report = tmp_path / "report.json"
    feedback = Capture()
    out = processing.run(
        model,
        {
            "imagery": raster,
            "labels": labels,
            "create:project": str(project_path),
            "status:report": str(report),
        },
        feedback=feedback,
    )
    assert out["create:project"] == str(project_path)
    data = json.loads(report.read_text())
    assert data["project"] == "Modelled"
    assert data["work_units"]["total"] == 4 and data["samples"]["total"] == 1
    assert Project.open(project_path, OWNER).samples()[0].class_value == 2


def test_algorithms_never_load_heavy_packages(tmp_path):
    """Run the algorithms in a fresh QGIS process, then check torch & co. were never imported."""
    code = f"""
import sys
sys.path[:0] = [{str(REPO / "tests" / "qgis")!r}, {str(REPO)!r}]
from qgis_support import start_qgis, make_raster, run, OWNER
start_qgis()
import processing
raster = make_raster({str(tmp_path / "r.tif")!r})
path = {str(tmp_path / "p.gpkg")!r}
run("createproject", NAME="x", INPUT_RASTER=raster, INFERENCE_TOOL="DETECT_OBJECTS",
    CLASSES="1:a", OUTPUT=path, USER=OWNER)
run("createworkunits", PROJECT=path, CELL_SIZE=50, USER=OWNER)
run("updateworkunitstatus", PROJECT=path, WORK_UNITS='"name" = \\'R1C1\\'', STATUS="REVIEWED",
    USER=OWNER)
run("projectstatus", PROJECT=path, OUTPUT_HTML={str(tmp_path / "s.html")!r})
heavy = sorted({{"torch", "torchvision", "rasterio", "shapely"}} & set(sys.modules))
print("HEAVY", heavy)
sys.exit(1 if heavy else 0)
"""
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "HEAVY []" in out.stdout
    assert COLLECTOR  # the helpers module is importable outside pytest too
