"""Packages for the inference algorithm tests.

Real ones: a 256 px synthetic scene exported (Classified_Tiles, PASCAL_VOC_rectangles,
Labeled_Tiles) and trained for one epoch on RESNET18 by the engine in subprocesses (as
tests/engine/train/train_support.py does), built once per test process. Bad ones: zip files
written here with zipfile, never reaching a worker.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
for _p in (REPO / "tests" / "engine", REPO / "tests" / "engine" / "train"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import train_support  # noqa: E402 - needs the paths above

#: model type -> (export metadata format, samples file stem)
KINDS = {
    "UNET": ("Classified_Tiles", "buildings"),
    "SSD": ("PASCAL_VOC_rectangles", "buildings"),
    "FEATURE_CLASSIFIER": ("Labeled_Tiles", "all"),
}
CLASSES = [
    {"Value": 1, "Name": "building", "Color": [230, 25, 75]},
    {"Value": 2, "Name": "road", "Color": [60, 180, 75]},
]
_BUILT: dict = {}


def real_packages() -> dict:
    """{'folder', 'scene', 'UNET', 'SSD', 'FEATURE_CLASSIFIER'}: paths, built once."""
    if _BUILT:
        return _BUILT
    os.environ["OMP_NUM_THREADS"] = "1"  # the workers the algorithms start inherit it
    folder = Path(tempfile.mkdtemp(prefix="dls-infer-packages-"))
    scene = train_support.make_scene(folder)
    built = {"folder": folder, "scene": scene}
    for model_type, (fmt, samples) in KINDS.items():
        export = train_support.export(folder, scene, fmt, samples=samples)
        job = train_support.train_job(folder, export, name=model_type.lower(),
                                      model_type=model_type)  # fmt: skip
        run = train_support.run_train(folder, job)
        assert run.rc == 0, run.stdout[-3000:] + run.stderr[-3000:]
        built[model_type] = Path(job["output"])
    _BUILT.update(built)
    return _BUILT


def emd(model_type: str = "UNET", **changes) -> dict:
    """A model definition like the ones Train deep learning model writes."""
    kinds = {"UNET": "ImageClassification", "FEATURE_CLASSIFIER": "ObjectClassification"}
    kind = kinds.get(model_type, "ObjectDetection")
    doc = {
        "Framework": "PyTorch",
        "ModelConfiguration": "DLStudio",
        "ModelType": kind,
        "ModelName": model_type,
        "ModelFile": "model.pth",
        "ImageHeight": 64,
        "ImageWidth": 64,
        "ExtractBands": [0, 1, 2],
        "Classes": CLASSES,
        "ModelParameters": {"model_type": model_type, "backbone": "RESNET18", "in_channels": 3},
    }
    for key, value in changes.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


def fake_package(path: Path, definition: dict | None = None, members: dict | None = None) -> str:
    """A .dlpk holding `definition` as model.emd and a stand-in for the weights (never loaded
    on the QGIS side), plus `members` (name -> bytes)."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("model.emd", json.dumps(definition if definition is not None else emd()))
        zf.writestr("model.pth", b"not really weights")
        for name, data in (members or {}).items():
            zf.writestr(name, data)
    return str(path)


def unpack_emd(package: Path, folder: Path) -> str:
    """The .emd and weights of a real package, side by side in `folder` (a bare .emd)."""
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(package) as zf:
        names = [n for n in zf.namelist() if n.endswith((".emd", ".pth"))]
        zf.extractall(folder, names)
    return str(folder / next(n for n in names if n.endswith(".emd")))
