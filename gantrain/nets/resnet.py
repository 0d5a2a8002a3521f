"""CycleGAN's ResNet generator (Zhu et al., 2017, after Johnson et al., 2016).

A 7x7 conv to ``width``, two 3x3 stride-2 convs down to a quarter of the size (2w,
4w), ``blocks`` residual blocks at 4w, two 3x3 stride-2 transposed convs back up (2w,
w) and a 7x7 conv to ``out_channels`` with a Tanh. Each residual block is
x + norm(conv(relu(norm(conv(x))))) with 3x3 convs. Every conv except the down/up
sampling ones is preceded by reflection padding instead of zero padding, to reduce
artifacts at the image borders.

By default ``blocks`` follows the paper: 6 for 128x128 images, 9 for 256x256 and up.
Normalisation is InstanceNorm without affine parameters, as in the authors' code.
"""

from __future__ import annotations

import torch
from torch import nn

from gantrain.checks import Count, PositiveInt, at_least
from gantrain.errors import OptionError
from gantrain.nets.dcgan import dcgan_init
from gantrain.nets.norms import Norm2d, check_norm, conv_bias, norm2d

MIN_SIZE = 8  # the 4x smaller bottleneck must be at least 2x2 for its reflection padding


def default_blocks(image_size: int) -> int:
    return 9 if image_size >= 256 else 6


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, norm: Norm2d) -> None:
        super().__init__()
        bias = conv_bias(norm)
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=bias),
            norm2d(norm, channels),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=bias),
            norm2d(norm, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        image_size: int,
        width: PositiveInt = 64,
        blocks: Count | None = None,
        norm: Norm2d = "instance",
    ) -> None:
        super().__init__()
        check_norm(norm)
        at_least("width", width, 1)
        if image_size % 4 or image_size < MIN_SIZE:
            raise OptionError(
                "image_size",
                f"the ResNet generator downsamples by 4, so it needs an image size "
                f"that is a multiple of 4 and at least {MIN_SIZE}, not {image_size}: "
                f"set image_size to e.g. 128 or 256",
            )
        self.blocks = default_blocks(image_size) if blocks is None else blocks
        if self.blocks < 0:
            raise OptionError("blocks", f"blocks={self.blocks} is negative: use 6 or 9, or leave it unset")
        bias = conv_bias(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, width, 7, bias=bias),
            norm2d(norm, width),
            nn.ReLU(inplace=True),
        ]
        for mult in (1, 2):
            layers += [
                nn.Conv2d(width * mult, width * mult * 2, 3, 2, 1, bias=bias),
                norm2d(norm, width * mult * 2),
                nn.ReLU(inplace=True),
            ]
        layers += [ResidualBlock(width * 4, norm) for _ in range(self.blocks)]
        for mult in (4, 2):
            # output_padding 1 makes the size exactly double: (H - 1) * 2 - 2 + 3 + 1 = 2H
            layers += [
                nn.ConvTranspose2d(width * mult, width * mult // 2, 3, 2, 1, output_padding=1, bias=bias),
                norm2d(norm, width * mult // 2),
                nn.ReLU(inplace=True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, out_channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(dcgan_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
