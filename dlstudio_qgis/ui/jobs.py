"""Pre-filled parameters for the long jobs the docks start, and reading training progress.

Qt-free: the docks pass these dicts to the Processing dialog (or a background task), so the
same algorithms run, with the same checks, as from the Toolbox.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..core import Project
from ..core.formats import FORMATS_FOR_TOOL
from .abilities import INFERENCE_ALGORITHMS

EXPORT_ALG = "dlstudio:exporttrainingdata"
TRAIN_ALG = "dlstudio:traindeeplearningmodel"
MODEL_FOR_TOOL = {
    "DETECT_OBJECTS": "SSD",
    "CLASSIFY_PIXELS": "UNET",
    "CLASSIFY_OBJECTS": "FEATURE_CLASSIFIER",
}


def _last_output(project: Project, kind: str) -> str | None:
    """The output of the kind's latest succeeded job recorded in the project."""
    for job in reversed(project.jobs()):
        if job["kind"] == kind and job["status"] == "succeeded":
            out = (job.get("parameters") or {}).get("output")
            if out:
                return str(out)
    return None


def _beside(project: Project, suffix: str) -> str:
    path = Path(project.path)
    return str(path.with_name(f"{path.stem}{suffix}"))


def export_parameters(project: Project) -> dict:
    info = project.info()
    return {
        "PROJECT": str(project.path),
        "INPUT_RASTER": info.imagery.source,
        "OUTPUT_FOLDER": _beside(project, "_training_data"),
        "METADATA_FORMAT": FORMATS_FOR_TOOL[info.inference_tool][0],
        "USER": project.user,
    }


def train_parameters(project: Project) -> dict:
    info = project.info()
    return {
        "IN_FOLDER": _last_output(project, "export") or _beside(project, "_training_data"),
        "OUTPUT": _beside(project, "_model.dlpk"),
        "MODEL_TYPE": MODEL_FOR_TOOL[info.inference_tool.value],
        "PROJECT": str(project.path),
        "USER": project.user,
    }


def inference_algorithm(project: Project) -> str:
    return INFERENCE_ALGORITHMS[project.info().inference_tool.value]


def inference_parameters(project: Project) -> dict:
    model = _last_output(project, "train") or _beside(project, "_model.dlpk")
    return {
        "INPUT_RASTER": project.info().imagery.source,
        "MODEL": model,
        "PROJECT": str(project.path),
        "USER": project.user,
    }


# --- training progress ---------------------------------------------------------------------

_EPOCH = re.compile(r"epoch (\d+)/(\d+)")
_FIELD = re.compile(r"(train_loss|valid_loss|ETA) ([-+0-9.eE]+|nan|inf)")


@dataclass(frozen=True)
class EpochProgress:
    epoch: int
    epochs: int
    train_loss: float | None
    valid_loss: float | None
    eta_s: float | None

    def text(self) -> str:
        bits = [f"Epoch {self.epoch}/{self.epochs}"]
        if self.train_loss is not None:
            bits.append(f"loss {self.train_loss:.4g}")
        if self.valid_loss is not None:
            bits.append(f"validation {self.valid_loss:.4g}")
        if self.eta_s is not None:
            bits.append(f"ETA {_duration(self.eta_s)}")
        return " · ".join(bits)


def parse_epoch(line: str) -> EpochProgress | None:
    """The training worker's per-epoch log line, e.g. 'epoch 2/5, train_loss 0.41, ...'."""
    m = _EPOCH.search(line or "")
    if m is None:
        return None
    fields = {k: float(v) for k, v in _FIELD.findall(line)}
    return EpochProgress(int(m.group(1)), int(m.group(2)), fields.get("train_loss"),
                         fields.get("valid_loss"), fields.get("ETA"))  # fmt: skip


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"
