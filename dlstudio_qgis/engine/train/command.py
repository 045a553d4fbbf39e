"""``train``: Train Deep Learning Model, from a job file the QGIS side writes.

    python -m dlstudio_qgis.engine train job.json [--max-epochs N] [--overwrite] ...

The job (`job.TrainJob`) names the export folder, the output .dlpk and the parameters. Every
input is checked before anything is written (InputError naming the fix). The result line::

    {"type": "result", "command": "train", "output": ".../model.dlpk", "epochs_run": ...,
     "best_epoch": ..., "stopped_early": ..., "metrics": {...}, "learning_rate": ...,
     "learning_rate_found": ..., "device": "cpu", "seconds": ..., "resumed_from": null,
     "train_chips": ..., "validation_chips": ..., "checkpoints": null}

Training stops with kind "cancelled" on SIGTERM; a rerun of the same job continues from its
last checkpoint. This module imports nothing heavy: torch loads when training runs.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime
from pathlib import Path

from ..protocol import InputError, describe_out_of_memory
from .job import TrainJob

HELP = "train a deep learning model from exported training data and write a .dlpk"
#: test hook: raise Cancelled after the checkpoint of this epoch (as a SIGTERM would)
CANCEL_AFTER_ENV = "DLSTUDIO_TRAIN_CANCEL_AFTER_EPOCH"
KIND_MODEL_TYPE = {
    "detection": "ObjectDetection",
    "instance_segmentation": "ObjectDetection",
    "semantic_segmentation": "ImageClassification",
    "classification": "ObjectClassification",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    s = argparse.SUPPRESS
    parser.add_argument("--output", default=s, help="the .dlpk to write (overrides the job's)")
    parser.add_argument("--max-epochs", dest="max_epochs", type=int, default=s)
    parser.add_argument("--batch-size", dest="batch_size", type=int, default=s)
    parser.add_argument(
        "--processor-type", dest="processor_type", default=s, help="AUTO, CPU or GPU"
    )
    parser.add_argument("--loader-workers", dest="loader_workers", type=int, default=s)
    parser.add_argument("--checkpoint-dir", dest="checkpoint_dir", default=s)
    parser.add_argument(
        "--no-resume",
        dest="resume",
        action="store_false",
        default=s,
        help="start afresh even if a checkpoint of this job exists",
    )
    parser.add_argument(
        "--overwrite", action="store_true", default=s, help="replace an existing .dlpk"
    )


def check_inputs(job: TrainJob):
    """The export (ExportedData) if everything fits; InputError otherwise. Writes nothing."""
    from ..export.reader import read_export
    from ..models import UnsupportedModelError, check_pair
    from .tasks import check_compatible

    try:
        check_pair(job.model_type, job.backbone)
    except UnsupportedModelError as exc:
        raise InputError(f"{exc}. Choose one of those backbones.") from None
    data = read_export(job.in_folder)
    if not data.chips:
        why = (
            f" ({len(data.missing_labels)} image chips have no label file)"
            if (data.missing_labels)
            else ""
        )
        raise InputError(
            f"The training data folder '{job.in_folder}' holds no image chips{why}. Export "
            "training data again (only Approved samples of Reviewed work units are exported)."
        )
    if not data.classes:
        raise InputError(
            f"The model definition in '{job.in_folder}' lists no classes. Export the training "
            "data again with its classes, or add Classes (Value, Name) to "
            "esri_model_definition.emd."
        )
    check_compatible(job.model_type, data.metadata_format)
    if data.metadata_format in ("Labeled_Tiles", "MultiLabeled_Tiles"):
        known = {str(v) for v in data.class_values}
        data.chips = [c for c in data.chips if any(str(v) in known for v in c.classes)]
        if not data.chips:
            raise InputError(
                f"No chip in '{job.in_folder}' is labelled with a class of its model "
                "definition; export the training data again."
            )
    out = Path(job.output)
    if out.is_dir():
        raise InputError(f"The output '{out}' is a folder; give a .dlpk file name.")
    if out.exists() and not job.overwrite:
        raise InputError(
            f"The output package '{out}' already exists; set OVERWRITE to replace "
            "it, or choose another name."
        )
    if job.pretrained_model:
        check_pretrained_model(job, [str(c["Name"]) for c in data.classes])
    return data


def check_pretrained_model(job: TrainJob, classes: list[str]) -> None:
    """PRETRAINED_MODEL exists, is a package of the job's model and backbone, and its classes
    can be matched with the data's (its definition only: no weights, no torch)."""
    from .classmap import check_pretrained
    from .package import read_package

    if not Path(job.pretrained_model).is_file():
        raise InputError(
            f"PRETRAINED_MODEL '{job.pretrained_model}' does not exist; give a "
            ".dlpk that Train Deep Learning Model wrote."
        )
    emd = read_package(job.pretrained_model, weights=False).emd
    check_pretrained(emd, job.model_type, job.backbone, classes, job.pretrained_model)


def run(params: dict, reporter) -> dict:
    began = time.monotonic()
    job = TrainJob.from_dict(params)
    data = check_inputs(job)
    from .trainer import resolve_device

    device = resolve_device(job.processor_type)
    return train(job, data, device, reporter, began)


def _pixel_counts(data, spec, train_ds) -> list[int]:
    """Background + per-class pixel counts (for CLASS_BALANCING)."""
    pixel = data.stats.get("ClassPixelStats") or {}
    per_class = pixel.get("NumPixelsPerClass")
    if per_class and len(per_class) == len(spec.classes) and "NumPixelsNoData" in pixel:
        return [int(pixel["NumPixelsNoData"]), *map(int, per_class)]
    import numpy as np

    from .dataset import IGNORE_INDEX

    counts = np.zeros(len(spec.classes) + 1, np.int64)
    for i in range(len(train_ds)):
        mask = train_ds._load(i)[1]["mask"]
        counts += np.bincount(mask[mask != IGNORE_INDEX].ravel(), minlength=len(counts))
    return counts.tolist()


def _build_task(job, spec, data, train_ds, reporter):
    from ..models import UnsupportedModelError
    from ..models.arguments import ModelArgumentError
    from .tasks import make_task

    counts = _pixel_counts(data, spec, train_ds) if spec.kind == "semantic_segmentation" else None
    try:
        task = make_task(
            spec,
            job.model_type,
            job.backbone,
            job.arguments,
            pretrained=None if job.pretrained_model else "auto",
            log=reporter.info,
            pixel_counts=counts,
        )
    except (UnsupportedModelError, ModelArgumentError) as exc:
        raise InputError(f"{exc}. Correct ARGUMENTS (or the model type and backbone).") from None
    if job.pretrained_model:
        from .checkpoint import load_pretrained

        load_pretrained(task, job.pretrained_model, reporter.info)
    from_weights = bool(job.pretrained_model) or task.model.dls_info.pretrained
    if job.freeze_model and from_weights:
        reporter.info(f"FREEZE_MODEL: {task.freeze_backbone():,} backbone weights frozen.")
    elif job.freeze_model:
        reporter.info(
            "FREEZE_MODEL: the backbone starts from random weights (no ImageNet "
            "weights in the local torch cache), so it is trained too."
        )
    return task


def train(job: TrainJob, data, device, reporter, began: float) -> dict:
    import torch

    from ..models import TASKS
    from . import dataset as ds
    from .memory import (
        free_memory,
        is_out_of_memory,
        largest_batch_that_fits,
        memory_error,
    )

    torch.manual_seed(job.seed)
    kind = TASKS[job.model_type]
    spec = ds.make_spec(data, kind, job.arguments)
    unknown = sorted(
        {str(c) for ch in data.chips for c in ch.classes} - {str(v) for v in spec.values}
    )
    if unknown:
        reporter.warning(
            f"Labels of classes not in the model definition are left out: {', '.join(unknown)}."
        )
    train_idx, val_idx = ds.split(len(data.chips), job.validation_percent, job.seed)
    if not val_idx:
        reporter.warning(
            "No validation chips (VALIDATION_PERCENT is 0 or there are too few "
            "chips): the metrics and early stopping use the training chips."
        )
    train_ds = ds.ChipDataset(data, spec, train_idx, augment=True)
    val_ds = ds.ChipDataset(data, spec, val_idx or train_idx, augment=False)
    task = _build_task(job, spec, data, train_ds, reporter).to(device)
    cuda = device.type == "cuda"
    train_dl = ds.loader(
        train_ds, job.batch_size, train=True, workers=job.loader_workers, cuda=cuda
    )
    val_dl = ds.loader(val_ds, job.batch_size, train=False, workers=job.loader_workers, cuda=cuda)
    reporter.info(
        f"Training {job.model_type} on {job.backbone}: {len(train_ds)} training and "
        f"{len(val_idx)} validation chips of {spec.chip_size} px, {spec.in_channels} "
        f"bands, {len(spec.classes)} classes, on {device}."
    )
    try:
        return _fit_and_package(
            job, data, spec, task, (train_dl, val_dl), (train_idx, val_idx), device, reporter, began
        )
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        cause = describe_out_of_memory(exc)
    # out of the except block, the failed step's tensors are free to go
    batch = train_dl.batch_size
    free_memory(device)
    reporter.warning(f"Out of memory with batches of {batch}; measuring a batch size that fits.")
    fits = largest_batch_that_fits(task, train_ds, device, batch, log=reporter.info)
    raise memory_error(job, spec.chip_size, batch, fits, device, cause)


def _fit_and_package(job, data, spec, task, loaders, split, device, reporter, began) -> dict:
    """Train (or resume), then write the package of the best epoch; the result line."""
    import torch

    from .checkpoint import Checkpoints, default_folder, job_hash
    from .memory import autocast
    from .package_write import write_dlpk
    from .trainer import EarlyStopping, Trainer

    (train_dl, val_dl), (train_idx, val_idx) = loaders, split

    store = Checkpoints(
        default_folder(job.output, job.checkpoint_dir),
        job_hash(job.to_dict(), Path(job.in_folder)),
        reporter.log,
    )
    resume = store.load() if job.resume else None
    finding = None
    if resume is not None:
        lr, finding = float(resume[0]["lr"]), resume[0].get("lr_finder")
    elif job.learning_rate > 0:
        lr = job.learning_rate
    else:
        from .lr_finder import find_lr

        steps = max(30, min(100, 3 * len(train_dl)))
        result = find_lr(
            task,
            train_dl,
            steps=steps,
            log=reporter.info,
            progress=reporter.scaled(0, 5).progress,
            autocast=lambda: autocast(device),
            scaler=torch.amp.GradScaler("cuda") if device.type == "cuda" else None,
        )
        lr = result.lr
        finding = {"lr": lr, "steps": result.steps, "fallback": result.fallback}
    found = job.learning_rate == 0
    cancel_after = os.environ.get(CANCEL_AFTER_ENV)
    trainer = Trainer(
        task,
        train_dl,
        val_dl,
        lr=lr,
        max_epochs=job.max_epochs,
        reporter=reporter,
        device=device,
        checkpoints=store,
        early_stopping=EarlyStopping(enabled=job.stop_training),
        progress_range=(5.0 if found else 0.0, 95.0),
        stop_after_epoch=int(cancel_after) if cancel_after else None,
        extra_state={"lr_finder": finding},
    )
    fit = trainer.fit(resume)

    task.model.load_state_dict(fit.best_weights)
    seconds = time.monotonic() - began
    metrics = {
        **_final_metrics(fit.best_metrics, fit.history),
        "learning_rate": lr,
        "learning_rate_found": found,
        "epochs": fit.epochs_run,
        "best_epoch": fit.best_epoch,
        "stopped_early": fit.stopped_early,
        "seconds": round(seconds, 1),
        "device": str(device),
    }
    emd = build_emd(job, data, spec, task, fit, metrics, finding, len(train_idx), len(val_idx))
    from .preview import render_preview

    preview = render_preview(task, val_dl.dataset, spec)
    out = write_dlpk(
        job.output,
        emd=emd,
        state_dict=fit.best_weights,
        history=[_flat(r) for r in fit.history],
        metrics=metrics,
        preview_png=preview,
        overwrite=job.overwrite,
    )
    reporter.progress(100)
    store.remove()
    reporter.info(f"Wrote {out} (best epoch {fit.best_epoch} of {fit.epochs_run}).")
    return {
        "output": str(out),
        "epochs_run": fit.epochs_run,
        "best_epoch": fit.best_epoch,
        "stopped_early": fit.stopped_early,
        "metrics": _scalars(fit.best_metrics),
        "valid_loss": _best(fit, "valid_loss"),
        "learning_rate": lr,
        "learning_rate_found": found,
        "device": str(device),
        "seconds": round(time.monotonic() - began, 1),
        "resumed_from": fit.resumed_from,
        "train_chips": len(train_idx),
        "validation_chips": len(val_idx),
        "model_type": job.model_type,
        "backbone": job.backbone,
    }


def _scalars(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if not isinstance(v, dict)}


def _best(fit, key: str):
    return next((r[key] for r in fit.history if r["epoch"] == fit.best_epoch), None)


def _flat(record: dict) -> dict:
    """An epoch of the history with its scalar metrics as columns (for the report)."""
    keep = ("epoch", "train_loss", "valid_loss", "lr", "seconds")
    return {**{k: record[k] for k in keep}, **_scalars(record["metrics"])}


def _final_metrics(best: dict, history: list[dict]) -> dict:
    """The best epoch's metrics, per-class figures as {class: {metric: value}}."""
    out = _scalars(best)
    for key, per_class in best.items():
        if isinstance(per_class, dict):
            name = key.replace("_per_class", "")
            label = {"iou": "IoU", "ap": "AP", "f1": "F1"}.get(name, name)
            out.setdefault("per_class", {})
            for cls, value in per_class.items():
                out["per_class"].setdefault(cls, {})[label] = value
    return out


def build_emd(job, data, spec, task, fit, metrics, finding, n_train, n_val) -> dict:
    """The model definition of the trained model (with what the export's emd says)."""
    from ..models.registry import ModelInfo

    info: ModelInfo = task.model.dls_info
    src = data.emd
    stats = data.stats.get("BandStats") or src.get("AllTilesStats") or []
    norm = {"band_mean_values": spec.mean, "band_std_values": spec.std}
    if stats and all("Min" in r and "Max" in r for r in stats):
        norm["band_min_values"] = [r["Min"] for r in stats][: spec.in_channels]
        norm["band_max_values"] = [r["Max"] for r in stats][: spec.in_channels]
    arguments = {**job.arguments, **info.arguments, "chip_size": spec.chip_size}
    emd = {
        "Framework": "PyTorch",
        "ModelConfiguration": "DLStudio",
        "ModelType": KIND_MODEL_TYPE[spec.kind],
        "ModelName": job.model_type,
        "ModelFile": f"{Path(job.output).stem}.pth",
        "ImageHeight": spec.chip_size,
        "ImageWidth": spec.chip_size,
        "ExtractBands": spec.extract_bands,
        "Classes": spec.classes,
        "MetaDataMode": spec.metadata_format,
        "ModelParameters": {
            "model_type": job.model_type,
            "backbone": job.backbone,
            "arguments": arguments,
            "task": spec.kind,
            "num_classes": task.num_outputs,
            "in_channels": spec.in_channels,
            "output_classes": task.output_names,
            "multi_label": spec.multi_label,
            "ignore_classes": spec.ignore_values,
        },
        "NormalizationStats": norm,
        "IsMultispectral": src.get("IsMultispectral", spec.in_channels != 3),
        "Metrics": metrics,
        "DLStudio": {
            "job": job.to_dict(),
            "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "epochs_run": fit.epochs_run,
            "best_epoch": fit.best_epoch,
            "learning_rate": metrics["learning_rate"],
            "lr_finder": finding,
            "train_chips": n_train,
            "validation_chips": n_val,
            "initial_weights": info.weights,
            "export": str(data.folder),
        },
    }
    for key in ("InputRastersProps", "AllTilesStats", "ImageSpaceUsed"):
        if key in src:
            emd[key] = src[key]
    return emd
