"""Run in a subprocess by test_train_dataset.py (rasterio stays out of the pytest process):
reads exports through ChipDataset and prints what it gives, as JSON.

    python dataset_probe.py '[["<folder>", "<task kind>", {arguments}], ...]'
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch

from dlstudio_qgis.engine.export.reader import read_export
from dlstudio_qgis.engine.train import dataset as ds


def _extent(mask) -> list[float]:
    rows, cols = np.nonzero(mask.numpy())
    return [float(cols.min()), float(rows.min()), float(cols.max() + 1), float(rows.max() + 1)]


def probe(folder: str, kind: str, arguments: dict) -> dict:
    torch.manual_seed(0)
    data = read_export(folder)
    spec = ds.make_spec(data, kind, arguments)
    everything = list(range(len(data.chips)))
    out = {
        "chip_size": spec.chip_size,
        "in_channels": spec.in_channels,
        "chips": len(everything),
        "multi_label": spec.multi_label,
        "items": [],
    }
    pixels = []
    for augment in (False, True):
        dataset = ds.ChipDataset(data, spec, everything, augment=augment)
        for image, target in dataset:
            pixels.append(image.reshape(image.shape[0], -1))
            item = {"shape": list(image.shape), "augment": augment}
            if isinstance(target, dict):
                item["boxes"] = target["boxes"].tolist()
                item["labels"] = target["labels"].tolist()
                if "masks" in target:
                    item["mask_extents"] = [_extent(m) for m in target["masks"]]
            else:
                item["target"] = target.unique().tolist() if target.ndim == 2 else target.tolist()
                item["dtype"] = str(target.dtype)
            out["items"].append(item)
    loader = ds.loader(dataset, 4, train=True, workers=1, cuda=False)
    out["batches"] = [list(b[0].shape) for b in loader]
    allpix = torch.cat(pixels[: len(everything)], dim=1)
    out["mean"], out["std"] = allpix.mean(1).tolist(), allpix.std(1).tolist()
    return out


if __name__ == "__main__":
    print(json.dumps([probe(*spec) for spec in json.loads(sys.argv[1])]))
