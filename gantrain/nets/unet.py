"""pix2pix's U-Net generator (Isola et al., 2017; after Ronneberger et al., 2015).

An encoder-decoder whose encoder halves the image with 4x4 stride-2 convolutions down
to a 1x1 bottleneck, so the number of levels follows the image size (log2 of it: 8
for 256x256, 7 for 128, 6 for 64). Widths go w, 2w, 4w, 8w, 8w, ... (capped at 8w).
The decoder mirrors it with 4x4 stride-2 transposed convolutions, and every decoder
block's output is concatenated with the encoder feature map of the same resolution:
these skips carry the low-level detail (edges, positions) that the bottleneck cannot.

Encoder blocks are conv -> norm -> LeakyReLU(0.2); neither the outermost nor the 1x1
innermost block is normalised, and the bottleneck's activation is the decoder's ReLU.
Decoder blocks are ReLU -> transposed conv -> norm, with Dropout (pix2pix's only
noise source) in the three blocks just after the bottleneck's own; the outermost
goes to ``out_channels`` through a Tanh.

The layout reproduces the authors' code: there the skip tensor has been through the
encoder's in-place LeakyReLU and the decoder's ReLU then acts on the concatenation,
which is what applying ReLU first in each decoder block does here. As in that code,
the 256x256 net drops out in the decoder blocks that read levels 7, 6 and 5 of its 8
(the paper's table puts dropout one block nearer the bottleneck); shallower nets keep
it on the (up to) three blocks after the bottleneck's, never on the outermost.
"""

from __future__ import annotations

import torch
from torch import nn

from gantrain.checks import PositiveInt, at_least, within
from gantrain.errors import OptionError
from gantrain.nets.dcgan import dcgan_init
from gantrain.nets.norms import Norm2d, check_norm, conv_bias, norm2d

DROPOUT_BLOCKS = 3
MIN_SIZE = 16


def unet_depth(image_size: int) -> int:
    """Number of down blocks that take ``image_size`` to a 1x1 bottleneck."""
    if image_size < MIN_SIZE or image_size & (image_size - 1):
        raise OptionError(
            "image_size",
            f"the U-Net generator needs a power-of-two image size of at least "
            f"{MIN_SIZE}, not {image_size}: set image_size to e.g. 64, 128 or 256",
        )
    return image_size.bit_length() - 1


class UNetGenerator(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        image_size: int,
        width: PositiveInt = 64,
        norm: Norm2d = "batch",
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        check_norm(norm)
        at_least("width", width, 1)
        within("dropout", dropout, 0.0, 1.0, "the probability of zeroing a unit, 0.5 in pix2pix")
        depth = self.depth = unet_depth(image_size)
        widths = [width * min(2**k, 8) for k in range(depth)]  # channels after each down block

        downs: list[nn.Module] = []
        for k, out_ch in enumerate(widths):
            in_ch = in_channels if k == 0 else widths[k - 1]
            normalised = 0 < k < depth - 1
            layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, 4, 2, 1, bias=conv_bias(norm, normalised))]
            if normalised:
                layers.append(norm2d(norm, out_ch))
            if k < depth - 1:  # the bottleneck's activation is the decoder's ReLU
                layers.append(nn.LeakyReLU(0.2, inplace=True))
            downs.append(nn.Sequential(*layers))

        # ups[k] brings level k+1 back to the resolution of down block k's input; it reads
        # the concatenation [skip_k+1, ups[k+1] output] except at the bottleneck.
        ups: list[nn.Module] = []
        for k in range(depth):
            in_ch = widths[k] if k == depth - 1 else 2 * widths[k]
            layers = [nn.ReLU(inplace=False)]  # in place would overwrite encode()'s bottleneck
            if k == 0:
                layers += [nn.ConvTranspose2d(in_ch, out_channels, 4, 2, 1), nn.Tanh()]
            else:
                out_ch = widths[k - 1]
                layers += [nn.ConvTranspose2d(in_ch, out_ch, 4, 2, 1, bias=conv_bias(norm)), norm2d(norm, out_ch)]
                if dropout > 0 and depth - 1 - DROPOUT_BLOCKS <= k < depth - 1:
                    layers.append(nn.Dropout(dropout))
            ups.append(nn.Sequential(*layers))

        self.downs = nn.ModuleList(downs)
        self.ups = nn.ModuleList(ups)
        self.apply(dcgan_init)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps of every down block, outermost first; the last is the 1x1 bottleneck."""
        features = []
        for down in self.downs:
            x = down(x)
            features.append(x)
        return features

    def decode(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = self.ups[-1](features[-1])
        for k in reversed(range(self.depth - 1)):
            x = self.ups[k](torch.cat([features[k], x], dim=1))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))
