"""GAN inversion by optimisation: the z whose G(z) reproduces each target image.

Zhu et al. 2016; Creswell & Bharath 2018: z is found with Adam on a pixel loss, from
several random starts per image (the result depends on where it starts), keeping the
start with the lowest final loss; a learned encoder's guess can be one of the starts.
Optional terms: the distance between D's features of the two images (a learned
perceptual distance; D's last hidden block) and ``z_reg * mean(z^2)``, which keeps z
where the prior puts it. With a degradation (``degrade.py``) the loss compares degraded
images: G only has to agree with what is known, and fills in the rest. The command
line is ``invert.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from gantrain.tools.degrade import Reconstruct
from gantrain.tools.inputs import in_batches


def start_seed(seed: int) -> int:
    """The seed of the random starts: scrambled, so that the starts are not the z of
    seeded_z(seed) (the --from-generator truths), which would make inversion look perfect.
    (torch's CPU generator uses the low 32 bits of a seed.)"""
    return (0x9E3779B9 + seed * 2654435761) % 2**32


@dataclass
class InversionResult:
    """On the CPU: ``z`` (N, z_dim), ``images`` G(z) in [-1, 1], ``loss`` (N,) the final
    loss of each image, ``start`` (N,) the index of the start that won (0 = ``init_z``)."""

    z: torch.Tensor
    images: torch.Tensor
    loss: torch.Tensor
    start: torch.Tensor


class _Features:
    """D's features: the input of its last layer (the output of its last hidden block),
    caught by a forward pre-hook so that any D with a conv or linear head works."""

    def __init__(self, D: nn.Module) -> None:
        self.D, self.value = D, None
        last = [m for m in D.modules() if isinstance(m, (nn.Conv2d, nn.Linear))][-1]
        self.handle = last.register_forward_pre_hook(self._catch)

    def _catch(self, module: nn.Module, inputs: tuple) -> None:
        self.value = inputs[0]

    def __call__(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        self.D(x, y)
        return self.value.flatten(1)

    def close(self) -> None:
        self.handle.remove()


def _repeat(y: torch.Tensor | None, starts: int) -> torch.Tensor | None:
    return None if y is None else y.repeat(starts)  # start-major, as z.flatten(0, 1)


def _losses(
    G: nn.Module,
    z: torch.Tensor,
    y: torch.Tensor | None,
    observed: torch.Tensor,
    degradation: Reconstruct,
    z_reg: float,
    feature_weight: float,
    features: _Features | None,
    target_features: torch.Tensor | None,
) -> torch.Tensor:
    """The loss of every start of every image, (starts, n)."""
    starts, n = z.shape[:2]
    images = G(z.flatten(0, 1), _repeat(y, starts)).unflatten(0, (starts, n))
    degraded = degradation.apply(images)
    loss = degradation.mse(degraded, observed)
    if feature_weight > 0:
        seen = degradation.show(degraded).flatten(0, 1)
        diff = features(seen, _repeat(y, starts)).unflatten(0, (starts, n)) - target_features
        loss = loss + feature_weight * diff.pow(2).mean(-1)
    if z_reg > 0:
        loss = loss + z_reg * z.pow(2).mean(-1)
    return loss


def _optimise(
    G: nn.Module,
    z0: torch.Tensor,
    targets: torch.Tensor,
    y: torch.Tensor | None,
    degradation: Reconstruct,
    steps: int,
    lr: float,
    z_reg: float,
    feature_weight: float,
    features: _Features | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Adam on all starts of a batch of images at once; the loss is summed over images and
    starts, and G is in eval mode (BatchNorm on running statistics), so none interact."""
    observed = degradation.apply(targets)
    target_features = None
    if feature_weight > 0:
        with torch.no_grad():
            target_features = features(degradation.show(observed), y)
    z = z0.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=lr)
    args = (y, observed, degradation, z_reg, feature_weight, features, target_features)
    with torch.enable_grad():  # a caller under no_grad still gets its inversion
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            _losses(G, z, *args).sum().backward()
            optimizer.step()
    with torch.no_grad():
        return z.detach(), _losses(G, z, *args)


def invert(
    G: nn.Module,
    targets: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    steps: int = 300,
    starts: int = 4,
    lr: float = 0.05,
    feature_weight: float = 0.0,
    D: nn.Module | None = None,
    z_reg: float = 0.0,
    degradation: Reconstruct | None = None,
    init_z: torch.Tensor | None = None,
    seed: int = 0,
    batch_size: int = 64,
) -> InversionResult:
    """The z of each target (N, C, H, W in [-1, 1]; ``y`` its class for a conditional G).
    ``starts`` starts per image, z ~ N(0, 1) seeded by ``seed``; ``init_z`` (N, z_dim), an
    encoder's guess, replaces start 0. ``batch_size`` images (each with all its starts)
    are optimised together. Deterministic given ``seed``."""
    if feature_weight > 0 and D is None:
        raise ValueError("feature_weight > 0 needs the discriminator D")
    degradation = degradation or Reconstruct()
    device = next(G.parameters()).device
    n, z_dim = len(targets), int(G.z_dim)
    z0 = torch.randn(starts, n, z_dim, generator=torch.Generator().manual_seed(start_seed(seed)))
    if init_z is not None:
        z0[0] = init_z.detach().float().cpu()
    features = _Features(D) if feature_weight > 0 else None
    z_all, loss_all = [], []
    try:
        for lo in range(0, n, batch_size):
            part = slice(lo, lo + batch_size)
            z, loss = _optimise(
                G,
                z0[:, part].to(device),
                targets[part].to(device),
                None if y is None else y[part].to(device),
                degradation.subset(part),
                steps,
                lr,
                z_reg,
                feature_weight,
                features,
            )
            z_all.append(z.cpu())
            loss_all.append(loss.cpu())
    finally:
        if features is not None:
            features.close()
    z, loss = torch.cat(z_all, 1), torch.cat(loss_all, 1)
    start = loss.argmin(0)
    best = z[start, torch.arange(n)]
    images = in_batches(G, [best, y], batch_size, next(G.parameters()).device)
    return InversionResult(best, images, loss[start, torch.arange(n)], start)
