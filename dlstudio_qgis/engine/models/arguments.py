"""The model arguments of the Train Deep Learning Model tool, read leniently.

Names are matched case-insensitively (``grids`` or ``GRIDS``); values may be the Python/JSON
values or their text as a user types it in a Processing dialog (``"[4, 2, 1]"``, ``"True"``).
"""

from __future__ import annotations

import ast
import json
from typing import Any


class ModelArgumentError(ValueError):
    """A model argument has a value the model cannot use."""


def _parse(name: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for parse in (json.loads, ast.literal_eval):
        try:
            return parse(text)
        except (ValueError, SyntaxError):
            continue
    raise ModelArgumentError(f"argument {name}: cannot read {value!r}")


def get(arguments: dict | None, name: str, default: Any) -> Any:
    """The argument's value (parsed from text if needed), or ``default``."""
    for key, value in (arguments or {}).items():
        if str(key).lower() == name.lower():
            if value is None or (isinstance(value, str) and not value.strip()):
                return default
            return _parse(name, value)
    return default


def _numbers(name: str, value: Any) -> list[float]:
    values = value if isinstance(value, (list, tuple)) else [value]
    try:
        numbers = [float(v) for v in values]
    except (TypeError, ValueError):
        raise ModelArgumentError(f"argument {name}: expected numbers, got {value!r}") from None
    if not numbers or any(n <= 0 for n in numbers):
        raise ModelArgumentError(f"argument {name}: expected positive numbers, got {value!r}")
    return numbers


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    raise ModelArgumentError(f"argument {name}: expected true or false, got {value!r}")


def default_grids(chip_size: int) -> list[int]:
    """Grids of cells 16, 32, 64... pixels wide, down to one cell: [4, 2, 1] for 64-pixel chips."""
    grids, grid = [], max(1, chip_size // 16)
    while grid > 1:
        grids.append(grid)
        grid //= 2
    return grids + [1]


def ssd_config(arguments: dict | None, chip_size: int) -> dict:
    """SSD's grids (cells per side, one feature map each), zooms and (height, width) ratios.

    ``ratios`` is a list of pairs, e.g. ``[[1.0, 1.0], [1.0, 0.5]]``: a square box, and one whose
    horizontal side is half the vertical one. A single pair may be given flat (``[1.0, 0.5]``).
    """
    grids = [int(g) for g in _numbers("grids", get(arguments, "grids", default_grids(chip_size)))]
    zooms = _numbers("zooms", get(arguments, "zooms", [1.0]))
    raw = get(arguments, "ratios", [[1.0, 1.0]])
    if isinstance(raw, (list, tuple)) and raw and not isinstance(raw[0], (list, tuple)):
        if len(raw) != 2:
            raise ModelArgumentError(
                f"argument ratios: expected [height, width] pairs, e.g. [[1, 1], [1, 0.5]], "
                f"got {raw!r}"
            )
        raw = [raw]
    ratios = [_numbers("ratios", pair) for pair in (raw if isinstance(raw, (list, tuple)) else [])]
    if not ratios or any(len(pair) != 2 for pair in ratios):
        raise ModelArgumentError(f"argument ratios: expected [height, width] pairs, got {raw!r}")
    if any(g < 1 or g > chip_size for g in grids):
        raise ModelArgumentError(f"argument grids: each grid must be 1 to {chip_size}, got {grids}")
    return {"grids": grids, "zooms": zooms, "ratios": [tuple(p) for p in ratios]}


def pspnet_config(arguments: dict | None) -> dict:
    raw = get(arguments, "PYRAMID_SIZES", [1, 2, 3, 6])
    sizes = [int(s) for s in _numbers("PYRAMID_SIZES", raw)]
    use_unet = _flag("USE_UNET", get(arguments, "USE_UNET", True))
    return {"pyramid_sizes": sizes, "use_unet": use_unet}


def retinanet_config(arguments: dict | None) -> dict:
    scales = _numbers("SCALES", get(arguments, "SCALES", [1.0, 0.8, 0.63]))
    ratios = _numbers("RATIOS", get(arguments, "RATIOS", [0.5, 1.0, 2.0]))
    return {"scales": scales, "ratios": ratios}
