"""A packaged model ready for inference: rebuilt from its .emd, weights loaded, in eval mode.

The package is read with :func:`read_package` (no extraction, ``weights_only`` loading, code
refused unless trusted). The model is rebuilt with the same type, backbone, class count, band
count, chip size and arguments it was trained with, and its state dict must fit exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..models import TASKS
from ..protocol import InputError
from ..train.package import read_package
from ..train.trainer import resolve_device
from .job import TOOL_MODEL_TYPES, InferJob

#: the tool that runs each task
TASK_TOOL = {
    "detection": "detect_objects",
    "instance_segmentation": "detect_objects",
    "semantic_segmentation": "classify_pixels",
    "classification": "classify_objects",
}
TOOL_TITLE = {
    "detect_objects": "Detect Objects",
    "classify_pixels": "Classify Pixels",
    "classify_objects": "Classify Objects",
}


@dataclass
class InferModel:
    """A model and what inference needs to know about it."""

    model: torch.nn.Module
    emd: dict
    model_type: str
    task: str  # detection, instance_segmentation, semantic_segmentation, classification
    classes: list[dict]  # Value, Name, Color
    chip_size: int
    bands: list[int]  # 1-based raster band indexes (from ExtractBands)
    mean: np.ndarray  # per band, float32
    std: np.ndarray
    device: torch.device
    multi_label: bool = False

    @property
    def values(self) -> list[int]:
        return [int(c["Value"]) for c in self.classes]

    @property
    def names(self) -> list[str]:
        return [str(c["Name"]) for c in self.classes]

    def class_of(self, index: int) -> tuple[int, str]:
        """(value, name) of the class at 0-based `index` in Classes."""
        c = self.classes[index]
        return int(c["Value"]), str(c["Name"])

    def normalise(self, chips: np.ndarray) -> torch.Tensor:
        """(N, bands, H, W) raw values -> a normalised float tensor on the model's device."""
        x = torch.from_numpy(chips).to(self.device, non_blocking=True).float()
        mean = torch.as_tensor(self.mean, device=self.device).view(1, -1, 1, 1)
        std = torch.as_tensor(self.std, device=self.device).view(1, -1, 1, 1)
        return (x - mean) / std


def check_tool(job_tool: str, model_type: str, path: str) -> str:
    """The model's task, or InputError naming the tool that runs it."""
    task = TASKS.get(model_type)
    if task is None:
        raise InputError(
            f"The model '{path}' is of type '{model_type}', which this plugin cannot run; "
            f"it runs {', '.join(TASKS)}."
        )
    if model_type not in TOOL_MODEL_TYPES[job_tool]:
        fits = TASK_TOOL[task]
        raise InputError(
            f"The model '{path}' is a {model_type} model, which {TOOL_TITLE[job_tool]} cannot "
            f"run: use {TOOL_TITLE[fits]} with it. {TOOL_TITLE[job_tool]} runs "
            f"{', '.join(TOOL_MODEL_TYPES[job_tool])} models."
        )
    return task


def load_model(job: InferJob, raster_bands: int, log) -> InferModel:
    """The job's model, checked against the tool and the raster's band count."""
    from ..models import build_model

    package = read_package(job.model, trust_code=job.trust_code)
    emd = package.emd
    if package.inference_function:
        log(
            f"The package names its own inference function ({package.inference_function}); "
            "it is trusted but not needed: the built-in inference runs the model."
        )
    params = emd.get("ModelParameters") or {}
    model_type = str(params.get("model_type") or emd.get("ModelName") or "").upper()
    if not model_type or "backbone" not in params:
        raise InputError(
            f"The model '{job.model}' (ModelConfiguration '{emd.get('ModelConfiguration')}') "
            "was not trained by Deep Learning Studio: its ModelParameters lack model_type and "
            "backbone. Train it with dlstudio:traindeeplearningmodel."
        )
    task = check_tool(job.tool, model_type, job.model)
    classes = list(emd["Classes"])
    in_channels = int(params.get("in_channels") or len(emd.get("ExtractBands") or []) or 3)
    extract = [int(b) for b in (emd.get("ExtractBands") or range(in_channels))]
    if len(extract) != in_channels:
        raise InputError(
            f"The model '{job.model}' is inconsistent: ExtractBands {extract} has "
            f"{len(extract)} bands but the model takes {in_channels}."
        )
    if max(extract) >= raster_bands or min(extract) < 0:
        raise InputError(
            f"The model '{job.model}' reads bands {[b + 1 for b in extract]} (ExtractBands "
            f"{extract}) but the raster '{job.raster}' has {raster_bands} band"
            f"{'s' if raster_bands != 1 else ''}. Use imagery with the bands the model was "
            "trained on."
        )
    chip = int(emd.get("ImageHeight") or params.get("arguments", {}).get("chip_size") or 256)
    norm = emd.get("NormalizationStats") or {}
    mean = np.asarray(norm.get("band_mean_values") or [0.0] * in_channels, dtype=np.float32)
    std = np.asarray(norm.get("band_std_values") or [1.0] * in_channels, dtype=np.float32)
    if mean.shape != (in_channels,) or std.shape != (in_channels,):
        raise InputError(
            f"The model '{job.model}' has normalisation statistics for {mean.size} bands but "
            f"takes {in_channels}."
        )
    std[~np.isfinite(std) | (std <= 0)] = 1.0
    arguments = {k: v for k, v in (params.get("arguments") or {}).items() if k != "chip_size"}
    num_classes = int(params.get("num_classes") or 0)
    try:
        model = build_model(
            model_type,
            params["backbone"],
            num_classes,
            in_channels,
            chip,
            arguments,
            pretrained=None,
            log=lambda m: None,
        )
        model.load_state_dict(package.state_dict, strict=True)
    except (ValueError, RuntimeError) as exc:
        raise InputError(
            f"The weights of '{job.model}' do not fit a {model_type} on "
            f"{params['backbone']} with {num_classes} outputs and {in_channels} bands: "
            f"{str(exc).splitlines()[0][:300]}"
        ) from None
    device = resolve_device(job.processor_type)
    model.eval().to(device)
    return InferModel(
        model=model,
        emd=emd,
        model_type=model_type,
        task=task,
        classes=classes,
        chip_size=chip,
        bands=[b + 1 for b in extract],
        mean=mean,
        std=std,
        device=device,
        multi_label=bool(params.get("multi_label")),
    )


def set_detector_thresholds(model: torch.nn.Module, threshold: float, nms: float) -> None:
    """Let the detector keep what `threshold` and `nms` ask for (it filters by its own)."""
    heads = getattr(model, "roi_heads", None)
    for owner in (heads, model):
        if owner is None:
            continue
        if hasattr(owner, "score_thresh"):
            owner.score_thresh = float(threshold)
        if hasattr(owner, "nms_thresh"):
            owner.nms_thresh = float(nms)
        if hasattr(owner, "detections_per_img"):
            owner.detections_per_img = max(int(owner.detections_per_img), 300)
