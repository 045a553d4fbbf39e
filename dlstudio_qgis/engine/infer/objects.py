"""Detect Objects: a detector over the raster, chip by chip, into georeferenced features.

Chips overlap by the padding. A detection belongs to the chip whose core (the chip less its
padding) holds its centre; with ``exclude_pad_detections`` the others are dropped, so an
object on a chip border comes out of one chip only. Then a class-aware non-maximum
suppression (``nms_overlap``) removes what is left of duplicates across chip borders, and with
RUN_NMS a suppression across classes (MAX_OVERLAP_RATIO). Both run row by row of chips over
the last two rows, so memory stays bounded however large the raster.
"""

from __future__ import annotations

import json
import time

import numpy as np
import torch
from torchvision.ops import batched_nms, nms

from .job import InferJob
from .model import InferModel, set_detector_thresholds
from .outputs import move_into_place, partial_path, remove_partial
from .raster import ChipReader, Region, batches, grid, padding_of, read_ahead


@torch.inference_mode()
def predict(m: InferModel, x: torch.Tensor, tta: bool, nms_overlap: float) -> list[dict]:
    """Per chip: boxes (K, 4) in chip pixels, scores, labels (1..n), masks (K, H, W) or None."""
    size = x.shape[-1]
    flips = ((False, False), (True, False), (False, True)) if tta else ((False, False),)
    runs = []
    for hflip, vflip in flips:
        dims = [d for d, f in ((3, hflip), (2, vflip)) if f]
        xi = torch.flip(x, dims) if dims else x
        out = m.model(list(xi))
        for p in out:
            boxes = p["boxes"].float()
            masks = p.get("masks")
            if hflip:
                boxes = torch.stack([size - boxes[:, 2], boxes[:, 1], size - boxes[:, 0],
                                     boxes[:, 3]], 1)  # fmt: skip
                masks = torch.flip(masks, [-1]) if masks is not None else None
            if vflip:
                boxes = torch.stack([boxes[:, 0], size - boxes[:, 3], boxes[:, 2],
                                     size - boxes[:, 1]], 1)  # fmt: skip
                masks = torch.flip(masks, [-2]) if masks is not None else None
            p["boxes"], p["masks"] = boxes, masks
        runs.append(out)
    chips = []
    for i in range(len(x)):
        parts = [r[i] for r in runs]
        boxes = torch.cat([p["boxes"] for p in parts]).cpu()
        scores = torch.cat([p["scores"].float() for p in parts]).cpu()
        labels = torch.cat([p["labels"] for p in parts]).cpu().long()
        masks = None
        if parts[0]["masks"] is not None:
            masks = torch.cat([p["masks"].float() for p in parts])[:, 0].cpu()
        if tta and len(boxes):
            keep = batched_nms(boxes, scores, labels, nms_overlap)
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
            masks = masks[keep] if masks is not None else None
        chips.append({"boxes": boxes, "scores": scores, "labels": labels, "masks": masks})
    return chips


_NOTHING = {"boxes": torch.zeros((0, 4)), "scores": torch.zeros(0),
            "labels": torch.zeros(0, dtype=torch.int64), "masks": None}  # fmt: skip


class RowSuppressor:
    """Non-maximum suppression over the detections of two consecutive chip rows at a time."""

    def __init__(self, nms_overlap: float, run_nms: bool, max_overlap_ratio: float) -> None:
        self.nms_overlap, self.run_nms, self.max_overlap = nms_overlap, run_nms, max_overlap_ratio
        self.previous: list[dict] = []  # detections of the last finished row, not yet written
        self.current: list[dict] = []

    def add(self, detections: list[dict]) -> None:
        self.current.extend(detections)

    def finish_row(self) -> list[dict]:
        """Close the current row; return the previous row's survivors (final now)."""
        merged = self._suppress(self.previous + self.current)
        n_prev = len(self.previous)
        done = [d for d in merged if d["_order"] < n_prev]
        self.previous = [d for d in merged if d["_order"] >= n_prev]
        self.current = []
        return done

    def flush(self) -> list[dict]:
        rest = self._suppress(self.previous + self.current)
        self.previous, self.current = [], []
        return rest

    def _suppress(self, dets: list[dict]) -> list[dict]:
        for i, d in enumerate(dets):
            d["_order"] = i
        if len(dets) < 2:
            return dets
        boxes = torch.tensor([d["box"] for d in dets], dtype=torch.float64)
        scores = torch.tensor([d["score"] for d in dets], dtype=torch.float64)
        labels = torch.tensor([d["label"] for d in dets])
        keep = batched_nms(boxes, scores, labels, self.nms_overlap)
        if self.run_nms and len(keep) > 1:
            keep = keep[nms(boxes[keep], scores[keep], self.max_overlap)]
        return [dets[i] for i in sorted(keep.tolist())]


def _mask_geometry(mask: np.ndarray, transform, tolerance: float):
    """The outline of a boolean mask as a GeoJSON geometry in map units, or None."""
    import shapely
    from rasterio.features import shapes
    from shapely.geometry import mapping, shape

    polys = [shape(g) for g, v in shapes(mask.astype(np.uint8), mask=mask, transform=transform)]
    if not polys:
        return None
    geom = shapely.union_all(polys).simplify(tolerance, preserve_topology=True)
    return mapping(geom) if not geom.is_empty else None


def detect_objects(job: InferJob, m: InferModel, ds, region: Region, reporter) -> dict:
    from affine import Affine

    args = job.arguments
    chip = m.chip_size
    pad = padding_of(args, chip)
    step = chip - 2 * pad
    cols, rows = grid(region, chip, pad)
    n_chips = len(cols) * len(rows)
    threshold, overlap = float(args["threshold"]), float(args["nms_overlap"])
    set_detector_thresholds(m.model, threshold, overlap)
    reporter.log(
        f"Detecting objects in {region.width} x {region.height} pixels: {n_chips} chips of "
        f"{chip} px (padding {pad} px, threshold {threshold:g}, nms_overlap {overlap:g}, "
        f"batch {args['batch_size']}, on {m.device.type.upper()})."
    )
    reader = ChipReader(ds, m.bands, chip, m.mean)
    origins = ((c - pad, r - pad, r) for r in rows for c in cols)
    suppressor = RowSuppressor(overlap, job.run_nms, float(job.max_overlap_ratio))
    region_box = (region.col0, region.row0, region.col0 + region.width, region.row0 + region.height)
    pixel = max(abs(ds.transform.a), abs(ds.transform.e))
    partial = partial_path(job.output)
    per_class: dict[str, int] = {}
    written = 0
    done = 0
    started = time.perf_counter()

    def write(fh, dets: list[dict]) -> None:
        nonlocal written
        for d in dets:
            value, name = m.class_of(d["label"] - 1)
            if d.get("geometry") is None:
                x0, y0, x1, y1 = d["box"]
                ring = [ds.transform * p for p in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))]
                ring.append(ring[0])
                d["geometry"] = {"type": "Polygon", "coordinates": [[list(p) for p in ring]]}
            props = {"class_value": value, "class_name": name, "confidence": round(d["score"], 6)}
            feature = {"type": "Feature", "geometry": d["geometry"], "properties": props}
            fh.write(json.dumps(feature) + "\n")
            per_class[name] = per_class.get(name, 0) + 1
            written += 1

    try:
        with open(partial, "w", encoding="utf-8") as fh:
            in_row = 0
            for batch in read_ahead(batches(reader, origins, args["batch_size"]), m.device):
                some = batch.valid.any(axis=(1, 2))  # chips with no data need no model
                preds = [_NOTHING] * len(some)
                if some.any():
                    x = m.normalise(batch.pixels[some])
                    found = iter(predict(m, x, args["test_time_augmentation"], overlap))
                    preds = [next(found) if s else _NOTHING for s in some]
                for (col, row), p, valid in zip(batch.origins, preds, batch.valid, strict=True):
                    dets = _chip_detections(
                        p, col, row, pad, step, region_box, threshold, valid,
                        args["exclude_pad_detections"], m.task == "instance_segmentation",
                        ds.transform, pixel, Affine, (ds.width, ds.height),
                    )  # fmt: skip
                    suppressor.add(dets)
                in_row += len(batch.origins)
                done += len(batch.origins)
                if in_row == len(cols):
                    write(fh, suppressor.finish_row())
                    in_row = 0
                reporter.progress(100.0 * done / n_chips)
            write(fh, suppressor.flush())
    except BaseException:
        remove_partial(partial)
        raise
    move_into_place(partial, job.output)
    seconds = time.perf_counter() - started
    summary = ", ".join(f"{n} {k}" for k, n in sorted(per_class.items())) or "none"
    reporter.log(f"Detected {written} objects ({summary}) in {seconds:.1f} s.")
    return {
        "chips": n_chips,
        "detections": written,
        "per_class": per_class,
        "pixels_per_second": region.width * region.height / max(seconds, 1e-9),
        "loop_seconds": seconds,
    }


def _chip_detections(p, col, row, pad, step, region_box, threshold, valid, exclude_pad,
                     with_masks, transform, pixel, Affine, raster_size) -> list[dict]:  # fmt: skip
    """The chip's detections kept by threshold, region, validity and (optionally) the core."""
    scores = p["scores"]
    if not len(scores):
        return []
    keep = scores >= threshold
    boxes = p["boxes"][keep].numpy().astype(np.float64)
    scores, labels = scores[keep].numpy(), p["labels"][keep].numpy()
    masks = p["masks"][keep].numpy() if with_masks and p["masks"] is not None else None
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    size = valid.shape[0]
    inside = valid[np.clip(cy.astype(int), 0, size - 1), np.clip(cx.astype(int), 0, size - 1)]
    if exclude_pad:
        c0, r0 = col + pad, row + pad
        x0, y0 = max(c0, region_box[0]), max(r0, region_box[1])
        x1, y1 = min(c0 + step, region_box[2]), min(r0 + step, region_box[3])
    else:
        x0, y0, x1, y1 = region_box
    gx, gy = cx + col, cy + row
    inside &= (gx >= x0) & (gx < x1) & (gy >= y0) & (gy < y1)
    out = []
    for i in np.nonzero(inside)[0]:
        b = boxes[i] + (col, row, col, row)
        w, h = raster_size
        b = np.clip(b, 0, [w, h, w, h])  # not beyond the raster (the padding is fill)
        d = {"box": b.tolist(), "score": float(scores[i]), "label": int(labels[i])}
        if masks is not None:
            chip_transform = transform * Affine.translation(col, row)
            d["geometry"] = _mask_geometry((masks[i] > 0.5) & valid, chip_transform, pixel / 2)
        out.append(d)
    return out
