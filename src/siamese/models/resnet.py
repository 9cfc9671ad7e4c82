"""`resnet`: a small residual network (He et al. 2016) for faces and other natural images.

Intended input: images (C, H, W) of any size, e.g. ORL faces (1, 112, 92) or colour crops
(3, 64, 64); global average pooling makes the feature size independent of H and W.

A stem (3×3 convolution with stride `stem_stride`, batch norm, ReLU), then one stage per entry
of `widths` with `blocks[i]` basic blocks (3×3 conv, BN, ReLU, 3×3 conv, BN, plus the input —
through a 1×1 conv and BN when the shape changes — then ReLU); `blocks` may be one number for
every stage. Every stage after the first starts with stride 2. Then global average pooling
→ (N, widths[-1]).

The default, widths (32, 64, 128, 256) with one block each (`blocks=1`), has 1,225,824
parameters for one input channel and 1,226,400 for three. Its cost grows with H·W: for large
images `stem_stride=2` quarters it.

Activations are kept channels-last: on a 2-core CPU that made a training step (batch 32) 1.28×
faster on (1, 112, 92) faces and 1.20× on (3, 64, 64) images, and inference 1.35× faster.
Every strided convolution is a `StridedConv2d`: at widths that are not multiples of 16 oneDNN's
channels-last backward kernels for them crash the process on some CPUs, and it trains those
layers without them (see `siamese.models.strided_convolution`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from siamese.errors import ConfigError
from siamese.models.arguments import checked_input_shape, checked_positive, checked_sizes
from siamese.models.strided_convolution import StridedConv2d


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with a shortcut: (N, C_in, H, W) → (N, C_out, H/stride, W/stride)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = StridedConv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                StridedConv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, H, W) → (N, C_out, ⌈H/stride⌉, ⌈W/stride⌉)."""
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + self.shortcut(x))


class ResNet(nn.Module):
    """Args:
    input_shape: one image's shape (C, H, W).
    widths: output channels of each stage.
    blocks: number of basic blocks in each stage (same length as `widths`), or one number
        for every stage.
    stem_stride: stride of the first convolution (2 for large images).

    `out_features` is `widths[-1]`.
    """

    encoder_name = "resnet"

    def __init__(
        self,
        input_shape: Sequence[int],
        widths: Sequence[int] = (32, 64, 128, 256),
        blocks: int | Sequence[int] = 1,
        stem_stride: int = 1,
    ) -> None:
        super().__init__()
        self.input_shape = checked_input_shape("resnet", input_shape)
        stage_widths = checked_sizes("resnet", "widths", widths, allow_empty=False)
        if isinstance(blocks, int):
            blocks = [blocks] * len(stage_widths)
        stage_blocks = checked_sizes("resnet", "blocks", blocks, allow_empty=False)
        stride = checked_positive("resnet", "stem_stride", stem_stride)
        if len(stage_blocks) != len(stage_widths):
            raise ConfigError(
                f"encoder 'resnet' has {len(stage_widths)} stages in widths={list(stage_widths)} "
                f"but {len(stage_blocks)} in blocks={list(stage_blocks)}: give one block count per width"
            )
        self.stem = nn.Sequential(
            StridedConv2d(self.input_shape[0], stage_widths[0], 3, stride, padding=1, bias=False),
            nn.BatchNorm2d(stage_widths[0]),
            nn.ReLU(inplace=True),
        )
        stages: list[nn.Module] = []
        channels = stage_widths[0]
        for i, (width, count) in enumerate(zip(stage_widths, stage_blocks, strict=True)):
            first_stride = 1 if i == 0 else 2
            stage = [BasicBlock(channels, width, first_stride)]
            stage += [BasicBlock(width, width) for _ in range(count - 1)]
            stages.append(nn.Sequential(*stage))
            channels = width
        self.stages = nn.Sequential(*stages)
        self.out_features = channels
        self.encoder_options: dict[str, Any] = {
            "widths": list(stage_widths),
            "blocks": list(stage_blocks),
            "stem_stride": stride,
        }
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) float images → (N, widths[-1]) features."""
        x = x.contiguous(memory_format=torch.channels_last)
        return self.stages(self.stem(x)).mean(dim=(2, 3))
