"""The chips of an export folder as a torch Dataset, for each task of the model types.

- detection (PASCAL_VOC/KITTI rectangles): {"boxes" (K, 4) chip pixels, "labels" 1..n};
- instance segmentation (RCNN_Masks): the same plus "masks" (K, H, W) uint8, one per instance;
- semantic segmentation (Classified_Tiles): a (H, W) int64 mask of 0..n (0 = background or
  no data, i = the i-th class of the model definition), IGNORE_CLASSES set to IGNORE_INDEX;
- classification (Labeled_Tiles): the class index 0..n-1; MultiLabeled_Tiles: a multi-hot
  float vector of n.

Images are (C, H, W) float32 normalised with the export's band statistics. Chips larger than
the training chip size are cropped (randomly in training, centred in validation), as ArcGIS
does; flips and transposes (the 8 symmetries of a square) augment image and target alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..export.reader import ExportedChip, ExportedData
from ..protocol import InputError

IGNORE_INDEX = -100  # what torch's cross-entropy skips
MAX_CACHE_BYTES = 512 * 2**20  # decoded chips kept in memory below this


@dataclass
class DataSpec:
    """What the export says about its data, and what training makes of it."""

    kind: str  # detection, instance_segmentation, semantic_segmentation, classification
    metadata_format: str
    classes: list[dict]  # Value, Name, Color as in the model definition
    chip_size: int  # the training chip size (square)
    native_size: tuple[int, int]  # (height, width) of the exported chips
    in_channels: int
    mean: list[float]
    std: list[float]
    extract_bands: list[int]
    multi_label: bool = False
    ignore_values: list[int] = field(default_factory=list)

    @property
    def values(self) -> list:
        return [c["Value"] for c in self.classes]

    @property
    def names(self) -> list[str]:
        return [str(c["Name"]) for c in self.classes]


def read_raster(path: Path) -> np.ndarray:
    """A chip or label raster as a (bands, rows, cols) array."""
    import rasterio

    try:
        with rasterio.open(path) as ds:
            return ds.read()
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(f"Cannot read the chip '{path}': {exc}. Export the data again.") from None


def band_stats(data: ExportedData, chips: list[ExportedChip], bands: int):
    """Per-band mean and std from the export's statistics, or measured on up to 32 chips."""
    rows = data.stats.get("BandStats") or data.emd.get("AllTilesStats") or []
    mean = [r.get("Mean") for r in rows][:bands]
    std = [r.get("StdDev", r.get("Std")) for r in rows][:bands]
    if len(mean) != bands or any(v is None for v in mean + std):
        sample = np.stack([read_raster(c.image).astype(np.float64) for c in chips[:32]])
        mean = sample.mean(axis=(0, 2, 3)).tolist()
        std = sample.std(axis=(0, 2, 3)).tolist()
    std = [float(s) if s and math.isfinite(s) and s > 0 else 1.0 for s in std]
    return [float(m) for m in mean], std


def make_spec(data: ExportedData, kind: str, arguments: dict) -> DataSpec:
    """The DataSpec of an export (reads one chip for the band count and size)."""
    first = read_raster(data.chips[0].image)
    bands, height, width = first.shape
    emd = data.emd
    native = (int(emd.get("ImageHeight") or height), int(emd.get("ImageWidth") or width))
    size = min(native)
    asked = arguments.get("chip_size")
    if asked not in (None, ""):
        try:
            asked = int(asked)
        except (TypeError, ValueError):
            raise InputError(
                f"chip_size must be a whole number of pixels, not {asked!r}."
            ) from None
        if asked < 32:
            raise InputError(f"chip_size must be at least 32 pixels, not {asked}.")
        size = min(asked, size)  # larger than the chips: the chips' size (as ArcGIS does)
    mean, std = band_stats(data, data.chips, bands)
    ignore = arguments.get("ignore_classes") or []
    ignore = [int(v) for v in (ignore if isinstance(ignore, list | tuple) else [ignore])]
    return DataSpec(
        kind=kind,
        metadata_format=data.metadata_format,
        classes=list(data.classes),
        chip_size=size,
        native_size=native,
        in_channels=bands,
        mean=mean,
        std=std,
        extract_bands=list(emd.get("ExtractBands") or range(bands)),
        multi_label=data.metadata_format == "MultiLabeled_Tiles",
        ignore_values=ignore,
    )


def split(n: int, percent: float, seed: int) -> tuple[list[int], list[int]]:
    """Deterministic (train, validation) indices; at least one training chip."""
    order = np.random.default_rng(seed).permutation(n).tolist()
    n_val = round(n * percent / 100.0)
    if percent > 0 and n >= 2:
        n_val = max(1, n_val)
    n_val = min(n_val, n - 1)
    return sorted(order[n_val:]), sorted(order[:n_val])


# --- geometry of the augmentations ---------------------------------------------------------


def _crop_boxes(boxes: np.ndarray, y0: int, x0: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Boxes in the crop, and which are kept (at least 2 pixels wide and high inside)."""
    out = boxes - np.array([x0, y0, x0, y0], dtype=np.float32)
    out = np.clip(out, 0, size)
    keep = ((out[:, 2] - out[:, 0]) >= 2) & ((out[:, 3] - out[:, 1]) >= 2)
    return out, keep


def _boxes_of_masks(masks: np.ndarray) -> np.ndarray:
    boxes = np.zeros((len(masks), 4), dtype=np.float32)
    for k, m in enumerate(masks):
        rows, cols = np.nonzero(m.any(axis=1))[0], np.nonzero(m.any(axis=0))[0]
        if len(rows):
            boxes[k] = (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
    return boxes


def dihedral(image, target: dict, transpose: bool, hflip: bool, vflip: bool) -> tuple:
    """One of the 8 symmetries of a square chip, applied to the image and its target."""
    h, w = image.shape[-2:]
    boxes = target.get("boxes")
    masks = {k: target[k] for k in ("mask", "masks") if k in target}
    if transpose:
        image = image.swapaxes(-1, -2)
        masks = {k: m.swapaxes(-1, -2) for k, m in masks.items()}
        if boxes is not None:
            boxes = boxes[:, [1, 0, 3, 2]]
        h, w = w, h
    if hflip:
        image = image[..., ::-1]
        masks = {k: m[..., ::-1] for k, m in masks.items()}
        if boxes is not None:
            boxes = np.stack([w - boxes[:, 2], boxes[:, 1], w - boxes[:, 0], boxes[:, 3]], 1)
    if vflip:
        image = image[..., ::-1, :]
        masks = {k: m[..., ::-1, :] for k, m in masks.items()}
        if boxes is not None:
            boxes = np.stack([boxes[:, 0], h - boxes[:, 3], boxes[:, 2], h - boxes[:, 1]], 1)
    target = {**target, **masks}
    if boxes is not None:
        target["boxes"] = boxes.astype(np.float32)
    return image, target


class ChipDataset(Dataset):
    """The chips `indices` of an export, as (image tensor, target) pairs (see the module)."""

    def __init__(self, data: ExportedData, spec: DataSpec, indices: list[int], augment: bool):
        self.chips = [data.chips[i] for i in indices]
        self.spec, self.augment = spec, augment
        self.index = {v: i for i, v in enumerate(spec.values)}
        self.mean = np.asarray(spec.mean, np.float32)[:, None, None]
        self.std = np.asarray(spec.std, np.float32)[:, None, None]
        c, (h, w) = spec.in_channels, spec.native_size
        per_chip = 4 * c * h * w + (8 * h * w if spec.kind != "classification" else 0)
        self._cache: dict | None = {} if per_chip * len(self.chips) < MAX_CACHE_BYTES else None

    def __len__(self) -> int:
        return len(self.chips)

    # --- reading ---------------------------------------------------------------------------

    def _load(self, i: int) -> tuple[np.ndarray, dict]:
        if self._cache is not None and i in self._cache:
            return self._cache[i]
        chip = self.chips[i]
        image = read_raster(chip.image).astype(np.float32)
        image = np.nan_to_num((image - self.mean) / self.std, nan=0.0, posinf=0.0, neginf=0.0)
        item = (image, self._target(chip, image.shape[-2:]))
        if self._cache is not None:
            self._cache[i] = item
        return item

    def _target(self, chip: ExportedChip, hw) -> dict:
        kind, n = self.spec.kind, len(self.spec.classes)
        if kind == "semantic_segmentation":
            values = read_raster(chip.label)[0].astype(np.int64)
            lut = np.zeros(max(int(values.max()), max(self.spec.values), 0) + 1, np.int64)
            for v, i in self.index.items():
                lut[int(v)] = i + 1
            for v in self.spec.ignore_values:
                if 0 <= v < len(lut):
                    lut[v] = IGNORE_INDEX
            return {"mask": lut[np.clip(values, 0, None)]}
        if kind == "classification":
            idx = [self.index[c] for c in chip.classes if c in self.index]
            if self.spec.multi_label:
                hot = np.zeros(n, np.float32)
                hot[idx] = 1.0
                return {"label": hot}
            return {"label": idx[0] if idx else IGNORE_INDEX}
        if kind == "instance_segmentation":
            masks, labels = [], []
            for cls, path in chip.masks.items():
                if cls not in self.index:
                    continue
                inst = read_raster(path)[0]
                for v in np.unique(inst[inst > 0]):
                    masks.append((inst == v).astype(np.uint8))
                    labels.append(self.index[cls] + 1)
            masks = np.stack(masks) if masks else np.zeros((0, *hw), np.uint8)
            return {
                "masks": masks,
                "labels": np.asarray(labels, np.int64),
                "boxes": _boxes_of_masks(masks),
            }
        keep = [k for k, c in enumerate(chip.classes) if c in self.index]
        boxes = np.asarray([chip.boxes[k] for k in keep], np.float32).reshape(-1, 4)
        labels = np.asarray([self.index[chip.classes[k]] + 1 for k in keep], np.int64)
        return {"boxes": boxes, "labels": labels}

    # --- cropping and augmenting -----------------------------------------------------------

    def _crop(self, image: np.ndarray, target: dict) -> tuple[np.ndarray, dict]:
        size = self.spec.chip_size
        h, w = image.shape[-2:]
        if h == size and w == size:
            return image, target
        if h < size or w < size:  # a chip smaller than the others: pad with zeros
            pad = ((0, 0), (0, max(0, size - h)), (0, max(0, size - w)))
            image = np.pad(image, pad)
            target = dict(target)
            if "mask" in target:
                target["mask"] = np.pad(target["mask"], pad[1:])
            if "masks" in target:
                target["masks"] = np.pad(target["masks"], pad)
            h, w = image.shape[-2:]
        if self.augment:
            y0 = int(torch.randint(0, h - size + 1, ()).item())
            x0 = int(torch.randint(0, w - size + 1, ()).item())
        else:
            y0, x0 = (h - size) // 2, (w - size) // 2
        image = image[:, y0 : y0 + size, x0 : x0 + size]
        out = dict(target)
        if "mask" in out:
            out["mask"] = out["mask"][y0 : y0 + size, x0 : x0 + size]
        if "masks" in out:
            masks = out["masks"][:, y0 : y0 + size, x0 : x0 + size]
            keep = masks.reshape(len(masks), -1).any(axis=1)
            out["masks"], out["labels"] = masks[keep], out["labels"][keep]
            out["boxes"] = _boxes_of_masks(out["masks"])
        elif "boxes" in out:
            out["boxes"], keep = _crop_boxes(out["boxes"], y0, x0, size)
            out["boxes"], out["labels"] = out["boxes"][keep], out["labels"][keep]
        return image, out

    def __getitem__(self, i: int):
        image, target = self._crop(*self._load(i))
        if self.augment:
            flips = torch.randint(0, 2, (3,)).tolist()
            square = image.shape[-1] == image.shape[-2]
            image, target = dihedral(
                image, target, bool(flips[0]) and square, *map(bool, flips[1:])
            )
        image = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
        return image, _to_tensors(target, self.spec)


def _to_tensors(target: dict, spec: DataSpec):
    if spec.kind == "semantic_segmentation":
        return torch.from_numpy(np.ascontiguousarray(target["mask"]))
    if spec.kind == "classification":
        label = target["label"]
        return torch.from_numpy(label) if spec.multi_label else torch.tensor(label)
    out = {
        "boxes": torch.from_numpy(np.ascontiguousarray(target["boxes"], np.float32)).reshape(-1, 4),
        "labels": torch.from_numpy(np.ascontiguousarray(target["labels"], np.int64)),
    }
    if "masks" in target:
        out["masks"] = torch.from_numpy(np.ascontiguousarray(target["masks"], np.uint8))
    return out


def collate(batch):
    """Images stacked; detection targets as a list of dicts, other targets stacked."""
    images = torch.stack([b[0] for b in batch])
    targets = [b[1] for b in batch]
    if isinstance(targets[0], dict):
        return images, targets
    return images, torch.stack(targets)


def loader(dataset: Dataset, batch_size: int, *, train: bool, workers: int, cuda: bool):
    """A DataLoader that keeps the GPU fed (pinned memory, persistent workers)."""
    n = len(dataset)
    return DataLoader(
        dataset,
        batch_size=min(batch_size, max(1, n)),
        shuffle=train,
        # a lone last chip breaks batch normalisation in training
        drop_last=train and n > batch_size and n % batch_size == 1,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=cuda,
        collate_fn=collate,
        prefetch_factor=4 if workers > 0 else None,
    )
