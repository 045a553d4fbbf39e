"""Classify Objects: a feature classifier on a chip centred on each feature.

The chip is the model's chip size centred on the centre of the feature's bounding box, as the
export centres Labeled_Tiles chips on each sample. A feature larger than the chip is read
whole and resized to the chip. Features are read from the file one at a time and their
results written as they come, so memory does not grow with the number of features.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ..protocol import InputError
from .job import InferJob
from .model import InferModel
from .outputs import move_into_place, partial_path, remove_partial
from .raster import ChipReader, Region, read_ahead


def _features(path: str) -> Iterator[tuple[object, tuple[float, float, float, float]]]:
    """(id, bounds) of each feature of a newline-delimited GeoJSON file (or a collection)."""
    from shapely.geometry import shape

    try:
        fh = open(path, encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise InputError(f"Cannot read the features '{path}': {exc.strerror or exc}.") from None
    with fh:
        first = fh.read(1)
        fh.seek(0)
        if first == "{" and '"FeatureCollection"' in fh.readline()[:200]:
            fh.seek(0)
            lines = (json.dumps(f) for f in json.load(fh).get("features", []))
        else:
            fh.seek(0)
            lines = fh
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                feature = json.loads(line)
                geom = shape(feature["geometry"]) if feature.get("geometry") else None
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise InputError(f"Feature {n} of '{path}' is not GeoJSON: {exc}.") from None
            fid = feature.get("id", feature.get("properties", {}).get("id", n))
            yield fid, (geom.bounds if geom is not None and not geom.is_empty else None)


def classify_objects(job: InferJob, m: InferModel, ds, region: Region, reporter) -> dict:
    chip = m.chip_size
    batch_size = int(job.arguments["batch_size"])
    reader = ChipReader(ds, m.bands, chip, m.mean)
    inverse = ~ds.transform
    bounds = (region.col0, region.row0, region.col0 + region.width, region.row0 + region.height)
    skipped = 0

    def chips():
        nonlocal skipped
        pending: list = []
        for fid, box in _features(job.features):
            if box is None:
                skipped += 1
                continue
            (ca, ra), (cb, rb) = inverse * (box[0], box[3]), inverse * (box[2], box[1])
            c0, c1, r0, r1 = min(ca, cb), max(ca, cb), min(ra, rb), max(ra, rb)
            cx, cy = (c0 + c1) / 2, (r0 + r1) / 2
            if not (bounds[0] <= cx < bounds[2] and bounds[1] <= cy < bounds[3]):
                skipped += 1
                continue
            side = max(chip, int(np.ceil(max(c1 - c0, r1 - r0))))
            col, row = int(round(cx - side / 2)), int(round(cy - side / 2))
            pixels = _read(reader, ds, m, col, row, side, chip)
            pending.append((fid, pixels))
            if len(pending) == batch_size:
                yield pending
                pending = []
        if pending:
            yield pending

    partial = partial_path(job.output)
    classified = 0
    per_class: dict[str, int] = {}
    started = time.perf_counter()
    try:
        with open(partial, "w", encoding="utf-8") as out:
            for batch in read_ahead(chips(), m.device):
                x = m.normalise(np.stack([p for _, p in batch]))
                with torch.inference_mode():
                    logits = m.model(x).float().cpu()
                probs = torch.sigmoid(logits) if m.multi_label else torch.softmax(logits, 1)
                conf, index = probs.max(1)
                for (fid, _), i, c, row in zip(batch, index.tolist(), conf.tolist(), probs,
                                               strict=True):  # fmt: skip
                    value, name = m.class_of(i)
                    record = {"id": fid, "class_value": value, "class_name": name,
                              "confidence": round(c, 6)}  # fmt: skip
                    if m.multi_label:
                        record["labels"] = [m.class_of(j)[1] for j in torch.nonzero(row > 0.5)
                                            .flatten().tolist()]  # fmt: skip
                    out.write(json.dumps(record) + "\n")
                    per_class[name] = per_class.get(name, 0) + 1
                    classified += 1
                reporter.log(f"Classified {classified} features.", "debug")
    except BaseException:
        remove_partial(partial)
        raise
    move_into_place(partial, job.output)
    seconds = time.perf_counter() - started
    if skipped:
        reporter.warning(
            f"{skipped} feature{'s were' if skipped != 1 else ' was'} not classified: outside "
            "the raster (or the extent), or without a geometry."
        )
    summary = ", ".join(f"{n} {k}" for k, n in sorted(per_class.items())) or "none"
    reporter.log(f"Classified {classified} features ({summary}) in {seconds:.1f} s.")
    return {"chips": classified, "classified": classified, "skipped": skipped,
            "per_class": per_class}  # fmt: skip


def _read(reader: ChipReader, ds, m: InferModel, col: int, row: int, side: int, chip: int):
    if side == chip:
        return reader.read(col, row)[0]
    big = ChipReader(ds, m.bands, side, m.mean).read(col, row)[0]
    t = F.interpolate(torch.from_numpy(big)[None], size=(chip, chip), mode="bilinear",
                      align_corners=False)  # fmt: skip
    return t[0].numpy()
