"""Darknet-53 (YOLOv3's backbone, Redmon & Farhadi 2018) in plain torch.

A 3x3 stem, then five stages each opening with a stride-2 3x3 convolution followed by 1, 2, 8, 8
and 4 residual blocks (1x1 halving, 3x3 restoring the channels). Batch norm and LeakyReLU(0.1).
"""

from __future__ import annotations

from torch import nn

#: (output channels, residual blocks) of the five stages
STAGES = ((64, 1), (128, 2), (256, 8), (512, 8), (1024, 4))


def conv_bn_leaky(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Sequential:
    layers = nn.Sequential()
    layers.conv = nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False)
    layers.bn = nn.BatchNorm2d(c_out)
    layers.act = nn.LeakyReLU(0.1, inplace=True)
    return layers


class Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.reduce = conv_bn_leaky(channels, channels // 2, 1)
        self.expand = conv_bn_leaky(channels // 2, channels, 3)

    def forward(self, x):
        return x + self.expand(self.reduce(x))


class Darknet53(nn.Module):
    """The 3-band network; :func:`.backbones.build_backbone` adapts the stem and cuts it."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = conv_bn_leaky(3, 32, 3)
        self.stages = nn.ModuleList()
        c_in = 32
        for c_out, blocks in STAGES:
            stage = nn.Sequential(conv_bn_leaky(c_in, c_out, 3, stride=2))
            for _ in range(blocks):
                stage.append(Residual(c_out))
            self.stages.append(stage)
            c_in = c_out
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, a=0.1, mode="fan_out", nonlinearity="leaky_relu")

    def stage_list(self) -> list[nn.Module]:
        """The five stages, the stem joined to the first (strides 2 to 32)."""
        return [nn.Sequential(self.stem, self.stages[0]), *list(self.stages)[1:]]

    def forward(self, x):
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return x
