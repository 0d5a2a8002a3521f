"""What every adversarial loss shares: the interface the models call, and the
penalties on D's input gradients.

A loss object answers four questions for a model:
* ``d_loss(real_logits, fake_logits)`` and ``g_loss(fake_logits)``: the objective;
* ``penalty(D, real, fake, y, real_logits)``: what is added to D's loss on top;
* ``constrain(D)``: what happens to D's weights after each of its updates;
* ``score(logits)``: what to log as D(x).

The penalties are options of every loss (``gp_weight``, ``r1_weight``), so a loss
that needs one owns it: ``loss=wgan_gp`` is the Wasserstein loss with
``gp_weight=10`` and can never silently drop the penalty.

* Gradient penalty (Gulrajani et al., 2017): ``lambda * E[(||grad D(x_hat)||_2 - 1)^2]``
  at ``x_hat = e * x + (1 - e) * G(z)``, one ``e ~ U(0, 1)`` per sample.
* R1 (Mescheder et al., 2018): ``gamma / 2 * E[||grad D(x)||_2^2]`` on real images.

Both are per-sample gradients, which BatchNorm in D would mix across the batch;
``build.py`` refuses either penalty on a D that has BatchNorm.

A D that scores each sample with one number differentiates that number. A PatchGAN
(pix2pix, CycleGAN) scores each sample with a map of patch logits: the penalties
differentiate the mean of the map, the score its loss averages, so that ``D(x)``
below stands for ``mean over patches of D(x)``. For pix2pix, D's input is the pair
(A, B) stacked on the channels; its interpolates share A and mix B with G(A).
"""

from __future__ import annotations

import torch

from gantrain.checks import Weight, at_least


def interpolate(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Points on the segments between real and fake images, one weight per sample."""
    e = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), device=real.device, dtype=real.dtype)
    return torch.lerp(fake, real, e)  # e * real + (1 - e) * fake


def input_gradients(outputs: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """d outputs / d inputs, per sample and flattened, kept in the graph so that the
    penalty built from it can itself be differentiated (for D's update). In float32:
    under bf16 autocast the norms and squares of the penalties are then taken at full
    precision (the penalty is a small difference, ``||g|| - 1``)."""
    scores = outputs.float().reshape(len(outputs), -1).mean(1)  # one score per sample (a patch map's mean)
    (grad,) = torch.autograd.grad(scores.sum(), inputs, create_graph=True)
    return grad.float().flatten(1)


def gradient_penalty(D, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    """E[(||grad D(x_hat)||_2 - 1)^2], unweighted; D is given ``y`` only when there is one."""
    # float32 points: under bf16 autocast the fakes come out of G in bf16.
    x_hat = interpolate(real.detach().float(), fake.detach().float()).requires_grad_(True)
    grad = input_gradients(D(x_hat) if y is None else D(x_hat, y), x_hat)
    return (grad.norm(2, dim=1) - 1).square().mean()


def r1_penalty(real_logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """E[||grad D(x)||_2^2] on real images, unweighted; ``real`` must have been given to
    D with ``requires_grad`` (the model does that when ``needs_real_grad``)."""
    return input_gradients(real_logits, real).square().sum(1).mean()


class AdversarialLoss:
    # Where D's score separates "real" (above) from "fake" (below): 0 for logits and the
    # hinge's margin scores; ADA's overfitting statistic r_t = E[sign(D(real) - boundary)].
    # None for a score with no such point (a Wasserstein critic's drifts freely).
    decision_boundary: float | None = 0.0

    def __init__(self, gp_weight: Weight = 0.0, r1_weight: Weight = 0.0) -> None:
        at_least("gp_weight", gp_weight, 0)
        at_least("r1_weight", r1_weight, 0)
        self.gp_weight, self.r1_weight = float(gp_weight), float(r1_weight)

    @property
    def needs_real_grad(self) -> bool:
        return self.r1_weight > 0

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @staticmethod
    def score(logits: torch.Tensor) -> torch.Tensor:
        """What to log as D(x): the raw score, unless the loss says otherwise."""
        return logits

    def penalty(
        self, D, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor | None, real_logits: torch.Tensor
    ) -> tuple[torch.Tensor | float, dict[str, torch.Tensor]]:
        """The weighted sum of the enabled penalties, and their unweighted values to log."""
        total: torch.Tensor | float = 0.0
        logs: dict[str, torch.Tensor] = {}
        if self.gp_weight:
            gp = gradient_penalty(D, real, fake, y)
            total = total + self.gp_weight * gp
            logs["penalty/gp"] = gp.detach()
        if self.r1_weight:
            r1 = r1_penalty(real_logits, real)
            total = total + 0.5 * self.r1_weight * r1
            logs["penalty/r1"] = r1.detach()
        return total, logs

    def constrain(self, D) -> None:
        """Called after every D update; most losses leave D's weights alone."""
