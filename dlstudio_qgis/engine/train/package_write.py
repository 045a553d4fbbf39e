"""Writing deep learning packages (.dlpk) atomically: aside, then moved into place.

The format and its checks are in package.py, which reads packages; a package this module
writes always passes them.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import stat
import tempfile
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path

from . import report
from .package import (
    LOSS_GRAPH,
    METRICS_HTML,
    SHOW_RESULTS,
    PackageError,
    PackageExistsError,
    _unsafe_name,
    check_emd,
)


def write_dlpk(
    output,
    *,
    emd: dict,
    state_dict,
    history: list[dict],
    metrics: dict,
    preview_png: bytes | None = None,
    overwrite: bool = False,
    extra_files: dict[str, bytes] | None = None,
) -> Path:
    """Write the package `output` (.dlpk) and return its path.

    `emd` is the model definition (its ModelFile is set to ``<stem>.pth``; Framework defaults
    to PyTorch); `state_dict` maps parameter names to tensors; `history` has one dict per epoch
    (``epoch``, ``train_loss``, ``valid_loss``, ``lr`` and any metrics); `metrics` the final
    figures. The zip is written to a temporary file beside `output` and moved into place, so a
    failure (or a kill) never leaves a partial .dlpk under the output's name.
    """
    import torch

    output = Path(output)
    if output.suffix.lower() != ".dlpk":
        raise PackageError(f"The output '{output}' must be a .dlpk file.")
    if output.is_dir():
        raise PackageError(f"The output '{output}' is a folder; give a .dlpk file name.")
    if (output.exists() or output.is_symlink()) and not overwrite:
        raise PackageExistsError(
            f"The output package '{output}' already exists; set OVERWRITE_MODEL to replace "
            "it, or choose another name."
        )
    stem = output.stem
    emd = _plain(copy.deepcopy(dict(emd)))
    emd.setdefault("Framework", "PyTorch")
    emd["ModelFile"] = f"{stem}.pth"
    check_emd(emd, f"the model definition for '{output.name}'")
    weights = _tensors_only(state_dict, torch)

    files: dict[str, bytes] = {}
    loss_graph = report.loss_png(history)
    files[METRICS_HTML] = report.render_html(emd, history, metrics, loss_graph).encode("utf-8")
    files[LOSS_GRAPH] = loss_graph
    if preview_png is not None:
        files[SHOW_RESULTS] = bytes(preview_png)
    reserved = {f"{stem}.emd", f"{stem}.pth", *files}
    for name, data in (extra_files or {}).items():
        problem = _unsafe_name(name)
        if problem:
            raise PackageError(f"Cannot add '{name}' to the package: {problem}.")
        if name in reserved:
            raise PackageError(f"Cannot add '{name}' to the package: the package writes it.")
        files[name] = bytes(data)

    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".partial", dir=output.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            with zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
                text = json.dumps(emd, indent=2, ensure_ascii=False, allow_nan=False)
                zf.writestr(_info(f"{stem}.emd", zipfile.ZIP_DEFLATED), text.encode("utf-8"))
                # floats barely compress: stored, so the weights are written at disk speed
                with zf.open(
                    _info(f"{stem}.pth", zipfile.ZIP_STORED), "w", force_zip64=True
                ) as member:
                    torch.save(weights, member)
                for name, data in files.items():
                    method = zipfile.ZIP_STORED if name.endswith(".png") else zipfile.ZIP_DEFLATED
                    zf.writestr(_info(name, method), data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, output)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(output.parent)
    return output


def _info(name: str, method: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=time.localtime()[:6])
    info.compress_type = method
    info.external_attr = (stat.S_IFREG | 0o644) << 16
    return info


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _tensors_only(state_dict, torch) -> dict:
    if not isinstance(state_dict, Mapping) or not state_dict:
        raise PackageError("The weights to package must be a non-empty state dict.")
    out = {}
    for key, value in state_dict.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise PackageError(
                f"The state dict holds {type(key).__name__} {key!r}: {type(value).__name__}; a "
                "package's weights are parameter names mapped to tensors only."
            )
        out[key] = value.detach().cpu()
    return out


def _plain(obj):
    """JSON-ready: numpy and torch scalars/arrays as lists, NaN and infinities as None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [_plain(v) for v in obj]
    if isinstance(obj, bool | int | str) or obj is None:
        return obj
    if hasattr(obj, "__fspath__"):
        return os.fspath(obj)
    if hasattr(obj, "tolist"):
        return _plain(obj.tolist())
    if hasattr(obj, "item"):
        return _plain(obj.item())
    raise PackageError(f"The model definition holds a {type(obj).__name__}, which JSON cannot.")
