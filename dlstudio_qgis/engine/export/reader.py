"""Read an exported training-data folder back: ours, or one ArcGIS made with the same layout.

    data = read_export("/data/buildings_chips")
    data.metadata_format          # "PASCAL_VOC_rectangles", ...
    for chip in data.chips:
        chip.image                # Path of the image chip
        chip.boxes, chip.classes  # rectangles in chip pixels (xmin, ymin, xmax, ymax), classes
        chip.label                # the label file (xml, txt, or class raster)
        chip.masks                # RCNN_Masks: class value -> instance mask raster

Per format: rectangle formats give one box and one class per object; Labeled_Tiles one class
(and its box); MultiLabeled_Tiles the classes present (one object per class, or ArcGIS's one
object with comma-separated names); Classified_Tiles the class raster in ``label``;
RCNN_Masks the mask per class folder (``labels/<class>/<chip>``). Class names are mapped to
values through the model definition. ArcGIS's ``map.txt`` (backslashes, absolute paths) is
understood; without a ``map.txt`` the images folder is listed.

Standard library only: pixels are left to the caller (rasterio, PIL).
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from ..protocol import InputError

FORMATS = (
    "PASCAL_VOC_rectangles", "KITTI_rectangles", "Classified_Tiles", "RCNN_Masks",
    "Labeled_Tiles", "MultiLabeled_Tiles",
)  # fmt: skip
IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".mrf")


@dataclass
class ExportedChip:
    image: Path
    label: Path | None = None
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)
    classes: list = field(default_factory=list)  # ints (class values), or names not in the emd
    masks: dict = field(default_factory=dict)  # RCNN_Masks: class -> mask raster path

    @property
    def name(self) -> str:
        return self.image.stem


@dataclass
class ExportedData:
    folder: Path
    metadata_format: str
    chips: list[ExportedChip]
    classes: list[dict]  # Value, Name, Color (from the model definition)
    emd: dict
    stats: dict
    missing_labels: list[Path] = field(default_factory=list)  # chips left out: no label file

    @property
    def class_values(self) -> list:
        return [c["Value"] for c in self.classes]


def _load_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except ValueError as exc:
        raise InputError(f"'{path}' is not valid JSON: {exc}.") from None
    return data if isinstance(data, dict) else {}


def _classes(emd: dict, stats: dict) -> list[dict]:
    rows = emd.get("Classes") or stats.get("Classes") or []
    out = []
    for row in rows:
        value = row.get("Value", row.get("ClassValue"))
        name = row.get("Name", row.get("ClassName", str(value)))
        out.append({"Value": value, "Name": name, "Color": row.get("Color")})
    return out


def _to_class(text: str, names: dict):
    text = (text or "").strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
        if number.is_integer():
            return int(number)
    except ValueError:
        pass
    return names.get(text, text)


def _resolve(folder: Path, ref: str, top: str) -> Path:
    """A map.txt path as a path in `folder` (ArcGIS may write backslashes, absolute paths)."""
    parts = [p for p in ref.strip().replace("\\", "/").split("/") if p not in ("", ".")]
    if top in parts:
        i = len(parts) - 1 - parts[::-1].index(top)
        parts = parts[i:]
    return folder.joinpath(*parts)


_MAP_LINE = re.compile(r"^(.+?\.(?:tiff?|png|jpe?g|mrf))\s+(.+)$", re.IGNORECASE)


def _split_map_line(line: str) -> tuple[str, str | None]:
    """Image and label of a map.txt line; the paths may hold spaces (ArcGIS on Windows)."""
    norm = line.strip().replace("\\", "/")
    match = _MAP_LINE.match(norm)
    if match:
        return match.group(1).strip(), match.group(2).strip()
    fields = norm.split(maxsplit=1)
    return fields[0], fields[1] if len(fields) == 2 else None


def _entries(folder: Path) -> list[tuple[Path, Path | None]]:
    map_txt = folder / "map.txt"
    if map_txt.is_file():
        out = []
        for line in map_txt.read_text(encoding="utf-8-sig").splitlines():
            if not line.strip():
                continue
            image, label = _split_map_line(line)
            out.append((_resolve(folder, image, "images"),
                        _resolve(folder, label, "labels") if label else None))  # fmt: skip
        return out
    images = folder / "images"
    if not images.is_dir():
        raise InputError(
            f"'{folder}' is not an exported training-data folder: it lacks {_missing(folder)}. "
            "Choose the folder Export Training Data for Deep Learning wrote."
        )
    return [(p, None) for p in sorted(images.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]


def _infer_format(folder: Path, entries) -> str:
    labels = folder / "labels"
    files = [p for p in labels.iterdir()] if labels.is_dir() else []
    if any(p.is_dir() for p in files):
        return "RCNN_Masks"
    suffixes = [lb.suffix.lower() for _, lb in entries if lb is not None]
    suffixes += [p.suffix.lower() for p in files]
    if ".txt" in suffixes:
        return "KITTI_rectangles"
    if ".xml" in suffixes:
        return "PASCAL_VOC_rectangles"
    if any(s in IMAGE_SUFFIXES for s in suffixes):
        return "Classified_Tiles"
    raise InputError(
        f"Cannot tell the metadata format of '{folder}': it lacks {_missing(folder)}. Export the "
        "training data again, or choose the folder Export Training Data for Deep Learning wrote."
    )


#: what an export folder holds (map.txt is optional: ours and ArcGIS's have images/ and labels/)
EXPORT_PARTS = ("esri_model_definition.emd", "esri_accumulated_stats.json", "images/", "labels/")


def _missing(folder: Path) -> str:
    """The parts of an export that `folder` lacks, as a phrase."""
    gone = [f"'{n}'" for n in EXPORT_PARTS if not (folder / n.rstrip("/")).exists()]
    if not gone:
        return "label files"
    return gone[0] if len(gone) == 1 else f"{', '.join(gone[:-1])} and {gone[-1]}"


def _label_file(folder: Path, image: Path, label: Path | None, suffixes) -> Path | None:
    if label is not None and label.is_file():
        return label
    for suffix in suffixes:
        candidate = folder / "labels" / (image.stem + suffix)
        if candidate.is_file():
            return candidate
    return None


def _voc(path: Path, names: dict, multi: bool):
    root = ET.parse(path).getroot()
    boxes, classes = [], []
    for obj in root.findall("object"):
        name = obj.findtext("name") or ""
        values = [_to_class(n, names) for n in name.split(",")] if multi else [
            _to_class(name, names)]  # fmt: skip
        bb = obj.find("bndbox")
        box = None
        if bb is not None:
            box = tuple(float(bb.findtext(k) or 0) for k in ("xmin", "ymin", "xmax", "ymax"))
        for v in values:
            classes.append(v)
            if box is not None:
                boxes.append(box)
    return boxes, classes


def _kitti(path: Path, names: dict):
    boxes, classes = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        classes.append(_to_class(fields[0], names))
        boxes.append(tuple(float(v) for v in fields[4:8]))
    return boxes, classes


def read_export(folder: str | Path) -> ExportedData:
    """The chips of an export folder with their labels (see the module docstring)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"The training data folder '{folder}' does not exist.")
    emd = _load_json(folder / "esri_model_definition.emd")
    stats = _load_json(folder / "esri_accumulated_stats.json")
    entries = _entries(folder)
    fmt = stats.get("MetaDataMode") or emd.get("MetaDataMode") or _infer_format(folder, entries)
    if fmt not in FORMATS:
        raise InputError(f"'{folder}' holds {fmt} training data; this reader takes {FORMATS}.")
    classes = _classes(emd, stats)
    names = {str(c["Name"]): c["Value"] for c in classes}
    chips, missing = [], []
    class_dirs = []
    if fmt == "RCNN_Masks" and (folder / "labels").is_dir():
        class_dirs = sorted(p for p in (folder / "labels").iterdir() if p.is_dir())
    for image, label in entries:
        chip = ExportedChip(image=image)
        if fmt == "RCNN_Masks":
            for d in class_dirs:
                for suffix in ([label.suffix] if label else []) + list(IMAGE_SUFFIXES):
                    mask = d / (image.stem + suffix)
                    if mask.is_file():
                        chip.masks[_to_class(d.name, names)] = mask
                        break
            chip.classes = sorted(chip.masks, key=str)
            chips.append(chip)
            continue
        if fmt == "KITTI_rectangles":
            chip.label = _label_file(folder, image, label, (".txt",))
        elif fmt == "Classified_Tiles":
            chip.label = _label_file(folder, image, label, IMAGE_SUFFIXES)
        else:
            chip.label = _label_file(folder, image, label, (".xml",))
        if chip.label is None:
            missing.append(image)
            continue
        if fmt == "KITTI_rectangles":
            chip.boxes, chip.classes = _kitti(chip.label, names)
        elif fmt != "Classified_Tiles":
            chip.boxes, chip.classes = _voc(chip.label, names, fmt == "MultiLabeled_Tiles")
            if fmt == "Labeled_Tiles":
                chip.boxes, chip.classes = chip.boxes[:1], chip.classes[:1]
            elif fmt == "MultiLabeled_Tiles":
                chip.classes = sorted(set(chip.classes), key=str)
        chips.append(chip)
    return ExportedData(folder, fmt, chips, classes, emd, stats, missing)
