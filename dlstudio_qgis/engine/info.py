"""``info``: what the worker's Python has (versions, CUDA devices).

Every import is guarded: a missing or broken package is reported in the result, not a crash,
so the plugin can tell the user what to install.
"""

from __future__ import annotations

import importlib
import platform
import sys

HELP = "report the worker's Python, package versions and CUDA devices"

PACKAGES = ("numpy", "torch", "torchvision", "rasterio", "shapely")


def add_arguments(parser) -> None:  # noqa: ARG001 - no options
    return None


def _version(name: str) -> tuple[str | None, str | None]:
    try:
        module = importlib.import_module(name)
    except Exception as e:  # ImportError, or a broken build (e.g. a CUDA torchvision)
        return None, f"{type(e).__name__}: {e}".strip()[:500]
    return str(getattr(module, "__version__", "unknown")), None


def _cuda() -> dict:
    out: dict = {"available": False, "version": None, "device_count": 0, "devices": []}
    try:
        import torch
    except Exception:
        return out
    out["version"] = getattr(torch.version, "cuda", None)
    try:
        out["available"] = bool(torch.cuda.is_available())
        if out["available"]:
            n = torch.cuda.device_count()
            out["device_count"] = n
            for i in range(n):
                props = torch.cuda.get_device_properties(i)
                out["devices"].append(
                    {"index": i, "name": props.name,
                     "memory_gib": round(props.total_memory / 2**30, 1),
                     "capability": f"{props.major}.{props.minor}"}
                )  # fmt: skip
    except Exception as e:
        out["error"] = f"{type(e).__name__}: {e}"[:500]
    mps = getattr(getattr(torch, "backends", None), "mps", None)
    out["mps"] = bool(mps and mps.is_available())
    return out


def run(params: dict, reporter) -> dict:
    versions, errors = {}, {}
    for i, name in enumerate(PACKAGES):
        version, error = _version(name)
        versions[name] = version
        if error:
            errors[name] = error
            reporter.log(f"{name} is not usable: {error}", "warning")
        reporter.progress(100.0 * (i + 1) / (len(PACKAGES) + 1))
    gdal = None
    if versions.get("rasterio"):
        import rasterio

        gdal = getattr(rasterio, "__gdal_version__", None)
    cuda = _cuda()
    device = "cuda" if cuda["available"] else ("mps" if cuda.get("mps") else "cpu")
    return {
        "python": platform.python_version(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "versions": versions,
        "gdal": gdal,
        "missing": sorted(errors),
        "errors": errors,
        "cuda": cuda,
        "cuda_available": cuda["available"],
        "device_names": [d["name"] for d in cuda["devices"]],
        "device": device,
    }
