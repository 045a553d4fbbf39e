"""Label files, one per chip, as ArcGIS writes them for each metadata format (worker side).

- PASCAL_VOC_rectangles: ``labels/<chip>.xml``, one ``object`` per box (name = class value,
  bndbox in chip pixels, truncated = 1 when the chip edge cut it).
- KITTI_rectangles: ``labels/<chip>.txt``, one line per box: class value, truncation
  (the share cut off), occlusion 0, alpha 0, left top right bottom, then seven zeros.
- Classified_Tiles: ``labels/<chip>.tif``, uint8 class values (0 = no data), georeferenced
  like the chip; smaller polygons are painted over larger ones.
- RCNN_Masks: ``labels/<class value>/<chip>.tif``, one per class present; each instance of
  that class gets its own value 1..n.
- Labeled_Tiles: ``labels/<chip>.xml`` with one object (the sample's class, its box).
- MultiLabeled_Tiles: ``labels/<chip>.xml`` with one object per class present.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .plan import ChipPlan, Label


@dataclass(frozen=True)
class LabelContext:
    root: Path  # the (staging) output folder
    fmt: str
    width: int
    height: int
    depth: int
    image_ext: str
    raster_ext: str  # for label rasters


def num(v: float) -> str:
    """A pixel coordinate: at most two decimals, no trailing zeros (10, 10.5, 10.25)."""
    text = f"{v:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def box_of(label: Label, width: int, height: int) -> tuple[float, float, float, float]:
    """The label's bounds clipped to the chip."""
    xmin, ymin, xmax, ymax = label.bounds
    return (
        min(max(xmin, 0.0), width), min(max(ymin, 0.0), height),
        min(max(xmax, 0.0), width), min(max(ymax, 0.0), height),
    )  # fmt: skip


def _tile_box(labels: list[Label], width: int, height: int):
    """The box of some labels for a tile label: their union, or the whole chip for points."""
    boxes = [box_of(lb, width, height) for lb in labels if lb.area > 0]
    if not boxes:
        return (0.0, 0.0, float(width), float(height))
    return (
        min(b[0] for b in boxes), min(b[1] for b in boxes),
        max(b[2] for b in boxes), max(b[3] for b in boxes),
    )  # fmt: skip


def voc_xml(name: str, ctx: LabelContext, objects: list[tuple[str, tuple, int]]) -> str:
    parts = [
        f"<annotation>\n  <folder>images</folder>\n  <filename>{name}.{ctx.image_ext}</filename>\n"
        f"  <path>images/{name}.{ctx.image_ext}</path>\n  <source>\n"
        "    <database>Deep Learning Studio</database>\n  </source>\n  <size>\n"
        f"    <width>{ctx.width}</width>\n    <height>{ctx.height}</height>\n"
        f"    <depth>{ctx.depth}</depth>\n  </size>\n  <segmented>0</segmented>\n"
    ]
    for obj_name, box, truncated in objects:
        xmin, ymin, xmax, ymax = (num(v) for v in box)
        parts.append(
            f"  <object>\n    <name>{obj_name}</name>\n    <pose>Unspecified</pose>\n"
            f"    <truncated>{truncated}</truncated>\n    <difficult>0</difficult>\n"
            f"    <bndbox>\n      <xmin>{xmin}</xmin>\n      <ymin>{ymin}</ymin>\n"
            f"      <xmax>{xmax}</xmax>\n      <ymax>{ymax}</ymax>\n    </bndbox>\n"
            "  </object>\n"
        )
    parts.append("</annotation>\n")
    return "".join(parts)


def kitti_text(labels: list[Label], ctx: LabelContext) -> str:
    lines = []
    for lb in labels:
        box = " ".join(f"{v:.2f}" for v in box_of(lb, ctx.width, ctx.height))
        cut = max(0.0, 1.0 - lb.frac)
        lines.append(f"{lb.cls} {cut:.2f} 0 0.00 {box} 0.00 0.00 0.00 0.00 0.00 0.00 0.00")
    return "".join(line + "\n" for line in lines)


def label_path(ctx: LabelContext, name: str) -> str:
    """The label column of map.txt (relative, forward slashes)."""
    if ctx.fmt == "KITTI_rectangles":
        return f"labels/{name}.txt"
    if ctx.fmt in ("Classified_Tiles", "RCNN_Masks"):
        return f"labels/{name}.{ctx.raster_ext}"  # RCNN_Masks: the files are in class folders
    return f"labels/{name}.xml"


def write_labels(chip: ChipPlan, ctx: LabelContext, transform, crs):
    """Write the chip's label file(s); returns per-class pixel counts for Classified_Tiles."""
    fmt, labels, w, h = ctx.fmt, chip.labels, ctx.width, ctx.height
    base = os.path.join(ctx.root, "labels", chip.name)
    if fmt == "PASCAL_VOC_rectangles":
        objects = [(str(lb.cls), box_of(lb, w, h), int(lb.frac < 1.0)) for lb in labels]
        _write_text(base + ".xml", voc_xml(chip.name, ctx, objects))
    elif fmt == "KITTI_rectangles":
        _write_text(base + ".txt", kitti_text(labels, ctx))
    elif fmt == "Labeled_Tiles":
        objects = [(str(lb.cls), _tile_box([lb], w, h), int(lb.frac < 1.0)) for lb in labels[:1]]
        _write_text(base + ".xml", voc_xml(chip.name, ctx, objects))
    elif fmt == "MultiLabeled_Tiles":
        objects = []
        for cls in sorted({lb.cls for lb in labels}):
            mine = [lb for lb in labels if lb.cls == cls]
            objects.append((str(cls), _tile_box(mine, w, h), int(any(lb.frac < 1 for lb in mine))))
        _write_text(base + ".xml", voc_xml(chip.name, ctx, objects))
    elif fmt == "Classified_Tiles":
        import numpy as np

        ordered = sorted(labels, key=lambda lb: -lb.area)
        mask = _rasterize([(lb.geom, lb.cls) for lb in ordered], h, w, "uint8")
        _write_mask(Path(f"{base}.{ctx.raster_ext}"), mask, transform, crs)
        return np.bincount(mask.ravel(), minlength=256)
    elif fmt == "RCNN_Masks":
        for cls in sorted({lb.cls for lb in labels}):
            mine = [lb for lb in labels if lb.cls == cls][:65535]
            dtype = "uint8" if len(mine) <= 255 else "uint16"
            mask = _rasterize([(lb.geom, i) for i, lb in enumerate(mine, 1)], h, w, dtype)
            folder = ctx.root / "labels" / str(cls)
            folder.mkdir(exist_ok=True)
            _write_mask(folder / f"{chip.name}.{ctx.raster_ext}", mask, transform, crs)
    else:  # pragma: no cover - job.validate refuses it
        raise ValueError(f"unknown metadata format {fmt}")
    return None


def _write_text(path: str, text: str) -> None:
    from .chips import write_file

    if os.linesep != "\n":  # as Path.write_text writes text (Windows: CRLF)
        text = text.replace("\n", os.linesep)
    write_file(path, (text.encode("utf-8"),))


def _rasterize(shapes, height: int, width: int, dtype: str):
    import numpy as np
    from rasterio.features import rasterize

    shapes = [(g, v) for g, v in shapes if not g.is_empty and g.area > 0]
    if not shapes:
        return np.zeros((height, width), dtype=dtype)
    return rasterize(
        shapes, out_shape=(height, width), fill=0, all_touched=False, dtype=dtype,
    )  # fmt: skip


def _write_mask(path: Path, mask, transform, crs) -> None:
    from .chips import write_raster

    write_raster(path, mask[None], transform, crs, compress=True)
