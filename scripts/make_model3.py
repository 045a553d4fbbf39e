#!/usr/bin/env python3
"""Write models/export_train_detect.model3: a QGIS Processing model that chains
dlstudio:exporttrainingdata -> dlstudio:traindeeplearningmodel -> dlstudio:detectobjects.

Run it with the project's venv (QGIS's Python with the plugin importable):

    .venv/bin/python scripts/make_model3.py [--output models/export_train_detect.model3]

The model's inputs: imagery, training samples and their class field, the detection model type,
an optional backbone, epochs, the chip size and the confidence threshold. Its outputs: the
training data folder, the deep learning package and the detected objects. It opens in the
graphical modeler and runs with `qgis_process.bin run models/export_train_detect.model3 --
imagery=... samples=... class_field=... export:training_data=... train:model_package=...
detect:detections=...`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO / "models" / "export_train_detect.model3"
#: the model types that train from PASCAL_VOC_rectangles (what this model exports)
DETECTORS = ["SSD", "RETINANET", "FASTERRCNN", "YOLOV3"]


def start_qgis():
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("QT_HASH_SEED", "0")  # XML attributes in a stable order: clean diffs
    for path in ("/usr/share/qgis/python/plugins", "/usr/share/qgis/python", str(REPO)):
        if os.path.isdir(path) and path not in sys.path:
            sys.path.append(path)
    from qgis.core import QgsApplication

    app = QgsApplication([], False, tempfile.mkdtemp(prefix="dls-model3-"))
    QgsApplication.setPrefixPath("/usr", True)
    app.initQgis()
    from processing.core.Processing import Processing

    Processing.initialize()
    from dlstudio_qgis.processing import DlsProvider

    provider = DlsProvider()
    QgsApplication.processingRegistry().addProvider(provider)
    return app, provider


def build_model():
    from qgis.core import (
        QgsApplication,
        QgsProcessingModelAlgorithm,
        QgsProcessingModelChildAlgorithm,
        QgsProcessingModelOutput,
        QgsProcessingModelParameter,
        QgsProcessingParameterEnum,
        QgsProcessingParameterFeatureSource,
        QgsProcessingParameterField,
        QgsProcessingParameterNumber,
        QgsProcessingParameterRasterLayer,
    )
    from qgis.core import (
        QgsProcessingModelChildParameterSource as Source,
    )
    from qgis.PyQt.QtCore import QPointF

    from dlstudio_qgis.engine.train.job import BACKBONES
    from dlstudio_qgis.processing.base import (
        FLAG_ADVANCED,
        FLAG_OPTIONAL,
        NUMBER_DOUBLE,
        SOURCE_POINT,
        SOURCE_POLYGON,
    )

    model = QgsProcessingModelAlgorithm(
        "Export, train and detect objects", "Deep Learning Studio", "deeplearningstudio"
    )
    inputs = [
        (QgsProcessingParameterRasterLayer("imagery", "Imagery"),
         "The imagery: chips are cut from it for training, and objects are detected in it."),
        (QgsProcessingParameterFeatureSource("samples", "Training samples",
                                             [SOURCE_POLYGON, SOURCE_POINT]),
         "The training samples (polygons or points, any CRS)."),
        (QgsProcessingParameterField("class_field", "Class field",
                                     parentLayerParameterName="samples"),
         "The samples' class field: positive integers, or names (numbered 1, 2 ...)."),
        (QgsProcessingParameterEnum("model_type", "Model type", options=DETECTORS,
                                    defaultValue="SSD", usesStaticStrings=True),
         "The object detection model to train."),
        (QgsProcessingParameterEnum("backbone", "Backbone", options=list(BACKBONES),
                                    optional=True, usesStaticStrings=True),
         "The backbone network; empty: RESNET34 (DARKNET53 for YOLOV3)."),
        (QgsProcessingParameterNumber("epochs", "Epochs", defaultValue=20, minValue=1),
         "The most passes over the training chips."),
        (QgsProcessingParameterNumber("chip_size", "Chip size (pixels)", defaultValue=256,
                                      minValue=16),
         "The size of the training chips (also the stride between them)."),
        (QgsProcessingParameterNumber("threshold", "Detection threshold", NUMBER_DOUBLE,
                                      defaultValue=0.5, minValue=0.0, maxValue=1.0),
         "The lowest confidence a detected object is kept with."),
    ]  # fmt: skip
    help_content = {
        "ALG_DESC": "Exports training data (PASCAL_VOC_rectangles) from the samples, trains an "
        "object detection model on it and detects objects in the imagery with the model.",
        "ALG_CREATOR": "Deep Learning Studio for QGIS",
    }
    for i, (param, help_text) in enumerate(inputs):
        if param.name() == "backbone":
            param.setFlags(param.flags() | FLAG_ADVANCED)
        component = QgsProcessingModelParameter(param.name())
        component.setPosition(QPointF(120 + 190 * (i % 4), 60 + 90 * (i // 4)))
        model.addModelParameter(param, component)
        help_content[param.name()] = help_text
    model.setHelpContent(help_content)

    def child(child_id, alg_id, x, y, static=None, sources=None, outputs=None):
        c = QgsProcessingModelChildAlgorithm(alg_id)
        c.setChildId(child_id)
        c.setDescription(child_id.capitalize())
        c.setPosition(QPointF(x, y))
        for name, value in (static or {}).items():
            c.addParameterSources(name, [Source.fromStaticValue(value)])
        for name, source in (sources or {}).items():
            c.addParameterSources(name, [source])
        # the rest at their defaults, as the modeler sets them when a child is added
        for p in QgsApplication.processingRegistry().algorithmById(alg_id).parameterDefinitions():
            given = p.name() in (static or {}) or p.name() in (sources or {})
            if not given and not p.isDestination() and not p.flags() & FLAG_OPTIONAL:
                c.addParameterSources(p.name(), [Source.fromStaticValue(p.defaultValue())])
        model_outputs = {}
        for out_name, (child_output, description) in (outputs or {}).items():
            out = QgsProcessingModelOutput(out_name, description)
            out.setChildId(child_id)
            out.setChildOutputName(child_output)
            out.setPosition(QPointF(x + 220, y + 60))
            model_outputs[out_name] = out
        c.setModelOutputs(model_outputs)
        model.addChildAlgorithm(c)

    param = Source.fromModelParameter
    child("export", "dlstudio:exporttrainingdata", 200, 300,
          static={"METADATA_FORMAT": "PASCAL_VOC_rectangles", "OVERWRITE": True},
          sources={"INPUT_RASTER": param("imagery"), "INPUT_SAMPLES": param("samples"),
                   "CLASS_VALUE_FIELD": param("class_field"), "TILE_SIZE_X": param("chip_size"),
                   "TILE_SIZE_Y": param("chip_size"), "STRIDE_X": param("chip_size"),
                   "STRIDE_Y": param("chip_size")},
          outputs={"training_data": ("OUTPUT_FOLDER", "Training data folder")})  # fmt: skip
    child("train", "dlstudio:traindeeplearningmodel", 320, 430,
          static={"OVERWRITE_MODEL": True},
          sources={"IN_FOLDER": Source.fromChildOutput("export", "OUTPUT_FOLDER"),
                   "MODEL_TYPE": param("model_type"), "BACKBONE_MODEL": param("backbone"),
                   "MAX_EPOCHS": param("epochs")},
          outputs={"model_package": ("OUTPUT", "Deep learning package")})  # fmt: skip
    child("detect", "dlstudio:detectobjects", 440, 560,
          sources={"INPUT_RASTER": param("imagery"),
                   "MODEL": Source.fromChildOutput("train", "OUTPUT"),
                   "ARGUMENTS": Source.fromExpression("'threshold=' || to_string(@threshold)")},
          outputs={"detections": ("OUTPUT", "Detected objects")})  # fmt: skip
    return model


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    app, _provider = start_qgis()
    model = build_model()
    ok, errors = model.validate()
    if not ok:
        print("The model does not validate:\n" + "\n".join(errors), file=sys.stderr)
        return 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    if not model.toFile(str(args.output)):
        print(f"Could not write {args.output}", file=sys.stderr)
        return 1
    print(f"Wrote {args.output}")
    app.exitQgis()
    return 0


if __name__ == "__main__":
    sys.exit(main())
