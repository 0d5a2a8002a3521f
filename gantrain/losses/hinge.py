"""Hinge loss (Lim & Ye, 2017; used by SN-GAN, Miyato et al., 2018, and BigGAN):

    D minimises  E_x[max(0, 1 - D(x))] + E_z[max(0, 1 + D(G(z)))]
    G minimises  -E_z[D(G(z))]

D stops pushing on samples it already classifies with a margin of 1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gantrain.losses.base import AdversarialLoss


class HingeLoss(AdversarialLoss):
    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return -fake_logits.mean()
