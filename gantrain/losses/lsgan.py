"""Least-squares GAN (Mao et al., 2017), with the 0-1 coding a=0, b=1, c=1:

    D minimises  1/2 E_x[(D(x) - 1)^2] + 1/2 E_z[D(G(z))^2]
    G minimises  1/2 E_z[(D(G(z)) - 1)^2]

The quadratic keeps pulling fakes that D already scores as real but that lie far
from the data, where the sigmoid cross-entropy has gone flat.
"""

from __future__ import annotations

import torch

from gantrain.losses.base import AdversarialLoss


class LSGANLoss(AdversarialLoss):
    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((real_logits - 1).square().mean() + fake_logits.square().mean())

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return 0.5 * (fake_logits - 1).square().mean()
