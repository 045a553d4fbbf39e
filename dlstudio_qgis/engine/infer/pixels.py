"""Classify Pixels: a pixel classifier over the raster, chip by chip, into a class raster.

Chips overlap by the padding on every side and only each chip's centre (its core) is kept:
the cores tile the region exactly, so there are no seams at chip borders. Pixels where the
raster has no data get 0 (no class).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from .job import InferJob
from .model import InferModel
from .outputs import ClassRasterWriter, move_into_place, partial_path, remove_partial
from .raster import ChipReader, Region, batches, grid, padding_of, read_ahead

#: flips for test-time augmentation: (dims to flip) of a (N, C, H, W) tensor
TTA_FLIPS = ((), (3,), (2,), (2, 3))


@torch.inference_mode()
def class_probabilities(m: InferModel, x: torch.Tensor, tta: bool) -> torch.Tensor:
    """(N, classes + 1, H, W) scores: softmax, averaged over flips with `tta`."""
    if not tta:
        return m.model(x)
    total = None
    for dims in TTA_FLIPS:
        xi = torch.flip(x, dims) if dims else x
        p = torch.softmax(m.model(xi).float(), 1)
        p = torch.flip(p, dims) if dims else p
        total = p if total is None else total + p
    return total


def best_class(scores: torch.Tensor) -> np.ndarray:
    """argmax over dim 1 of (N, K, H, W) scores, as int64 numpy.

    torch's argmax over a short, strided dimension is slow on the CPU (20 ms for 4 chips of
    256 px and 3 classes, 10% of a UNET's forward pass); K running maxima are ~10x faster.
    """
    if scores.shape[1] > 16:
        return scores.argmax(1).to("cpu", torch.int64).numpy()
    best, index = scores[:, 0].clone(), torch.zeros(scores[:, 0].shape, dtype=torch.int64,
                                                     device=scores.device)  # fmt: skip
    for k in range(1, scores.shape[1]):
        better = scores[:, k] > best
        index.masked_fill_(better, k)
        best = torch.maximum(best, scores[:, k])
    return index.cpu().numpy()


def classify_pixels(job: InferJob, m: InferModel, ds, region: Region, reporter) -> dict:
    args = job.arguments
    chip = m.chip_size
    pad = padding_of(args, chip)
    step = chip - 2 * pad
    cols, rows = grid(region, chip, pad)
    n_chips = len(cols) * len(rows)
    reporter.log(
        f"Classifying {region.width} x {region.height} pixels in {n_chips} chips of {chip} px "
        f"(padding {pad} px, batch {args['batch_size']}, on {m.device.type.upper()})."
    )
    lookup = np.asarray([0, *m.values], dtype=np.int64)  # model output index -> class value
    reader = ChipReader(ds, m.bands, chip, m.mean)
    origins = ((c - pad, r - pad, r) for r in rows for c in cols)
    partial = partial_path(job.output)
    window_transform = ds.window_transform(((region.row0, region.row0 + region.height),
                                            (region.col0, region.col0 + region.width)))  # fmt: skip
    writer = ClassRasterWriter(
        partial, region.width, region.height, ds.crs, window_transform, m.classes
    )
    counts = np.zeros(len(lookup), np.int64)
    started = time.perf_counter()
    done = 0
    try:
        strip = np.zeros((step, region.width), writer.dtype)
        in_row = 0
        for batch in read_ahead(batches(reader, origins, args["batch_size"]), m.device):
            core_valid = batch.valid[:, pad : pad + step, pad : pad + step]
            index = np.zeros(core_valid.shape, np.int64)
            some = batch.valid.any(axis=(1, 2))  # chips with no data need no model
            if some.any():
                x = m.normalise(batch.pixels[some])
                scores = class_probabilities(m, x, args["test_time_augmentation"])
                index[some] = best_class(scores[:, :, pad : pad + step, pad : pad + step])
                index[~core_valid] = 0
            row = batch.tag
            h = min(step, region.row0 + region.height - row)
            for (col, _), idx in zip(batch.origins, index, strict=True):
                x0 = col + pad - region.col0
                w = min(step, region.width - x0)
                core = idx[:h, :w]
                counts += np.bincount(core.ravel(), minlength=len(lookup))
                strip[:h, x0 : x0 + w] = lookup[core]
            in_row += len(batch.origins)
            done += len(batch.origins)
            if in_row == len(cols):
                writer.add(strip[:h])
                in_row = 0
            reporter.progress(100.0 * done / n_chips)
        writer.close()
    except BaseException:
        writer.abort()
        remove_partial(partial)
        raise
    move_into_place(partial, job.output)
    seconds = time.perf_counter() - started
    pixel_counts = {str(int(v)): int(n) for v, n in zip(lookup, counts, strict=True)}
    classified = sum(n for v, n in pixel_counts.items() if v != "0")
    reporter.log(
        f"Classified {classified} of {region.width * region.height} pixels in "
        f"{seconds:.1f} s ({region.width * region.height / max(seconds, 1e-9):,.0f} pixels/s)."
    )
    return {
        "chips": n_chips,
        "pixel_counts": pixel_counts,
        "width": region.width,
        "height": region.height,
        "pixels_per_second": region.width * region.height / max(seconds, 1e-9),
        "loop_seconds": seconds,
    }
