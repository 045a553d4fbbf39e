"""Pretrained weights from the local torch cache only, and the first convolution adapted to any
band count.

Nothing is ever downloaded: ``pretrained="auto"`` looks for the torchvision checkpoint file in
``torch.hub.get_dir()/checkpoints/`` (``$TORCH_HOME/hub/checkpoints``) and uses it only if it is
already there; otherwise the backbone starts from random weights. Either way the log says which.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import torch
import torchvision
from torch import nn

Log = Callable[[str], None]

#: Backbone name -> torchvision weights enum name (Darknet-53 is ours: see DARKNET53_CHECKPOINT).
WEIGHTS_ENUMS = {
    "DENSENET121": "DenseNet121_Weights",
    "DENSENET161": "DenseNet161_Weights",
    "DENSENET169": "DenseNet169_Weights",
    "DENSENET201": "DenseNet201_Weights",
    "MOBILENET_V2": "MobileNet_V2_Weights",
    "RESNET18": "ResNet18_Weights",
    "RESNET34": "ResNet34_Weights",
    "RESNET50": "ResNet50_Weights",
    "RESNET101": "ResNet101_Weights",
    "RESNET152": "ResNet152_Weights",
    "VGG11": "VGG11_Weights",
    "VGG11_BN": "VGG11_BN_Weights",
    "VGG13": "VGG13_Weights",
    "VGG13_BN": "VGG13_BN_Weights",
    "VGG16": "VGG16_Weights",
    "VGG16_BN": "VGG16_BN_Weights",
    "VGG19": "VGG19_Weights",
    "VGG19_BN": "VGG19_BN_Weights",
}
#: torchvision has no Darknet-53: a state dict of our Darknet-53 (before the first convolution is
#: adapted, i.e. 3 bands) saved under this name in the checkpoints folder is used when present.
DARKNET53_CHECKPOINT = "darknet53.pth"

# Keys of the classification heads, never loaded (every model here has its own head).
_HEAD_PREFIXES = ("fc.", "classifier.")
# Old DenseNet checkpoints name layers 'norm.1' where the modules are now 'norm1' (torchvision).
_DENSENET_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


def default_log(message: str) -> None:
    logging.getLogger("dlstudio_qgis.engine.models").info(message)


def checkpoints_dir() -> Path:
    """The folder torch.hub would download checkpoints to (honours TORCH_HOME at each call)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def checkpoint_names(backbone: str) -> list[str]:
    """File names the backbone's ImageNet weights have in the cache, the default one first."""
    if backbone == "DARKNET53":
        return [DARKNET53_CHECKPOINT]
    enum = getattr(torchvision.models, WEIGHTS_ENUMS[backbone])
    ordered = [enum.DEFAULT] + [w for w in enum if w is not enum.DEFAULT]
    return [os.path.basename(urlparse(w.url).path) for w in ordered]


def cached_checkpoint(backbone: str) -> Path | None:
    """The first of the backbone's checkpoint files present in the local cache, or None."""
    folder = checkpoints_dir()
    for name in checkpoint_names(backbone):
        if (folder / name).is_file():
            return folder / name
    return None


def resolve_weights(backbone: str, pretrained: str | os.PathLike | None, log: Log) -> Path | None:
    """Which file to load for ``pretrained`` ("auto", None/"none", or a path), saying so in the log.

    "auto" and None never fail: no file means random weights. An explicit path must exist.
    """
    if pretrained is None or pretrained is False or str(pretrained).lower() in ("none", ""):
        log(f"Backbone {backbone}: random initial weights (pretrained weights not requested).")
        return None
    if str(pretrained).lower() == "auto":
        found = cached_checkpoint(backbone)
        if found is None:
            wanted = checkpoints_dir() / checkpoint_names(backbone)[0]
            log(
                f"Backbone {backbone}: no ImageNet weights in the local torch cache ({wanted}); "
                "starting from random weights (nothing is downloaded)."
            )
        return found
    path = Path(pretrained)
    if not path.is_file():
        raise FileNotFoundError(f"Backbone {backbone}: pretrained weights file not found: {path}")
    return path


def load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    """A checkpoint's state dict, loaded safely (weights only), with old DenseNet keys renamed."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict")
    renamed = {}
    for key, value in state.items():
        match = _DENSENET_KEY.match(key)
        renamed[match.group(1) + match.group(2) if match else key] = value
    return renamed


def load_into(module: nn.Module, path: Path, backbone: str, log: Log) -> None:
    """Load a checkpoint into a (3-band) backbone module; every non-head weight must be there."""
    state = load_state_dict_file(path)
    state = {k: v for k, v in state.items() if not k.startswith(_HEAD_PREFIXES)}
    own = module.state_dict()
    missing = [
        k
        for k in own
        if k not in state and not k.startswith(_HEAD_PREFIXES) and "num_batches_tracked" not in k
    ]
    if missing:
        raise ValueError(
            f"Backbone {backbone}: {path.name} does not fit ({len(missing)} weights missing, "
            f"e.g. {', '.join(missing[:3])})"
        )
    module.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    log(f"Backbone {backbone}: ImageNet weights loaded from {path}.")


def adapt_first_conv(conv: nn.Conv2d, in_channels: int, pretrained: bool) -> nn.Conv2d:
    """The first convolution for ``in_channels`` bands.

    With pretrained weights, the RGB filters are kept for the first three bands and their mean is
    used for every other band, all scaled by 3 / in_channels so that activations keep their size
    (one band: the sum of the RGB filters). Without, a fresh Kaiming-initialised convolution.
    """
    if in_channels == conv.in_channels:
        return conv
    new = nn.Conv2d(
        in_channels,
        conv.out_channels,
        kernel_size=conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=conv.bias is not None,
    )
    if not pretrained:
        nn.init.kaiming_normal_(new.weight, mode="fan_out", nonlinearity="relu")
        if new.bias is not None:
            nn.init.zeros_(new.bias)
        return new
    with torch.no_grad():
        rgb = conv.weight
        mean = rgb.mean(dim=1, keepdim=True)
        parts = [rgb[:, : min(3, in_channels)]] if in_channels >= 3 else []
        extra = in_channels - (3 if in_channels >= 3 else 0)
        parts += [mean] * extra
        new.weight.copy_(torch.cat(parts, dim=1) * (3.0 / in_channels))
        if new.bias is not None:
            new.bias.copy_(conv.bias)
    return new
