"""What a model asks of an augmentation, and how D is called through one.

Both recipes (DiffAugment, Zhao et al., 2020; ADA, Karras et al., 2020) augment every
image D sees, real and generated, in D's step and in G's, and inside the penalties: the
discriminator being trained is ``D o T`` with ``T`` a random differentiable augmentation,
so G's gradient passes through ``T`` and R1 / the gradient penalty differentiate
``D(T(x))`` with respect to the un-augmented ``x`` (R1: as the authors' ADA code does).
The gradient penalty (which no author combined with these augmentations) thus holds
``D o T`` 1-Lipschitz, at an augmentation drawn for the interpolates alone.
Labels are untouched (a conditional D gets the batch's labels), and an input that stacks
several images along the channels (pix2pix's (A, B) pairs) is augmented alike in every
group, so a pair stays a pair.

An augmentation is an ``nn.Module`` of the model (``model.augment``): what it must carry
across a resume (ADA's p) lives in its buffers and so in the checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class Augmentation(nn.Module):
    """``forward(x)``: the augmented batch, fresh random parameters per sample and call.
    ``observe(real_scores)``: what D said of the real images of one D step, centred on the
    loss's decision boundary (positive: judged real); returns values to log (on the device)."""

    # The augmentation reads D's real scores against a decision boundary (ADA's r_t): a loss
    # whose scores have none (a Wasserstein critic) cannot drive it.
    needs_decision_boundary = False

    def observe(self, real_scores: torch.Tensor) -> dict[str, torch.Tensor]:
        return {}


def augmented(D: Callable[..., torch.Tensor], augment: Augmentation | None) -> Callable[..., torch.Tensor]:
    """``D o augment``: D called on the augmented images, with its other arguments (labels,
    ``with_classes``) as given; D itself when there is no augmentation."""
    if augment is None:
        return D

    def call(x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return D(augment(x), *args, **kwargs)

    return call
