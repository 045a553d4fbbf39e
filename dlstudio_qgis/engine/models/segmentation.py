"""Pixel classification: U-Net, PSPNet (plain torch) and DeepLabV3 (torchvision's head).

``model(x)`` returns logits (N, num_classes, H, W) at the input's size, for any size (skips are
resized to each other, the output to the input), so chips need not be multiples of 32.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.segmentation.deeplabv3 import ASPPPooling, DeepLabHead

from .backbones import Backbone


def conv_block(c_in: int, c_out: int) -> nn.Sequential:
    """Two 3x3 convolutions with batch norm and ReLU."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


def _resize(x: torch.Tensor, size) -> torch.Tensor:
    if x.shape[-2:] == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class UNetDecoder(nn.Module):
    """Upsample, concatenate the skip, two convolutions; last, the input bands themselves."""

    def __init__(
        self,
        in_channels: int,
        skip_channels: Sequence[int],
        widths: Sequence[int],
        in_bands: int,
        num_classes: int,
    ) -> None:
        super().__init__()
        blocks, c = [], in_channels
        for skip, width in zip(skip_channels, widths, strict=True):
            blocks.append(conv_block(c + skip, width))
            c = width
        self.blocks = nn.ModuleList(blocks)
        self.final = conv_block(c + in_bands, max(16, c // 2))
        self.classifier = nn.Conv2d(max(16, c // 2), num_classes, 1)

    def forward(self, y: torch.Tensor, skips: Sequence[torch.Tensor], x: torch.Tensor):
        """``y`` the deepest features, ``skips`` deepest first, ``x`` the input image."""
        for block, skip in zip(self.blocks, skips, strict=True):
            y = block(torch.cat([_resize(y, skip.shape[-2:]), skip], dim=1))
        y = self.final(torch.cat([_resize(y, x.shape[-2:]), x], dim=1))
        return self.classifier(y)


class UNet(nn.Module):
    """U-Net over the backbone's five stages (skips at strides 16, 8, 4 and 2)."""

    def __init__(self, backbone: Backbone, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        ch = backbone.channels
        self.decoder = UNetDecoder(
            ch[4], ch[3::-1], (256, 128, 64, 32), backbone.in_channels, num_classes
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.backbone(x)
        return self.decoder(feats[4], feats[3::-1], x)


class PyramidPooling(nn.Module):
    """PSPNet's pyramid pooling: average pooling to each size, 1x1 convolution, upsampling,
    concatenated with the features and fused by a 3x3 convolution.

    The pooled branches have no batch norm, so that a batch of one chip trains too.
    """

    def __init__(self, in_channels: int, sizes: Sequence[int], out_channels: int = 512) -> None:
        super().__init__()
        branch = max(32, in_channels // len(sizes))
        self.branches = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(s), nn.Conv2d(in_channels, branch, 1), nn.ReLU())
            for s in sizes
        )
        self.fuse = nn.Sequential(
            nn.Conv2d(in_channels + branch * len(sizes), out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        pooled = [_resize(branch(x), size) for branch in self.branches]
        return self.fuse(torch.cat([x, *pooled], dim=1))


class PSPNet(nn.Module):
    """Backbone at output stride 8, pyramid pooling, then either the U-Net decoder (skips at
    strides 4 and 2: USE_UNET, the default) or a 1x1 classifier upsampled to the input."""

    def __init__(
        self, backbone: Backbone, num_classes: int, pyramid_sizes: Sequence[int], use_unet: bool
    ) -> None:
        super().__init__()
        if backbone.strides[-1] != 8:
            backbone.set_output_stride(8)
        self.backbone = backbone
        self.ppm = PyramidPooling(backbone.channels[-1], pyramid_sizes)
        self.use_unet = use_unet
        if use_unet:
            ch = backbone.channels
            self.decoder = UNetDecoder(
                512, (ch[1], ch[0]), (128, 64), backbone.in_channels, num_classes
            )
        else:
            self.classifier = nn.Sequential(nn.Dropout2d(0.1), nn.Conv2d(512, num_classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.backbone(x)
        y = self.ppm(feats[-1])
        if self.use_unet:
            return self.decoder(y, (feats[1], feats[0]), x)
        return _resize(self.classifier(y), x.shape[-2:])


class DeepLab(nn.Module):
    """DeepLabV3: torchvision's DeepLabHead (ASPP, rates 12/24/36) over the backbone at output
    stride 8, as torchvision's deeplabv3_resnet50/101 do, for every backbone.

    The ASPP image-pooling branch normalises with GroupNorm instead of BatchNorm: batch norm of a
    1x1 map fails on a batch of one chip.
    """

    def __init__(self, backbone: Backbone, num_classes: int) -> None:
        super().__init__()
        if backbone.strides[-1] != 8:
            backbone.set_output_stride(8)
        self.backbone = backbone
        self.classifier = DeepLabHead(backbone.channels[-1], num_classes)
        for module in self.classifier.modules():
            if isinstance(module, ASPPPooling):
                module[2] = nn.GroupNorm(32, module[2].num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _resize(self.classifier(self.backbone(x)[-1]), x.shape[-2:])
