"""Least-squares GAN (Mao et al., 2017), with the 0-1 coding a=0, b=1, c=1:

    D minimises  E_x[(D(x) - 1)^2] + E_z[D(G(z))^2]
    G minimises  E_z[(D(G(z)) - 1)^2]

The quadratic keeps pulling fakes that D already scores as real but that lie far
from the data, where the sigmoid cross-entropy has gone flat.

Convention, shared by every loss here: ``d_loss`` is the sum of D's real and fake
terms and ``g_loss`` G's term, each a plain mean, with no constant factor. Mao et al.
write a 1/2 in front of every term; that scales both players' objectives alike,
which Adam and RMSprop do not see (their steps are invariant to a constant factor),
so for a noise GAN the training is the paper's. Without it, ``g_loss`` is the mean
squared error ``MSE(D(G(z)), 1)`` that the pix2pix and CycleGAN authors' code uses,
so the translation models' objectives (adversarial + 100 L1, adversarial + 10 cycle
+ 5 identity) weigh the adversarial term exactly as those papers do; their D halves
its loss itself, as that code does.
"""

from __future__ import annotations

import torch

from gantrain.losses.base import AdversarialLoss


class LSGANLoss(AdversarialLoss):
    decision_boundary = 0.5  # midway between the codes of fake (0) and real (1)

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return (real_logits - 1).square().mean() + fake_logits.square().mean()

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return (fake_logits - 1).square().mean()
