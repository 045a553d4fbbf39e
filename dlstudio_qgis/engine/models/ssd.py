"""SSD with ArcGIS's grid/zoom/ratio anchors: torchvision's SSD (head, matching, hard negative
mining, decoding) with our anchor generator and a neck that gives one feature map per grid.

For a grid of g cells per side, each cell (chip_size / g pixels) gets one anchor per zoom and
ratio, centred on the cell: height = cell * zoom * ratio[0], width = cell * zoom * ratio[1].
The grid's feature map is the backbone's deepest stage at least g pixels wide, through a 3x3
convolution and adaptive average pooling to exactly g x g.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn
from torchvision.models.detection.ssd import SSD

from .backbones import Backbone

NECK_CHANNELS = 256


class GridAnchors(nn.Module):
    """The anchor generator torchvision's SSD calls (in place of its DefaultBoxGenerator)."""

    def __init__(
        self, grids: Sequence[int], zooms: Sequence[float], ratios: Sequence[Sequence[float]]
    ) -> None:
        super().__init__()
        self.grids = list(grids)
        # (height, width) factors of one cell, in the order of the head's outputs per location
        self.factors = [(z * r[0], z * r[1]) for z in zooms for r in ratios]
        # SSD checks that it has one entry per feature map
        self.aspect_ratios = [list(ratios)] * len(self.grids)

    def num_anchors_per_location(self) -> list[int]:
        return [len(self.factors)] * len(self.grids)

    def forward(self, image_list, feature_maps: list[torch.Tensor]) -> list[torch.Tensor]:
        height, width = image_list.tensors.shape[-2:]
        device, dtype = feature_maps[0].device, feature_maps[0].dtype
        factors = torch.tensor(self.factors, device=device, dtype=dtype)  # (A, 2): h, w
        boxes = []
        for fmap in feature_maps:
            rows, cols = fmap.shape[-2:]
            cell_h, cell_w = height / rows, width / cols
            cy = (torch.arange(rows, device=device, dtype=dtype) + 0.5) * cell_h
            cx = (torch.arange(cols, device=device, dtype=dtype) + 0.5) * cell_w
            cy, cx = torch.meshgrid(cy, cx, indexing="ij")
            centres = torch.stack([cx, cy], dim=-1).reshape(-1, 1, 2)  # row-major locations
            half = torch.stack([factors[:, 1] * cell_w, factors[:, 0] * cell_h], dim=-1) / 2
            boxes.append(torch.cat([centres - half, centres + half], dim=-1).reshape(-1, 4))
        anchors = torch.cat(boxes)
        return [anchors for _ in image_list.image_sizes]


class GridNeck(nn.Module):
    """One NECK_CHANNELS x g x g feature map per grid g, from the backbone's stages."""

    def __init__(self, backbone: Backbone, grids: Sequence[int], chip_size: int) -> None:
        super().__init__()
        self.body = backbone
        self.grids = list(grids)
        self.sources = []
        for g in self.grids:
            fits = [i for i, s in enumerate(backbone.strides) if chip_size // s >= g]
            self.sources.append(fits[-1] if fits else 0)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(backbone.channels[i], NECK_CHANNELS, 3, padding=1, bias=False),
                nn.BatchNorm2d(NECK_CHANNELS),
                nn.ReLU(inplace=True),
            )
            for i in self.sources
        )
        self.out_channels = [NECK_CHANNELS] * len(self.grids)

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        feats = self.body(x)
        out = OrderedDict()
        for k, (g, i, block) in enumerate(zip(self.grids, self.sources, self.blocks, strict=True)):
            out[str(k)] = nn.functional.adaptive_avg_pool2d(block(feats[i]), g)
        return out


def ssd(
    backbone: Backbone,
    num_classes: int,
    chip_size: int,
    grids: Sequence[int],
    zooms: Sequence[float],
    ratios: Sequence[Sequence[float]],
) -> SSD:
    """torchvision's SSD (softmax over num_classes + 1, class 0 the background)."""
    return SSD(
        GridNeck(backbone, grids, chip_size),
        GridAnchors(grids, zooms, ratios),
        (chip_size, chip_size),
        num_classes + 1,
        image_mean=[0.0] * backbone.in_channels,
        image_std=[1.0] * backbone.in_channels,
    )
