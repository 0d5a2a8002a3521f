"""The vanilla GAN's fully connected nets (Goodfellow et al., 2014).

G: ``blocks`` of Linear -> BatchNorm -> ReLU, doubling the width each time, then a
Linear to all the pixels and a Tanh (images live in [-1, 1]).
D: the flattened image through Linear -> LeakyReLU(0.2) blocks, halving the width,
down to one logit. No normalisation layer in D, so any penalty applies; ``norm:
spectral`` divides every linear layer's weight (and the projection embedding) by its
largest singular value (Miyato et al., 2018; see ``nets/norms.py``). D's blocks, for
Freeze-D (``freeze``, Mo et al., 2020; see ``nets/freeze.py``): each Linear with its
LeakyReLU, input first, then the output Linear (with the projection embedding, which is
never frozen).
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import nn

from gantrain.checks import Count, PositiveInt, at_least
from gantrain.nets.conditioning import Conditioning, Projection, append_to_vector, check_conditioning
from gantrain.nets.freeze import freeze_blocks
from gantrain.nets.norms import SPECTRAL, check_norm, spectrally_normalised


class MLPGenerator(nn.Module):
    def __init__(
        self,
        z_dim: int,
        channels: int,
        image_size: int,
        num_classes: int = 0,
        hidden: PositiveInt = 128,
        blocks: Count = 4,
    ) -> None:
        super().__init__()
        at_least("hidden", hidden, 1)
        at_least("blocks", blocks, 0)
        self.z_dim, self.num_classes = z_dim, num_classes
        self.shape = (channels, image_size, image_size)
        layers: list[nn.Module] = []
        in_dim = z_dim + num_classes
        for k in range(blocks):
            out_dim = hidden * 2**k
            layers += [nn.Linear(in_dim, out_dim), nn.BatchNorm1d(out_dim), nn.ReLU(inplace=True)]
            in_dim = out_dim
        layers += [nn.Linear(in_dim, channels * image_size * image_size), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(append_to_vector(z, y, self.num_classes)).view(-1, *self.shape)


MLPNorm = Literal["none", "spectral"]


class MLPDiscriminator(nn.Module):
    norm_choices: tuple[str, ...] = get_args(MLPNorm)

    def __init__(
        self,
        channels: int,
        image_size: int,
        num_classes: int = 0,
        hidden: PositiveInt = 128,
        blocks: Count = 3,
        conditioning: Conditioning = "concat",
        norm: MLPNorm = "none",
        freeze: Count = 0,
    ) -> None:
        """``freeze``: the first blocks whose weights stay fixed (Freeze-D, see the module)."""
        super().__init__()
        check_norm(norm, choices=self.norm_choices)
        check_conditioning(conditioning)
        at_least("hidden", hidden, 1)
        at_least("blocks", blocks, 0)
        self.num_classes = num_classes
        concat = num_classes if conditioning == "concat" else 0
        layers: list[nn.Module] = []
        in_dim = channels * image_size * image_size + concat
        for k in reversed(range(blocks)):
            out_dim = hidden * 2**k
            layers += [nn.Linear(in_dim, out_dim), nn.LeakyReLU(0.2, inplace=True)]
            in_dim = out_dim
        layers.append(nn.Linear(in_dim, 1))
        self.net = nn.Sequential(*layers)
        self.projection = Projection(num_classes, in_dim) if num_classes and not concat else None
        if norm == SPECTRAL:
            spectrally_normalised(self)
        freeze_blocks(self.net, freeze)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.projection is None:
            return self.net(append_to_vector(x.flatten(1), y, self.num_classes)).squeeze(1)
        features = self.net[:-1](x.flatten(1))
        return self.net[-1](features).squeeze(1) + self.projection(features, y)
