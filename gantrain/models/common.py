"""What every GAN algorithm here does the same way: one discriminator's loss with the
loss object's penalties (through the model's augmentation, if any), and a forward pass
in eval mode for sampling."""

from __future__ import annotations

import torch
from torch import nn

from gantrain.augment.base import Augmentation, augmented
from gantrain.health.signals import d_accuracy_logs


def discriminator_loss(
    loss,
    D: nn.Module,
    real: torch.Tensor,
    fake: torch.Tensor,
    y: torch.Tensor | None = None,
    scale: float = 1.0,
    augment: Augmentation | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``scale * loss.d_loss(D(real), D(fake)) + penalties`` and its logs (``d/real`` and
    ``d/fake`` as the loss scores them, the unweighted penalties, the augmentation's, and the
    health signals of D's accuracy, ``health/d_acc_real``, ``_fake``, ``health/rt``:
    ``health/signals.py``, on the device). ``fake``
    must be detached already; D is called with ``y`` only when it is conditional. With an
    ``augment``, D is ``D o augment`` everywhere, the penalties included (``augment/base.py``),
    and it is told D's real scores against the loss's decision boundary (ADA's r_t)."""
    judge = augmented(D, augment)
    call = (lambda x: judge(x, y)) if y is not None else judge
    if loss.needs_real_grad:  # R1 differentiates D(real) with respect to real
        real = real.detach().requires_grad_(True)
    # float32 logits: under bf16 autocast (speed.amp) the losses still reduce in float32.
    real_logits, fake_logits = call(real).float(), call(fake).float()
    penalty, penalty_logs = loss.penalty(judge, real, fake, y, real_logits)
    total = scale * loss.d_loss(real_logits, fake_logits) + penalty
    return total, {
        "d/real": loss.score(real_logits.detach()).mean(),
        "d/fake": loss.score(fake_logits.detach()).mean(),
        **penalty_logs,
        **observe(augment, loss, real_logits),
        **d_accuracy_logs(real_logits, fake_logits, loss.decision_boundary),
    }


def observe(augment: Augmentation | None, loss, real_logits: torch.Tensor) -> dict[str, torch.Tensor]:
    """Tell the augmentation what D said of the real images (positive: judged real), and
    return what it logs. Nothing without an augmentation, or for a loss with no decision
    boundary (the config check refuses an augmentation that needs one there)."""
    if augment is None or loss.decision_boundary is None:
        return {}
    return augment.observe(real_logits.detach() - loss.decision_boundary)


@torch.no_grad()
def eval_forward(net: nn.Module, *inputs):
    """``net(*inputs)`` in eval mode (BatchNorm's running statistics, no dropout), then
    back to the mode it was in: sampling changes no buffer and draws no random number."""
    was_training = net.training
    net.eval()
    try:
        return net(*inputs)
    finally:
        net.train(was_training)
