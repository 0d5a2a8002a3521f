"""DCGAN generator and discriminator (Radford, Metz & Chintala, 2016).

All-convolutional: transposed convolutions upsample in G, strided convolutions
downsample in D; BatchNorm everywhere except G's output and D's input layer; ReLU in
G with a Tanh output, LeakyReLU(0.2) in D; weights drawn from N(0, 0.02). D's
normalisation can be swapped (``norm``: layer, instance, none) for critics trained
with a gradient penalty, or for spectral normalisation (``norm: spectral``, Miyato et
al., 2018; see ``nets/norms.py``): no BatchNorm, and every conv of D, the input and
output ones included, and the projection embedding normalised by its largest
singular value, as in SN-GAN's standard CNN and Miyato & Koyama's projection D.

A transposed convolution maps H_in to (H_in - 1) * stride - 2 * padding + kernel
(no dilation, no output padding), which gives the two stacks used here:

* 28x28 (MNIST): (kernel, stride) = (3, 2), (4, 1), (3, 2), (4, 2) takes the 1x1
  noise map through 3, 6, 13 to 28.
* powers of two from 16 to 256: kernel 4, stride 1, padding 0 takes 1 to 4, then
  kernel 4, stride 2, padding 1 doubles the size: 4, 8, 16, 32, 64 for CelebA.

D runs the same stack backwards, ending in one logit per image. Its blocks, for
Freeze-D (``freeze``, Mo et al., 2020; see ``nets/freeze.py``): each strided conv with
its norm and LeakyReLU, input first, then the output conv (with the projection
embedding, which is never frozen).
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import nn

from gantrain.checks import Count, PositiveInt, at_least
from gantrain.errors import OptionError
from gantrain.nets.conditioning import (
    Conditioning,
    Projection,
    append_as_channels,
    append_to_vector,
    check_conditioning,
)
from gantrain.nets.freeze import freeze_blocks
from gantrain.nets.norms import SPECTRAL, check_norm, spectrally_normalised

# (kernel, stride, padding) of each transposed convolution, from the 1x1 noise map up.
_MNIST_STACK = [(3, 2, 0), (4, 1, 0), (3, 2, 0), (4, 2, 0)]
SUPPORTED_SIZES = (16, 28, 32, 64, 128, 256)


def upsampling_stack(image_size: int) -> list[tuple[int, int, int]]:
    if image_size == 28:
        return list(_MNIST_STACK)
    if image_size in SUPPORTED_SIZES:
        doublings = (image_size // 4).bit_length() - 1
        return [(4, 1, 0)] + [(4, 2, 1)] * doublings
    raise OptionError(
        "image_size",
        f"the DCGAN nets cannot make {image_size}x{image_size} images: set "
        f"image_size to one of {', '.join(map(str, SUPPORTED_SIZES))}",
    )


def _widths(width: int, blocks: int) -> list[int]:
    """Channels after each hidden block of G, widest first: ..., 4w, 2w, w (at most 8w)."""
    return [width * min(2**k, 8) for k in reversed(range(blocks))]


def dcgan_init(module: nn.Module) -> None:
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class DCGANGenerator(nn.Module):
    def __init__(
        self, z_dim: int, channels: int, image_size: int, num_classes: int = 0, width: PositiveInt = 64
    ) -> None:
        super().__init__()
        at_least("width", width, 1)
        self.z_dim, self.num_classes = z_dim, num_classes
        stack = upsampling_stack(image_size)
        widths = _widths(width, len(stack) - 1)
        layers: list[nn.Module] = []
        in_ch = z_dim + num_classes
        for (kernel, stride, padding), out_ch in zip(stack, widths):
            layers += [
                nn.ConvTranspose2d(in_ch, out_ch, kernel, stride, padding, bias=False),
                nn.BatchNorm2d(out_ch),
                nn.ReLU(inplace=True),
            ]
            in_ch = out_ch
        kernel, stride, padding = stack[-1]
        layers += [nn.ConvTranspose2d(in_ch, channels, kernel, stride, padding), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(dcgan_init)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        z = append_to_vector(z, y, self.num_classes)
        return self.net(z[:, :, None, None])


Norm = Literal["batch", "layer", "instance", "none", "spectral"]
NORMS: tuple[str, ...] = get_args(Norm)


def norm_layer(norm: str, channels: int) -> nn.Module:
    """D's normalisation layer. BatchNorm mixes samples, which breaks per-sample gradient
    penalties; the WGAN-GP paper suggests layer normalisation for its critic. (Spectral
    normalisation acts on the weights instead and adds no layer.)"""
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "layer":  # over (C, H, W) of each sample
        return nn.GroupNorm(1, channels)
    return nn.InstanceNorm2d(channels, affine=True)


class DCGANDiscriminator(nn.Module):
    norm_choices: tuple[str, ...] = NORMS

    def __init__(
        self,
        channels: int,
        image_size: int,
        num_classes: int = 0,
        width: PositiveInt = 64,
        norm: Norm = "batch",
        conditioning: Conditioning = "concat",
        freeze: Count = 0,
    ) -> None:
        """``freeze``: the first blocks whose weights stay fixed (Freeze-D, see the module)."""
        super().__init__()
        check_norm(norm, choices=self.norm_choices)
        check_conditioning(conditioning)
        at_least("width", width, 1)
        self.num_classes = num_classes
        stack = list(reversed(upsampling_stack(image_size)))
        widths = list(reversed(_widths(width, len(stack) - 1)))
        layers: list[nn.Module] = []
        concat = num_classes if conditioning == "concat" else 0
        in_ch = channels + concat
        for k, ((kernel, stride, padding), out_ch) in enumerate(zip(stack, widths)):
            normalised = k > 0 and norm not in ("none", SPECTRAL)  # never on the input layer
            layers.append(nn.Conv2d(in_ch, out_ch, kernel, stride, padding, bias=not normalised))
            if normalised:
                layers.append(norm_layer(norm, out_ch))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            in_ch = out_ch
        kernel, stride, padding = stack[-1]
        layers.append(nn.Conv2d(in_ch, 1, kernel, stride, padding))
        self.net = nn.Sequential(*layers)
        self.projection = Projection(num_classes, in_ch) if num_classes and not concat else None
        self.apply(dcgan_init)
        if norm == SPECTRAL:
            spectrally_normalised(self)
        freeze_blocks(self.net, freeze)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.projection is None:
            return self.net(append_as_channels(x, y, self.num_classes)).flatten(1).squeeze(1)
        features = self.net[:-1](x)
        logits = self.net[-1](features).flatten(1).squeeze(1)
        return logits + self.projection(features.sum((2, 3)), y)
