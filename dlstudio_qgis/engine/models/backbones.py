"""Backbones: five feature stages (strides 2, 4, 8, 16, 32) from any of the 19 backbone names.

torchvision's ResNets, VGGs, DenseNets and MobileNetV2 are built with ``weights=None``, loaded
from the local cache when the checkpoint is there (see :mod:`.weights`), their first convolution
adapted to the band count, and cut into stages. Darknet-53 is plain torch (:mod:`.darknet`).

Every backbone is a :class:`Backbone` whose ``forward`` returns the list of the five stage outputs,
with ``channels`` and ``strides`` known, so that every head (classifier, U-Net, PSPNet, DeepLab,
FPN for the R-CNNs and RetinaNet, SSD grids, YOLOv3) works with every backbone alike.
``output_stride`` 16 or 8 removes the last downsamplings and dilates the convolutions after them
(what torchvision does for DeepLab's ResNets), for the segmentation heads.
"""

from __future__ import annotations

import os

import torch
import torchvision
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from . import darknet
from .weights import Log, adapt_first_conv, default_log, load_into, resolve_weights

_VGG_CFGS = {"VGG11": "A", "VGG13": "B", "VGG16": "D", "VGG19": "E"}


class Backbone(nn.Module):
    """Five stages; ``forward(x)`` returns their outputs, finest first."""

    def __init__(
        self, name: str, stages: list[nn.Module], in_channels: int, weights: str | None
    ) -> None:
        super().__init__()
        self.name = name
        self.stages = nn.ModuleList(stages)
        self.in_channels = in_channels
        #: the checkpoint the weights came from, or None (random initial weights)
        self.weights = weights
        self.channels: list[int] = []
        self.strides: list[int] = []
        self._probe()

    @property
    def pretrained(self) -> bool:
        return self.weights is not None

    def _probe(self) -> None:
        """Channels and strides of each stage, from one small dry run."""
        was_training = self.training
        self.eval()
        with torch.no_grad():
            feats = self(torch.zeros(1, self.in_channels, 64, 64))
        self.train(was_training)
        self.channels = [f.shape[1] for f in feats]
        self.strides = [64 // f.shape[-1] for f in feats]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats

    def set_output_stride(self, output_stride: int) -> None:
        """Keep the resolution of stride ``output_stride`` (8 or 16) through the deeper stages."""
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, not {output_stride}")
        first = {32: len(self.stages), 16: 4, 8: 3}[output_stride]
        dilation = 1
        for stage in list(self.stages)[first:]:
            dilation = _dilate_stage(stage, dilation)
        self._probe()


def freeze_batchnorm(module: nn.Module) -> int:
    """Replace every BatchNorm2d inside by a FrozenBatchNorm2d with the same statistics (what
    torchvision's detectors do to pretrained backbones: batches of a few chips would spoil the
    ImageNet statistics). Returns how many were replaced; state dicts stay compatible."""
    count = 0
    for qualified, child in list(module.named_modules()):
        if type(child) is nn.BatchNorm2d:
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
            frozen.weight.copy_(child.weight.detach())
            frozen.bias.copy_(child.bias.detach())
            frozen.running_mean.copy_(child.running_mean)
            frozen.running_var.copy_(child.running_var)
            parent_name, _, attr = qualified.rpartition(".")
            setattr(module.get_submodule(parent_name), attr, frozen)
            count += 1
    return count


def _dilate_stage(stage: nn.Module, dilation: int) -> int:
    """Remove the stage's downsampling and dilate the 3x3 convolutions after it.

    The strided layer keeps the dilation it had (as torchvision's replace_stride_with_dilation
    does); the convolutions after it get twice that. Returns the dilation for the next stage.
    """
    after = dilation
    for qualified, child in list(stage.named_modules()):  # definition (= forward) order
        stride = getattr(child, "stride", None)
        strided = stride in (2, (2, 2))
        if isinstance(child, (nn.MaxPool2d, nn.AvgPool2d)) and strided:
            parent_name, _, attr = qualified.rpartition(".")
            setattr(stage.get_submodule(parent_name), attr, nn.Identity())
            after = dilation * 2
        elif isinstance(child, nn.Conv2d):
            rate = after
            if strided:
                child.stride = (1, 1)
                if after == dilation:  # the strided convolution keeps the previous dilation
                    after = dilation * 2
            if child.kernel_size == (3, 3) and rate > 1:
                child.dilation = (rate, rate)
                child.padding = (rate, rate)
    return after


class _VGGFeatures(nn.Module):
    """VGG's convolutional part only (its 100M-weight classifier is never built)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        vgg = torchvision.models.vgg
        batch_norm = name.endswith("_BN")
        self.features = vgg.make_layers(vgg.cfgs[_VGG_CFGS[name.removesuffix("_BN")]], batch_norm)
        for m in self.modules():  # as torchvision's VGG initialises them
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


def _build_3band(name: str) -> nn.Module:
    """The 3-band network as torchvision (or darknet) names its weights."""
    if name.startswith("VGG"):
        return _VGGFeatures(name)
    if name == "DARKNET53":
        return darknet.Darknet53()
    if name == "MOBILENET_V2":
        return torchvision.models.mobilenet_v2(weights=None)
    return getattr(torchvision.models, name.lower())(weights=None)


def _first_conv(name: str, net: nn.Module) -> tuple[nn.Module, str]:
    """(parent module, attribute) of the first convolution."""
    if name.startswith("RESNET"):
        return net, "conv1"
    if name.startswith("VGG"):
        return net.features, "0"
    if name.startswith("DENSENET"):
        return net.features, "conv0"
    if name == "MOBILENET_V2":
        return net.features[0], "0"
    return net.stem, "conv"


def _stages(name: str, net: nn.Module) -> list[nn.Module]:
    """Cut the network into its five stages (strides 2, 4, 8, 16, 32)."""
    seq = nn.Sequential
    if name.startswith("RESNET"):
        return [
            seq(net.conv1, net.bn1, net.relu),
            seq(net.maxpool, net.layer1),
            net.layer2,
            net.layer3,
            net.layer4,
        ]
    if name.startswith("VGG"):
        layers, stages, current = list(net.features), [], []
        for layer in layers:
            current.append(layer)
            if isinstance(layer, nn.MaxPool2d):
                stages.append(seq(*current))
                current = []
        return stages
    if name.startswith("DENSENET"):
        f = net.features
        return [
            seq(f.conv0, f.norm0, f.relu0),
            seq(f.pool0, f.denseblock1),
            seq(f.transition1, f.denseblock2),
            seq(f.transition2, f.denseblock3),
            seq(f.transition3, f.denseblock4, f.norm5, nn.ReLU(inplace=True)),
        ]
    if name == "MOBILENET_V2":
        f = net.features
        return [f[0:2], f[2:4], f[4:7], f[7:14], f[14:19]]
    return net.stage_list()


def build_backbone(
    name: str,
    in_channels: int,
    pretrained: str | os.PathLike | None = "auto",
    log: Log | None = None,
    output_stride: int = 32,
) -> Backbone:
    """The named backbone for ``in_channels`` bands (pretrained: "auto", None or a file)."""
    log = log or default_log
    net = _build_3band(name)
    path = resolve_weights(name, pretrained, log)
    if path is not None:
        load_into(net, path, name, log)
    parent, attr = _first_conv(name, net)
    conv = getattr(parent, attr)
    if in_channels != conv.in_channels:
        setattr(parent, attr, adapt_first_conv(conv, in_channels, pretrained=path is not None))
        how = "from the RGB filters" if path is not None else "randomly initialised"
        log(f"Backbone {name}: first convolution adapted to {in_channels} bands ({how}).")
    backbone = Backbone(name, _stages(name, net), in_channels, str(path) if path else None)
    if output_stride != 32:
        backbone.set_output_stride(output_stride)
    return backbone
