"""What every GAN algorithm here does the same way: one discriminator's loss with the
loss object's penalties, and a forward pass in eval mode for sampling."""

from __future__ import annotations

import torch
from torch import nn


def discriminator_loss(
    loss, D: nn.Module, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor | None = None, scale: float = 1.0
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``scale * loss.d_loss(D(real), D(fake)) + penalties`` and its logs (``d/real`` and
    ``d/fake`` as the loss scores them, the unweighted penalties). ``fake`` must be
    detached already; D is called with ``y`` only when it is conditional."""
    call = (lambda x: D(x, y)) if y is not None else D
    if loss.needs_real_grad:  # R1 differentiates D(real) with respect to real
        real = real.detach().requires_grad_(True)
    # float32 logits: under bf16 autocast (speed.amp) the losses still reduce in float32.
    real_logits, fake_logits = call(real).float(), call(fake).float()
    penalty, penalty_logs = loss.penalty(D, real, fake, y, real_logits)
    total = scale * loss.d_loss(real_logits, fake_logits) + penalty
    return total, {
        "d/real": loss.score(real_logits.detach()).mean(),
        "d/fake": loss.score(fake_logits.detach()).mean(),
        **penalty_logs,
    }


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
