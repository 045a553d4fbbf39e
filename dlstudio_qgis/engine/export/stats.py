"""Band statistics accumulated over the chips written, merged exactly across processes.

Integer pixels of up to 16 bits are summed exactly (`ExactSums`: count, sum, sum of squares,
min, max per band, as Python integers), so the result is the same to the bit whatever the
order and the number of workers. Other types give per chip (count, mean, M2, min, max) of the
valid pixels (nodata excluded), merged with Chan's parallel formula, in batch order. Either way
the mean and standard deviation are those of all the pixels.
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


#: integer types summed exactly (their squares fit 32 bits, the sums are Python integers)
EXACT_DTYPES = ("uint8", "int8", "uint16", "int16")


class ExactSums:
    """Per band: count, sum, sum of squares, min, max of the valid pixels, exact."""

    __slots__ = ("n", "s", "ss", "lo", "hi")

    def __init__(self, bands: int) -> None:
        self.n, self.s, self.ss = [0] * bands, [0] * bands, [0] * bands
        self.lo: list = [None] * bands
        self.hi: list = [None] * bands

    def add(self, n, s, ss, lo, hi) -> None:
        """Add per-band lists (a chip's, or another accumulator's)."""
        for b in range(len(self.n)):
            if not n[b]:
                continue
            self.n[b] += n[b]
            self.s[b] += s[b]
            self.ss[b] += ss[b]
            self.lo[b] = lo[b] if self.lo[b] is None else min(self.lo[b], lo[b])
            self.hi[b] = hi[b] if self.hi[b] is None else max(self.hi[b], hi[b])

    def merge(self, other: ExactSums) -> ExactSums:
        self.add(other.n, other.s, other.ss, other.lo, other.hi)
        return self

    def moments(self):
        """The (bands, 5) array of (count, mean, M2, min, max) that `merge_moments` takes."""
        import numpy as np

        out = np.zeros((len(self.n), 5))
        out[:, 3], out[:, 4] = np.inf, -np.inf
        for b, n in enumerate(self.n):
            if n:
                s, ss = self.s[b], self.ss[b]
                # exact: M2 = sum(x^2) - sum(x)^2 / n, computed on Python integers
                out[b] = (n, s / n, (n * ss - s * s) / n, self.lo[b], self.hi[b])
        return out


def band_sums(data, valid, nodata) -> tuple[list, list, list, list, list]:
    """Per band (count, sum, sum of squares, min, max) of the valid pixels of integer
    (bands, rows, cols) `data` of up to 16 bits, as lists of Python integers.

    Without a mask (no nodata, no padding) the pixels are reduced as they lie in memory,
    pixel-interleaved, column by column: one pass for the sums, one for the squares.
    """
    import numpy as np

    bands, h, w = data.shape
    mask = None
    if nodata is not None:
        mask = data != nodata
    if valid is not None:
        v = np.broadcast_to(valid, data.shape)
        mask = v if mask is None else mask & v
    if mask is not None:
        out: tuple[list, list, list, list, list] = ([], [], [], [], [])
        for b in range(bands):
            x = data[b][mask[b]].astype(np.int64)
            n = int(x.size)
            row = (n, int(x.sum()), int(x @ x), int(x.min()), int(x.max())) if n else (
                0, 0, 0, None, None)  # fmt: skip
            for acc, value in zip(out, row, strict=True):
                acc.append(value)
        return out
    x = data.transpose(1, 2, 0)
    if not x.flags.c_contiguous:
        x = np.ascontiguousarray(x)
    x = x.reshape(h, w * bands)
    if x.dtype == np.uint8 and h < 65536:  # column sums fit 32 bits (16 up to 257 rows)
        s = np.add.reduce(x, axis=0, dtype=np.uint16 if h <= 257 else np.uint32)
        sq = x.astype(np.uint16)
        np.multiply(sq, sq, out=sq)
        ss = np.add.reduce(sq, axis=0, dtype=np.uint32)
    else:
        x64 = x.astype(np.int64)
        s = np.add.reduce(x64, axis=0)
        ss = np.add.reduce(x64 * x64, axis=0)
    s = s.reshape(w, bands).sum(axis=0, dtype=np.int64).tolist()
    ss = ss.reshape(w, bands).sum(axis=0, dtype=np.int64).tolist()
    lo = np.minimum.reduce(x, axis=0).reshape(w, bands).min(axis=0).tolist()
    hi = np.maximum.reduce(x, axis=0).reshape(w, bands).max(axis=0).tolist()
    return [h * w] * bands, s, ss, lo, hi


def combine(parts):
    """Merge batch results in the order given: ExactSums, or (bands, 5) moments arrays."""
    total = None
    for part in parts:
        if isinstance(part, ExactSums):
            total = ExactSums(len(part.n)).merge(part) if total is None else total.merge(part)
        else:
            total = merge_moments(total, part)
    return total.moments() if isinstance(total, ExactSums) else total


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
