"""Object detection accuracy: detections matched to ground truth by polygon IoU, per class.

The IoU is that of the polygons (a box is a polygon), so Mask R-CNN outlines are judged by
their shapes. Candidate pairs come from an STRtree query (bounding boxes that intersect),
and every IoU is computed in one vectorized shapely call.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass

from ..protocol import InputError
from . import metrics
from .job import AccuracyJob


@dataclass
class Objects:
    """Polygons with their class value and confidence (numpy arrays of one length)."""

    geoms: object  # np.ndarray of shapely geometries
    values: list
    confidence: object  # np.ndarray of float
    skipped: Counter

    def __len__(self) -> int:
        return len(self.values)


def read_objects(path: str, what: str, classes: bool = True) -> Objects:
    """The polygons of a GeoJSON FeatureCollection; invalid ones repaired, others skipped.
    With `classes`, each needs a ``class_value`` property (a mask needs none)."""
    import numpy as np
    import shapely

    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as exc:
        raise InputError(f"Cannot read the {what} '{path}': {exc.strerror or exc}.") from None
    except ValueError as exc:
        raise InputError(f"The {what} file '{path}' is not valid GeoJSON: {exc}.") from None
    features = data.get("features") if isinstance(data, dict) else None
    if not isinstance(features, list):
        raise InputError(f"The {what} file '{path}' is not a GeoJSON FeatureCollection.")
    texts, values, conf, skipped = [], [], [], Counter()
    for feature in features:
        props = (feature.get("properties") if isinstance(feature, dict) else None) or {}
        value = props.get("class_value")
        if classes and (value is None or value == ""):
            skipped["without a class value"] += 1
            continue
        geometry = feature.get("geometry") if isinstance(feature, dict) else None
        texts.append(json.dumps(geometry) if geometry else "null")
        values.append(value)
        c = props.get("confidence")
        conf.append(1.0 if c is None else float(c))
    # one vectorized GEOS parse, repair and check (a loop of shape() is several times slower)
    geoms = shapely.from_geojson(np.asarray(texts, dtype=object), on_invalid="ignore")
    geoms = polygonal(geoms)
    keep = np.nonzero(~shapely.is_missing(geoms))[0]
    if len(keep) < len(texts):
        skipped["without a polygon"] += len(texts) - len(keep)
    return Objects(geoms[keep], [values[i] for i in keep],
                   np.asarray(conf, dtype=float)[keep], skipped)  # fmt: skip


def polygonal(geoms):
    """The polygon parts of each geometry (repaired where invalid); None where it has no
    area (points, lines, empty or unreadable geometries)."""
    import numpy as np
    import shapely

    geoms = np.asarray(geoms, dtype=object).copy()
    present = ~shapely.is_missing(geoms)
    bad = present & ~shapely.is_valid(np.where(present, geoms, None))
    for i in np.nonzero(bad)[0]:
        geoms[i] = shapely.make_valid(geoms[i])
    types = shapely.get_type_id(geoms)  # -1 for None
    mixed = np.nonzero(types == 7)[0]  # collections (what make_valid may return)
    for i in mixed:
        parts = [g for g in shapely.get_parts(geoms[i]) if shapely.get_type_id(g) in (3, 6)]
        geoms[i] = shapely.union_all(parts) if parts else None
    types = shapely.get_type_id(geoms)
    area = shapely.area(geoms)
    ok = np.isin(types, (3, 6)) & (np.nan_to_num(area) > 0)
    geoms[~ok] = None
    return geoms


def centres_inside(objects: Objects, mask) -> object:
    """A boolean array: whether each object's centre (centroid) is inside or on `mask`."""
    import numpy as np
    import shapely

    if len(objects) == 0:
        return np.zeros(0, dtype=bool)
    centres = shapely.centroid(objects.geoms)
    return shapely.intersects_xy(mask, shapely.get_x(centres), shapely.get_y(centres))


def _subset(objects: Objects, keep) -> Objects:
    import numpy as np

    idx = np.nonzero(keep)[0]
    return Objects(
        objects.geoms[idx], [objects.values[i] for i in idx], objects.confidence[idx],
        objects.skipped,
    )  # fmt: skip


def iou_candidates(dets, gts) -> list[tuple]:
    """For each detection: (indices of ground truth it overlaps, the IoUs)."""
    import numpy as np
    import shapely

    out = [(np.zeros(0, dtype=np.int64), np.zeros(0))] * len(dets)
    if len(dets) == 0 or len(gts) == 0:
        return out
    tree = shapely.STRtree(gts)
    pairs = tree.query(dets, predicate="intersects")
    if pairs.shape[1] == 0:
        return out
    d, g = pairs
    inter = shapely.area(shapely.intersection(dets[d], gts[g]))
    union = shapely.area(dets)[d] + shapely.area(gts)[g] - inter
    iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    order = np.argsort(d, kind="stable")
    d, g, iou = d[order], g[order], iou[order]
    starts = np.searchsorted(d, np.arange(len(dets) + 1))
    return [(g[starts[i]:starts[i + 1]], iou[starts[i]:starts[i + 1]])
            for i in range(len(dets))]  # fmt: skip


def evaluate(job: AccuracyJob, reporter) -> dict:
    """Per-class and overall figures for the job's detections against its ground truth."""
    import numpy as np
    import shapely

    dets = read_objects(job.detections, "detections")
    gts = read_objects(job.ground_truth, "ground truth")
    reporter.progress(10)
    masked = {"detections": 0, "ground_truth": 0}
    if job.mask:
        mask_objects = read_objects(job.mask, "mask", classes=False)
        if len(mask_objects) == 0:
            raise InputError(
                "The mask has no polygons, so no object would count. Give mask polygons that "
                "cover the area to assess, or no mask."
            )
        mask = shapely.union_all(mask_objects.geoms)
        shapely.prepare(mask)
        keep_d, keep_g = centres_inside(dets, mask), centres_inside(gts, mask)
        masked = {"detections": int((~keep_d).sum()), "ground_truth": int((~keep_g).sum())}
        dets, gts = _subset(dets, keep_d), _subset(gts, keep_g)
    if len(gts) == 0:
        where = " inside the mask" if job.mask else ""
        raise InputError(
            f"There is no ground truth{where} to compare the detections with. Give a ground-"
            "truth layer with polygons (and class values) over the detections' area"
            + (", or a mask that covers them." if job.mask else ".")
        )
    labels = sorted(set(dets.values) | set(gts.values), key=metrics.label_key)
    classes = []
    for n, value in enumerate(labels):
        di = np.array([i for i, v in enumerate(dets.values) if v == value], dtype=np.int64)
        gi = np.array([i for i, v in enumerate(gts.values) if v == value], dtype=np.int64)
        candidates = iou_candidates(dets.geoms[di], gts.geoms[gi])
        order, tp = metrics.match_detections(dets.confidence[di], candidates, job.min_iou)
        row = metrics.class_detection_metrics(value, tp, len(gi))
        row["name"] = job.classes.get(str(value), str(value))
        classes.append(row)
        reporter.progress(10 + 80 * (n + 1) / len(labels))
    summary = metrics.detection_summary(classes)
    return {
        "tool": job.tool,
        "min_iou": job.min_iou,
        "classes": classes,
        "summary": summary,
        "masked_out": masked,
        "skipped": {"detections": dict(dets.skipped), "ground_truth": dict(gts.skipped)},
    }
