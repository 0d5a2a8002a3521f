"""DiffAugment: differentiable augmentation of every image D sees (Zhao et al., 2020,
"Differentiable Augmentation for Data-Efficient GAN Training", arXiv:2006.10738).

D is trained as ``D o T`` with ``T`` a random transform drawn afresh for every sample and
call, applied to real and generated images alike; ``T`` is differentiable, so G learns
through it (the paper's Eq. 2 and 3). The three policies, with the constants of the
authors' ``DiffAugment_pytorch.py`` (images in [-1, 1]):

- ``color``: brightness ``x + b``, ``b ~ U(-0.5, 0.5)``; then saturation
  ``(x - m_c) * s + m_c``, ``s ~ U(0, 2)``, ``m_c`` the mean over the channels of each
  pixel (a no-op for one channel); then contrast ``(x - m) * c + m``, ``c ~ U(0.5, 1.5)``,
  ``m`` the mean of the whole image.
- ``translation``: a shift by an integer ``t ~ U{-r, ..., r}`` per axis, ``r`` =
  ``round(translation_ratio * size)`` (1/8 by default), the uncovered border zero.
- ``cutout``: a square of side ``round(cutout_ratio * size)`` (1/2 by default) set to zero,
  its centre uniform over the image (so it may be clipped by the border).

An input may stack several images of ``channels`` channels each along C (pix2pix's D sees
the pair (A, B)): every group of one sample gets the same parameters, so a pair stays
aligned; the colour means are taken per group (per image), not over all of C.

Everything runs on x's device from torch's global RNG (the loop checkpoints its state, so
a resumed run draws the same), without host syncs or data-dependent branches: it runs in
every training step. Shifts and masks are index and multiply ops, so gradients (and the
second derivatives R1 needs) flow to x. It is an ``Augmentation`` (``base.py``) that reads
nothing of D's scores: the model calls it as it is (``augment=diffaugment``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from gantrain.augment.base import Augmentation
from gantrain.checks import PositiveInt, at_least, within
from gantrain.errors import OptionError

POLICIES = ("color", "translation", "cutout")


def _ratio(name: str, value: float, what: str) -> float:
    within(name, value, 0.0, 1.0, f"{name} is the {what} as a fraction of the image size", closed=(True, True))
    return float(value)


class DiffAugment(Augmentation):
    def __init__(
        self,
        channels: PositiveInt,
        policy: Sequence[str] = POLICIES,
        translation_ratio: float = 0.125,
        cutout_ratio: float = 0.5,
    ) -> None:
        super().__init__()
        at_least("channels", channels, 1)
        # A config may spell the policy as the authors' command line does: "color,translation".
        names = policy.split(",") if isinstance(policy, str) else list(policy)
        names = [str(name).strip() for name in names if str(name).strip()]
        for name in names:
            if name not in POLICIES:
                raise OptionError("policy", f"policy has {name!r}, not known: use any of {', '.join(POLICIES)}")
        self.channels = int(channels)
        self.policy = tuple(names)
        self.translation_ratio = _ratio("translation_ratio", translation_ratio, "largest shift")
        self.cutout_ratio = _ratio("cutout_ratio", cutout_ratio, "side of the cut-out square")

    def extra_repr(self) -> str:
        return f"channels={self.channels}, policy={self.policy}, translation_ratio={self.translation_ratio}, " + (
            f"cutout_ratio={self.cutout_ratio}"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (N, C, H, W) with C a multiple of ``channels``; the same shape and dtype back."""
        if x.dim() != 4 or x.shape[1] % self.channels:
            raise ValueError(f"DiffAugment expects (N, k*{self.channels}, H, W) images, got {tuple(x.shape)}")
        for name in self.policy:
            x = getattr(self, name)(x)
        return x

    def _uniform(self, x: torch.Tensor, low: float, high: float) -> torch.Tensor:
        """One factor per sample, shaped to broadcast over (N, groups, channels, H, W)."""
        u = torch.rand(x.shape[0], 1, 1, 1, 1, device=x.device)
        return (u * (high - low) + low).to(x.dtype)

    def color(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = x.reshape(n, c // self.channels, self.channels, h, w)
        g = g + self._uniform(x, -0.5, 0.5)
        mean = g.mean(dim=2, keepdim=True)  # per pixel, over the channels of one image
        g = (g - mean) * self._uniform(x, 0.0, 2.0) + mean
        mean = g.mean(dim=(2, 3, 4), keepdim=True)  # per image
        g = (g - mean) * self._uniform(x, 0.5, 1.5) + mean
        return g.reshape(n, c, h, w)

    def translation(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        for dim, size in ((2, h), (3, w)):
            reach = int(size * self.translation_ratio + 0.5)
            shift = torch.randint(-reach, reach + 1, (n, 1), device=x.device)
            x = _shift(x, dim, shift)
        return x

    def cutout(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        inside = []
        for size in (h, w):
            side = int(size * self.cutout_ratio + 0.5)
            # The authors' centre range: an odd side may centre on every pixel, an even one also
            # one past the last (its square then covers the last side/2 pixels).
            centre = torch.randint(0, size + 1 - side % 2, (n, 1), device=x.device)
            start = centre - side // 2
            index = torch.arange(size, device=x.device)
            inside.append((index >= start) & (index < start + side))
        hole = inside[0][:, :, None] & inside[1][:, None, :]  # (N, H, W)
        return x * (~hole).to(x.dtype)[:, None]


def _shift(x: torch.Tensor, dim: int, shift: torch.Tensor) -> torch.Tensor:
    """``out[..., i, ...] = x[..., i + shift, ...]`` along ``dim`` (per sample), zero where
    ``i + shift`` falls outside: content moves by ``-shift`` pixels."""
    size = x.shape[dim]
    source = torch.arange(size, device=x.device) + shift  # (N, size)
    valid = ((source >= 0) & (source < size)).to(x.dtype)
    source = source.clamp(0, size - 1)
    view = [x.shape[0], 1, 1, 1]
    view[dim] = size
    index = source.reshape(view).expand_as(x)
    return x.gather(dim, index) * valid.reshape(view)
