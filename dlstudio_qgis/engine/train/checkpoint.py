"""Checkpoints (RESUME) and the weights of a PRETRAINED_MODEL.

A checkpoint folder (``<output name>.checkpoints`` beside the .dlpk, or the job's
``checkpoint_dir``) holds ``last.pt`` (model, optimizer, scheduler, scaler, epoch, history,
learning rate, early-stopping state, the job hash), rewritten atomically after every epoch, and
``best.pt`` (the weights of the best epoch so far). A rerun of the same job (same hash: the same
parameters and the same export) continues after the last epoch; another job's checkpoint is
left alone and not used. Everything is read back with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import torch

from ..protocol import InputError
from .classmap import check_pretrained, index_mapping, output_names

LAST, BEST = "last.pt", "best.pt"
#: job fields that do not change what is trained
_NOT_HASHED = (
    "overwrite",
    "resume",
    "loader_workers",
    "checkpoint_dir",
    "processor_type",
    "project",
    "output",
)


def job_hash(job_dict: dict, folder: Path) -> str:
    """A hash of the training parameters and of the export's chips and metadata."""
    params = {k: v for k, v in job_dict.items() if k not in _NOT_HASHED}
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode())
    for name in ("esri_model_definition.emd", "esri_accumulated_stats.json", "map.txt"):
        path = folder / name
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:20]


def default_folder(output: str, checkpoint_dir: str | None) -> Path:
    if checkpoint_dir:
        return Path(checkpoint_dir)
    out = Path(output)
    return out.with_name(out.stem + ".checkpoints")


class Checkpoints:
    def __init__(self, folder: Path, job_hash: str, log=None) -> None:
        self.folder, self.hash = Path(folder), job_hash
        self.log = log or (lambda message, level="info": None)

    def _write(self, name: str, obj: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{name}.tmp"
        torch.save(obj, tmp)
        os.replace(tmp, self.folder / name)

    def save(self, state: dict, best_weights: dict | None = None) -> None:
        """After an epoch: the state (and the best weights when this epoch is the best)."""
        if best_weights is not None:
            self._write(BEST, {"job_hash": self.hash, "model": best_weights})
        self._write(LAST, {"job_hash": self.hash, **state})

    def _read(self, name: str) -> dict | None:
        path = self.folder / name
        if not path.is_file():
            return None
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a torn or foreign file: start again
            self.log(f"Checkpoint {path} is unreadable ({exc}); training starts afresh.", "warning")
            return None
        return data if isinstance(data, dict) else None

    def load(self) -> tuple[dict, dict | None] | None:
        """(last state, best weights) of this job, or None."""
        last = self._read(LAST)
        if last is None:
            return None
        if last.get("job_hash") != self.hash:
            self.log(
                f"The checkpoint in {self.folder} is of another job (other parameters or "
                "data); training starts afresh.",
                "warning",
            )
            return None
        best = self._read(BEST)
        best = best.get("model") if best and best.get("job_hash") == self.hash else None
        return last, best

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


# --- PRETRAINED_MODEL ----------------------------------------------------------------------


def _map_rows(key: str, old, new, probe_rows: int, mapping: dict, n_old: int, n_new: int):
    """`new` with the rows of `old` copied for the mapped output classes (dim 0 = outputs)."""
    group = probe_rows - new.shape[0]  # rows per class
    if group <= 0 or new.shape[0] % group:
        return None
    offset = new.shape[0] // group - n_new  # rows before the classes in each group (YOLO: 5)
    if old.shape[0] != group * (offset + n_old) or old.shape[1:] != new.shape[1:]:
        return None
    out = new.clone()
    if "bbox_pred" in key:  # class-major: `group` rows per class
        for j, i in mapping.items():
            out[j * group : (j + 1) * group] = old[i * group : (i + 1) * group]
        return out
    per_old, per_new = offset + n_old, offset + n_new  # group-major: [group][offset + classes]
    for a in range(group):
        out[a * per_new : a * per_new + offset] = old[a * per_old : a * per_old + offset]
        for j, i in mapping.items():
            out[a * per_new + offset + j] = old[a * per_old + offset + i]
    return out


def load_pretrained(task, path: str, log) -> dict:
    """Load a .dlpk's weights into the task's model, mapping the output classes by name."""
    from .package import read_package

    package = read_package(path)  # a .dlpk, or a .emd with its weights beside it
    emd, state = package.emd, package.state_dict
    old_names, new_names = output_names(emd), task.output_names
    match = check_pretrained(emd, task.model_type, task.backbone, new_names, path)
    mapping = index_mapping(old_names, new_names, match)
    model_sd = task.model.state_dict()
    same_classes = old_names == new_names
    probe = None if same_classes else task.build(task.num_outputs + 1).state_dict()
    loaded, fresh = {}, []
    for key, new in model_sd.items():
        old = state.get(key)
        if old is None:
            fresh.append(key)
            continue
        class_rows = probe is not None and probe[key].shape != new.shape
        if not class_rows and old.shape == new.shape:
            loaded[key] = old
        elif class_rows:
            rows = _map_rows(
                key, old, new, probe[key].shape[0], mapping, len(old_names), len(new_names)
            )
            if rows is None:
                fresh.append(key)
            else:
                loaded[key] = rows
        else:
            raise InputError(
                f"PRETRAINED_MODEL '{path}' does not fit this data ({key}: "
                f"{tuple(old.shape)} in the package, {tuple(new.shape)} here): it was trained "
                "on another number of bands. Export the same bands, or train without it."
            )
    task.model.load_state_dict(loaded, strict=False)
    log(f"PRETRAINED_MODEL {Path(path).name}: {len(loaded)} tensors loaded; {match.describe(path)}")
    return {"path": str(path), "matched": list(match.pairs), "fresh_tensors": len(fresh)}
