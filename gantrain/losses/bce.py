"""The original GAN objective on logits (Goodfellow et al., 2014).

D maximises  E_x[log D(x)] + E_z[log(1 - D(G(z)))], i.e. minimises the binary
cross-entropy of real images labelled 1 and generated ones labelled 0.

G has two choices:
* ``minimax``: minimise  E_z[log(1 - D(G(z)))]  (the game as written; its gradient
  vanishes while D confidently rejects the fakes, early in training);
* ``non_saturating`` (default): minimise  -E_z[log D(G(z))], the same fixed point
  with strong gradients when D(G(z)) is near 0.

With D(x) = sigmoid(l): log D = -softplus(-l) and log(1 - D) = -softplus(l).
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
import torch.nn.functional as F

from gantrain.checks import Weight
from gantrain.errors import OptionError
from gantrain.losses.base import AdversarialLoss

Variant = Literal["non_saturating", "minimax"]
VARIANTS = get_args(Variant)


class BCELoss(AdversarialLoss):
    def __init__(self, variant: Variant = "non_saturating", gp_weight: Weight = 0.0, r1_weight: Weight = 0.0) -> None:
        super().__init__(gp_weight, r1_weight)
        if variant not in VARIANTS:
            raise OptionError("variant", f"variant={variant!r} is not known: use {' or '.join(VARIANTS)}")
        self.variant = variant

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        if self.variant == "minimax":
            return -F.softplus(fake_logits).mean()
        return F.softplus(-fake_logits).mean()

    @staticmethod
    def score(logits: torch.Tensor) -> torch.Tensor:
        """What to log as D(x): the probability of 'real'."""
        return torch.sigmoid(logits)
