"""``accuracy``: Compute Accuracy For Object Detection / Pixel Classification, from a job file.

    python -m dlstudio_qgis.engine accuracy job.json [--report out.html] [--window-size N]

The job (`job.AccuracyJob`) names the tool, its inputs and an optional HTML report. The
result line, for ``object_detection``::

    {"type": "result", "command": "accuracy", "tool": "object_detection", "min_iou": 0.5,
     "classes": [{"value", "name", "ground_truth", "detections", "tp", "fp", "fn",
                  "precision", "recall", "f1", "ap"}, ...],
     "summary": {"map", "precision", "recall", "f1", "tp", "fp", "fn", ...},
     "masked_out": {...}, "skipped": {...}, "report": ..., "seconds": ...}

for ``pixel_classification``: ``labels``, ``matrix`` (rows: reference; columns: predicted,
then "no class"), ``overall_accuracy``, ``kappa``, ``miou``, ``classes`` (per class
``precision``, ``recall``, ``f1``, ``iou`` ...), ``windows``, ``report``, ``seconds``.
A ratio with nothing to divide by is null. This module imports nothing heavy.
"""

from __future__ import annotations

import argparse
import time

from .job import AccuracyJob

HELP = "compute the accuracy of detected objects or classified pixels against a reference"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    s = argparse.SUPPRESS
    parser.add_argument("--report", default=s, help="HTML report to write (overrides the job's)")
    parser.add_argument("--min-iou", dest="min_iou", type=float, default=s,
                        help="object detection: the IoU a match needs")  # fmt: skip
    parser.add_argument("--window-size", dest="window_size", type=int, default=s,
                        help="pixel classification: pixels per side of a window read")  # fmt: skip


def run(params: dict, reporter) -> dict:
    job = AccuracyJob.from_dict(params)
    started = time.perf_counter()
    reporter.progress(0)
    if job.tool == "object_detection":
        from .detection import evaluate

        result = evaluate(job, reporter)
    else:
        from .pixels import evaluate

        result = evaluate(job, reporter)
    _log_summary(result, reporter)
    if job.report:
        from . import report

        inputs = _inputs(job, result)
        if job.tool == "object_detection":
            text = report.render_detection(result, job.title, inputs)
        else:
            title = job.title or "Pixel classification accuracy"
            text = report.render_confusion(result, title, inputs, job.classes, "pixels")
        report.write_report(job.report, text)
    reporter.progress(100)
    result["report"] = job.report
    result["seconds"] = round(time.perf_counter() - started, 3)
    return result


def _inputs(job: AccuracyJob, result: dict) -> dict:
    if job.tool == "object_detection":
        return {"Detections": job.detections, "Ground truth": job.ground_truth,
                "Mask": job.mask, "Minimum IoU": job.min_iou}  # fmt: skip
    return {"Classified raster": job.classified,
            "Reference": job.reference_raster or job.reference_features,
            "Reference warped onto the classified grid": "yes" if result.get("warped") else "",
            "Extent": ", ".join(f"{v:g}" for v in job.extent) if job.extent else "",
            "Windows read": result.get("windows")}  # fmt: skip


def _short(value) -> str:
    return "–" if value is None else f"{value:.4g}"


def _log_summary(result: dict, reporter) -> None:
    if result["tool"] == "object_detection":
        s = result["summary"]
        reporter.info(
            f"{s['detections']} detections against {s['ground_truth']} ground-truth objects: "
            f"mAP {_short(s['map'])}, precision {_short(s['precision'])}, recall "
            f"{_short(s['recall'])}, F1 {_short(s['f1'])}."
        )
    else:
        reporter.info(
            f"{result['total']} pixels compared in {result['windows']} windows: overall "
            f"accuracy {_short(result['overall_accuracy'])}, kappa {_short(result['kappa'])}, "
            f"mIoU {_short(result['miou'])}."
        )
