"""DCGAN generator and discriminator (Radford, Metz & Chintala, 2016).

All-convolutional: transposed convolutions upsample in G, strided convolutions
downsample in D; BatchNorm everywhere except G's output and D's input layer; ReLU in
G with a Tanh output, LeakyReLU(0.2) in D; weights drawn from N(0, 0.02).

A transposed convolution maps H_in to (H_in - 1) * stride - 2 * padding + kernel
(no dilation, no output padding), which gives the two stacks used here:

* 28x28 (MNIST): (kernel, stride) = (3, 2), (4, 1), (3, 2), (4, 2) takes the 1x1
  noise map through 3, 6, 13 to 28.
* powers of two from 16 to 256: kernel 4, stride 1, padding 0 takes 1 to 4, then
  kernel 4, stride 2, padding 1 doubles the size: 4, 8, 16, 32, 64 for CelebA.

D runs the same stack backwards, ending in one logit per image.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from gantrain.errors import UserError
from gantrain.nets.conditioning import append_as_channels, append_to_vector

# (kernel, stride, padding) of each transposed convolution, from the 1x1 noise map up.
_MNIST_STACK = [(3, 2, 0), (4, 1, 0), (3, 2, 0), (4, 2, 0)]
SUPPORTED_SIZES = (16, 28, 32, 64, 128, 256)


def upsampling_stack(image_size: int) -> list[tuple[int, int, int]]:
    if image_size == 28:
        return list(_MNIST_STACK)
    if image_size in SUPPORTED_SIZES:
        doublings = (image_size // 4).bit_length() - 1
        return [(4, 1, 0)] + [(4, 2, 1)] * doublings
    raise UserError(f"the DCGAN nets cannot make {image_size}x{image_size} images: set "
                    f"data.image_size to one of {', '.join(map(str, SUPPORTED_SIZES))}")


def _widths(width: int, blocks: int) -> list[int]:
    """Channels after each hidden block of G, widest first: ..., 4w, 2w, w (at most 8w)."""
    return [width * min(2 ** k, 8) for k in reversed(range(blocks))]


def dcgan_init(module: nn.Module) -> None:
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class DCGANGenerator(nn.Module):
    def __init__(self, z_dim: int, channels: int, image_size: int, num_classes: int = 0,
                 width: int = 64) -> None:
        super().__init__()
        self.z_dim, self.num_classes = z_dim, num_classes
        stack = upsampling_stack(image_size)
        widths = _widths(width, len(stack) - 1)
        layers: list[nn.Module] = []
        in_ch = z_dim + num_classes
        for (kernel, stride, padding), out_ch in zip(stack, widths):
            layers += [nn.ConvTranspose2d(in_ch, out_ch, kernel, stride, padding, bias=False),
                       nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True)]
            in_ch = out_ch
        kernel, stride, padding = stack[-1]
        layers += [nn.ConvTranspose2d(in_ch, channels, kernel, stride, padding), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(dcgan_init)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        z = append_to_vector(z, y, self.num_classes)
        return self.net(z[:, :, None, None])


class DCGANDiscriminator(nn.Module):
    def __init__(self, channels: int, image_size: int, num_classes: int = 0, width: int = 64,
                 norm: Literal["batch", "none"] = "batch") -> None:
        super().__init__()
        if norm not in ("batch", "none"):
            raise UserError(f"model.discriminator.norm={norm!r} is not known: use batch or none")
        self.num_classes = num_classes
        stack = list(reversed(upsampling_stack(image_size)))
        widths = list(reversed(_widths(width, len(stack) - 1)))
        layers: list[nn.Module] = []
        in_ch = channels + num_classes
        for k, ((kernel, stride, padding), out_ch) in enumerate(zip(stack, widths)):
            layers.append(nn.Conv2d(in_ch, out_ch, kernel, stride, padding, bias=False))
            if k > 0 and norm == "batch":  # never on the input layer
                layers.append(nn.BatchNorm2d(out_ch))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            in_ch = out_ch
        kernel, stride, padding = stack[-1]
        layers.append(nn.Conv2d(in_ch, 1, kernel, stride, padding))
        self.net = nn.Sequential(*layers)
        self.apply(dcgan_init)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(append_as_channels(x, y, self.num_classes)).flatten(1).squeeze(1)
