"""Checks and reporting for dlstudio:traindeeplearningmodel (kept apart from its parameters).

Nothing here imports torch.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from qgis.core import QgsProcessingException

from ..engine.protocol import EngineError
from ..engine.train.classmap import check_pretrained, class_names
from ..engine.train.package import read_package
from .base import tr

EXPORT_EMD = "esri_model_definition.emd"
#: the export metadata formats each model type trains from (engine/models/registry.py
#: METADATA_FORMATS; a test keeps the two equal)
FORMATS = {
    **dict.fromkeys(("SSD", "RETINANET", "YOLOV3", "FASTERRCNN"),
                    ("PASCAL_VOC_rectangles", "KITTI_rectangles")),
    "MASKRCNN": ("RCNN_Masks",),
    **dict.fromkeys(("UNET", "PSPNET", "DEEPLAB"), ("Classified_Tiles",)),
    "FEATURE_CLASSIFIER": ("Labeled_Tiles", "MultiLabeled_Tiles"),
}  # fmt: skip
#: YOLOv3 is the Darknet-53 design, and Darknet-53 has no other use (registry.py SUPPORTED)
ONLY_BACKBONE = {"YOLOV3": "DARKNET53"}


def in_folder(text: str) -> Path:
    """The export folder to train from (IN_FOLDER), checked."""
    if not text:
        raise QgsProcessingException(tr("Give the training data folder (IN_FOLDER)."))
    folder = Path(text).absolute()
    if not folder.is_dir():
        raise QgsProcessingException(tr(f"The training data folder '{folder}' does not exist."))
    missing = [
        name
        for name, there in ((EXPORT_EMD, (folder / EXPORT_EMD).is_file()),
                            ("images/", (folder / "images").is_dir()))
        if not there
    ]  # fmt: skip
    if missing:
        raise QgsProcessingException(
            tr(
                f"'{folder}' is not exported training data: it lacks {' and '.join(missing)}. "
                "Give the folder Export Training Data for Deep Learning wrote."
            )
        )
    return folder


def output_package(text: str, overwrite: bool) -> Path:
    """The .dlpk to write (OUTPUT), checked against OVERWRITE_MODEL."""
    if not text:
        raise QgsProcessingException(tr("Give the package to write (OUTPUT)."))
    output = Path(text).absolute()
    if not output.suffix:
        output = output.with_suffix(".dlpk")
    if output.suffix.lower() != ".dlpk":
        raise QgsProcessingException(
            tr(f"The output '{output}' must be a deep learning package (.dlpk).")
        )
    if output.is_dir():
        raise QgsProcessingException(tr(f"The output '{output}' is a folder."))
    if output.exists() and not overwrite:
        raise QgsProcessingException(
            tr(
                f"The output package '{output}' already exists; set OVERWRITE_MODEL to "
                "replace it, or choose another name."
            )
        )
    return output


def _export_emd(folder: Path) -> dict:
    try:
        emd = json.loads((folder / EXPORT_EMD).read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as exc:
        raise QgsProcessingException(
            tr(f"'{folder / EXPORT_EMD}' cannot be read as a model definition: {exc}.")
        ) from exc
    return emd if isinstance(emd, dict) else {}


def check_format(folder: Path, model_type: str) -> dict:
    """The export's model definition, whose metadata format must be one the model type trains
    from."""
    emd = _export_emd(folder)
    fmt = emd.get("MetaDataMode")
    fits = FORMATS.get(model_type, ())
    if fmt and fits and fmt not in fits:
        raise QgsProcessingException(
            tr(
                f"{model_type} trains from {' or '.join(fits)}; this export is {fmt}. "
                f"Export again with METADATA_FORMAT={fits[0]}, or choose a model type for "
                f"{fmt} data."
            )
        )
    return emd


def check_pretrained_package(path: str, export_emd: dict, model_type: str, backbone: str) -> None:
    """PRETRAINED_MODEL is a package of this model type and backbone whose classes match the
    export's (its definition is read; the weights are the worker's to load)."""
    try:
        emd = read_package(path, weights=False).emd
        check_pretrained(emd, model_type, backbone, class_names(export_emd), path)
    except EngineError as exc:
        raise QgsProcessingException(str(exc)) from exc


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def report(result: dict, output: Path, job_id, feedback) -> dict:
    metrics = result.get("metrics") or {}
    out = {
        "OUTPUT": str(result.get("output") or output),
        "EPOCHS": int(result.get("epochs_run") or result.get("epochs") or 0),
        "BEST_EPOCH": int(result.get("best_epoch") or 0),
        "LEARNING_RATE": _number(result.get("learning_rate")),
        "VALID_LOSS": _number(result.get("valid_loss")),
        "METRICS": json.dumps(_nan_to_none(metrics), sort_keys=True, default=str),
        "JOB_ID": job_id or "",
    }
    summary = ", ".join(f"{k} {_short(v)}" for k, v in metrics.items() if _number(v) is not None)
    feedback.pushInfo(
        tr(
            f"Trained {out['EPOCHS']} epochs (best: {out['BEST_EPOCH']}, learning rate "
            f"{_short(out['LEARNING_RATE'])}"
            + (f", {result['seconds']} s" if result.get("seconds") is not None else "")
            + f"){': ' + summary if summary else ''}. Wrote {out['OUTPUT']}."
        )
    )
    return out


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _nan_to_none(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_nan_to_none(v) for v in obj]
    return obj


def memory_hint(job: dict) -> str:
    """What to lower when the training worker is killed for memory (the system's OOM killer
    gives the worker no chance to measure a batch size itself)."""
    batch = int(job.get("batch_size") or 1)
    if batch > 1:
        return (
            f"Lower BATCH_SIZE (it was {batch}; try {batch // 2}), then chip_size in ARGUMENTS "
            "or LOADER_WORKERS."
        )
    return "Lower chip_size in ARGUMENTS or LOADER_WORKERS, or choose a lighter backbone."
