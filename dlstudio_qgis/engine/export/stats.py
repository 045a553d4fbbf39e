"""Band statistics accumulated over the chips written, merged exactly across processes.

Each chip gives per band (count, mean, M2, min, max) of its valid pixels (nodata excluded);
partial results merge with Chan's parallel formula, so the mean and standard deviation are
those of all the pixels, whatever the order and the number of workers.
"""

from __future__ import annotations


def merge_moments(a, b):
    """Merge two (bands, 5) arrays of (count, mean, M2, min, max)."""
    import numpy as np

    if a is None:
        return b.copy()
    if b is None:
        return a
    na, nb = a[:, 0], b[:, 0]
    n = na + nb
    safe = np.where(n > 0, n, 1)
    delta = b[:, 1] - a[:, 1]
    out = np.empty_like(a)
    out[:, 0] = n
    out[:, 1] = np.where(n > 0, a[:, 1] + delta * nb / safe, 0.0)
    out[:, 2] = a[:, 2] + b[:, 2] + delta**2 * na * nb / safe
    out[:, 3] = np.minimum(a[:, 3], b[:, 3])
    out[:, 4] = np.maximum(a[:, 4], b[:, 4])
    return out


def summary(moments, band_numbers, band_names) -> list[dict]:
    """One dict per band: Band (1-based), BandName, Count, Min, Max, Mean, StdDev."""
    import math

    rows = []
    for i, band in enumerate(band_numbers):
        if moments is None or moments[i, 0] == 0:
            n, lo, hi, mean, std = 0, None, None, None, None
        else:
            n = int(moments[i, 0])
            lo, hi = float(moments[i, 3]), float(moments[i, 4])
            mean = float(moments[i, 1])
            std = math.sqrt(float(moments[i, 2]) / n)
        rows.append({
            "Band": band, "BandName": band_names[i], "Count": n,
            "Min": lo, "Max": hi, "Mean": mean, "StdDev": std,
        })  # fmt: skip
    return rows


def arcgis_state(moments) -> list[dict]:
    """The accumulator as ArcGIS keeps it (BandStatsState: Min, Max, M1, M2, Num)."""
    out = []
    for row in [] if moments is None else moments.tolist():
        n, mean, m2, lo, hi = row
        out.append({"Min": lo if n else None, "Max": hi if n else None, "M1": mean, "M2": m2,
                    "Num": int(n)})  # fmt: skip
    return out
