"""The PatchGAN discriminator of pix2pix and CycleGAN (Isola et al., 2017; Zhu et al., 2017).

A fully convolutional D that outputs a map of logits, each judging one overlapping
patch of the input as real or fake; the loss averages over the map. With ``layers``=3
every logit sees a 70x70 patch, and a 256x256 input gives a 30x30 map.

Stack (4x4 kernels, padding 1 everywhere): a stride-2 conv to ``width`` with no norm,
then ``layers``-1 stride-2 convs doubling the width (capped at 8w), a stride-1 conv
to ``width * min(2**layers, 8)``, each with norm and LeakyReLU(0.2), and a stride-1
conv to one channel. For pix2pix the caller concatenates the condition and the
image on the channels, so ``in_channels`` is the sum of both; the net does not care.
``norm: spectral`` (Miyato et al., 2018; see ``nets/norms.py``) puts no normalisation
layer anywhere and divides the weight of every conv, the first and last included, by
its largest singular value.

Receptive field: walking the stack back from a single output logit, a layer with
kernel k and stride s turns a window of r positions into (r - 1) * s + k positions of
its input. ``receptive_field`` applies that to the same stack the net is built from:
1 -> 4 -> 7 -> 16 -> 34 -> 70 for ``layers``=3.

Blocks, for Freeze-D (``freeze``, Mo et al., 2020; see ``nets/freeze.py``): each conv
with its norm and LeakyReLU, input first, then the output conv: ``layers`` + 2 blocks.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import nn

from gantrain.checks import Count, PositiveInt, at_least
from gantrain.errors import OptionError
from gantrain.nets.dcgan import dcgan_init
from gantrain.nets.freeze import freeze_blocks
from gantrain.nets.norms import SPECTRAL, check_norm, conv_bias, norm2d, spectrally_normalised

KERNEL, PADDING = 4, 1
# nets/norms.py's choices for the image-to-image nets, and spectral normalisation.
PatchNorm = Literal["batch", "instance", "none", "spectral"]


def conv_strides(layers: int) -> list[int]:
    """Stride of each conv, input first: ``layers`` downsampling convs, then two at stride 1."""
    if layers < 1:
        raise OptionError(
            "layers",
            f"the PatchGAN needs at least one downsampling layer, not {layers}: "
            f"set layers to 1 or more (3 gives 70x70 patches)",
        )
    return [2] * layers + [1, 1]


def receptive_field(layers: int) -> int:
    """Side of the input window that one output logit sees, from the kernels and strides."""
    field = 1
    for stride in reversed(conv_strides(layers)):
        field = (field - 1) * stride + KERNEL
    return field


def logit_map_size(image_size: int, layers: int) -> int:
    """Side of the logit map for a square input: each conv maps n to (n + 2p - k) // s + 1."""
    size = image_size
    for stride in conv_strides(layers):
        size = (size + 2 * PADDING - KERNEL) // stride + 1
    return size


class PatchDiscriminator(nn.Module):
    norm_choices: tuple[str, ...] = get_args(PatchNorm)

    def __init__(
        self,
        in_channels: int,
        width: PositiveInt = 64,
        layers: PositiveInt = 3,
        norm: PatchNorm = "batch",
        image_size: int | None = None,
        freeze: Count = 0,
    ) -> None:
        """``image_size``: when given, checked to leave a logit map of at least 2x2 (a
        1x1 map before the last conv cannot be normalised per sample). ``freeze``: the
        first blocks whose weights stay fixed (Freeze-D, see the module)."""
        super().__init__()
        check_norm(norm, choices=self.norm_choices)
        at_least("width", width, 1)
        strides = conv_strides(layers)
        if image_size is not None and logit_map_size(image_size, layers) < 2:
            smallest = next(n for n in range(8, 4097, 8) if logit_map_size(n, layers) >= 2)
            # One option per error: the image size is the one named; the other fix reads bare.
            raise OptionError(
                "image_size",
                f"a PatchGAN with layers={layers} cannot judge {image_size}x{image_size} "
                f"images: set image_size to {smallest} or more, or lower the "
                f"discriminator's layers",
            )
        layer_norm = "none" if norm == SPECTRAL else norm
        stack: list[nn.Module] = []
        in_ch = in_channels
        for k, stride in enumerate(strides[:-1]):
            out_ch = width * min(2**k, 8)
            normalised = k > 0  # never on the input layer (an Identity for none and spectral)
            stack.append(nn.Conv2d(in_ch, out_ch, KERNEL, stride, PADDING, bias=conv_bias(layer_norm, normalised)))
            if normalised:
                stack.append(norm2d(layer_norm, out_ch))
            stack.append(nn.LeakyReLU(0.2, inplace=True))
            in_ch = out_ch
        stack.append(nn.Conv2d(in_ch, 1, KERNEL, strides[-1], PADDING))  # one logit per patch
        self.net = nn.Sequential(*stack)
        self.apply(dcgan_init)
        if norm == SPECTRAL:
            spectrally_normalised(self)
        freeze_blocks(self.net, freeze)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
