"""Small convolutional zoo architectures for 32×32×3 input (any size ≥ 8 works)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from app.backbones.zoo.base import GlobalAvgPool, Stage, ZooModel, check_positive, conv_bn_act


class CnnSmall(ZooModel):
    """Three conv stages (two 3×3 convs each, then 2× max-pool); taps ``stage1..3`` and ``pool``."""

    arch = "cnn_small"

    def __init__(self, num_classes: int = 10, width: int = 32, in_chans: int = 3) -> None:
        check_positive(self.arch, width=width, in_chans=in_chans)
        widths = (width, 2 * width, 4 * width)
        stages: list[Stage] = []
        cin = in_chans
        for i, w in enumerate(widths, start=1):
            block = nn.Sequential(conv_bn_act(cin, w), conv_bn_act(w, w), nn.MaxPool2d(2))
            stages.append(Stage(f"stage{i}", block, w, "conv"))
            cin = w
        stages.append(Stage("pool", GlobalAvgPool(), cin, "vector"))
        super().__init__(stages, num_classes)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act(out + self.shortcut(x))


class ResNetSmall(ZooModel):
    """CIFAR-style ResNet: a 3×3 stem, three BasicBlock stages (stride 1, 2, 2); taps ``stage1..3``, ``pool``."""

    arch = "resnet_small"

    def __init__(self, num_classes: int = 10, width: int = 16, blocks: Sequence[int] = (2, 2, 2),
                 in_chans: int = 3) -> None:
        check_positive(self.arch, width=width, in_chans=in_chans)
        blocks = tuple(blocks)
        if len(blocks) != 3:
            raise ValueError(f"{self.arch}: blocks must have 3 entries (one per stage), got {blocks!r}")
        check_positive(self.arch, **{f"blocks[{i}]": b for i, b in enumerate(blocks)})
        stages: list[Stage] = []
        cin = width
        for i, (n_blocks, mult, stride) in enumerate(zip(blocks, (1, 2, 4), (1, 2, 2), strict=True), start=1):
            cout = width * mult
            layers: list[nn.Module] = [conv_bn_act(in_chans, width)] if i == 1 else []
            for b in range(n_blocks):
                layers.append(BasicBlock(cin, cout, stride if b == 0 else 1))
                cin = cout
            stages.append(Stage(f"stage{i}", nn.Sequential(*layers), cout, "conv"))
        stages.append(Stage("pool", GlobalAvgPool(), cin, "vector"))
        super().__init__(stages, num_classes)
