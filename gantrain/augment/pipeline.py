"""ADA's augmentation pipeline, "bgc" (Karras et al., 2020, "Training Generative
Adversarial Networks with Limited Data", arXiv:2006.06676, Sec. 2.3 and Appendix B).

Every op is applied to each sample independently with probability ``p * multiplier``
(a multiplier of 0 switches it off; ``p`` is the adaptive strength, a device tensor that
is never read on the host). Where an op is not applied its parameter is blended to the
identity with ``torch.where``, so the work does not depend on the draws. In order, with
the constants of the authors' ``training/augment.py``:

- blit: x-flip (``i ~ U{0, 1}``: an applied flip mirrors half the time), rotation by
  ``i * 90`` degrees (``i ~ U{0..3}``), integer translation by ``round(t * size)`` pixels,
  ``t ~ U(-xint_max, xint_max)``, xint_max = 0.125;
- geometric: isotropic scaling ``2 ** (N(0, 1) * scale_std)``, scale_std = 0.2;
  pre-rotation ``theta ~ U(-pi, pi) * rotate_max``; anisotropic scaling (x by ``s``, y by
  ``1 / s``, ``s = 2 ** (N(0, 1) * aniso_std)``, aniso_std = 0.2); post-rotation; fractional
  translation ``N(0, xfrac_std) * size``, xfrac_std = 0.125. Each rotation is applied
  with probability ``1 - sqrt(1 - p * rotate)``, so that P(either) = ``p * rotate``;
- colour, on a homogeneous 4x4 matrix: brightness ``+ N(0, brightness_std)``, 0.2;
  contrast ``* 2 ** N(0, contrast_std)``, 0.5; luma flip (a Householder reflection about
  the luma axis ``v = (1, 1, 1) / sqrt(3)``, ``i ~ U{0, 1}``); hue rotation about ``v`` by
  ``U(-pi, pi) * hue_max``, 1; saturation ``v v^T + (I - v v^T) * 2 ** N(0, saturation_std)``,
  1. Hue and saturation need colour: they are off for 1-channel images, which get the
  matrix as the authors apply it there: the mean of its three colour rows (so grey in,
  grey out).

The geometric ops compose into one 3x3 matrix per sample (output pixel to input pixel, the
origin at the image centre) and the image is resampled once. A deliberate difference from
the authors: they pad by reflection, upsample 2x with a wavelet filter, resample and
downsample (upfirdn2d, a custom CUDA op); here ``F.grid_sample`` resamples bilinearly with
``padding_mode="reflection"``, at the image's own resolution: no custom op, one resampling,
slightly blurrier fractional transforms and an edge-repeating (symmetric) reflection.
Blit ops alone stay exact (pixel centres land on pixel centres).

An input may stack several images of ``channels`` channels along C (pix2pix's pairs): the
geometric transform is shared by all channels of a sample, the colour matrix by its groups.
The work is done in float32, also under bf16 autocast (``speed.amp``), which is switched off
inside: in bf16 the matrices and the sampling grid would move pixels even at p = 0 (bfloat16
input is cast and cast back); gradients, and the
second derivatives R1 needs, flow to x through ``grid_sample`` and the matrix products.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gantrain.checks import PositiveInt, Weight, at_least
from gantrain.errors import OptionError

COLOUR_OPS = ("brightness", "contrast", "lumaflip", "hue", "saturation")


def _stack(rows: list[list[float | torch.Tensor]], n: int, device: torch.device) -> torch.Tensor:
    """(n, R, C) matrices from rows of per-sample (n,) tensors and constants."""
    entries = [e if isinstance(e, torch.Tensor) else torch.full((n,), float(e), device=device) for r in rows for e in r]
    return torch.stack(entries, dim=-1).reshape(n, len(rows), len(rows[0]))


def _scale2d(sx: float | torch.Tensor, sy: float | torch.Tensor, n: int, device: torch.device) -> torch.Tensor:
    return _stack([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], n, device)


def _translate2d(tx: float | torch.Tensor, ty: float | torch.Tensor, n: int, device: torch.device) -> torch.Tensor:
    return _stack([[1, 0, tx], [0, 1, ty], [0, 0, 1]], n, device)


def _rotate2d(cos: torch.Tensor, sin: torch.Tensor, n: int, device: torch.device) -> torch.Tensor:
    return _stack([[cos, -sin, 0], [sin, cos, 0], [0, 0, 1]], n, device)


class AugmentPipeline(nn.Module):
    def __init__(
        self,
        channels: PositiveInt,
        xflip: Weight = 1.0,
        rotate90: Weight = 1.0,
        xint: Weight = 1.0,
        scale: Weight = 1.0,
        rotate: Weight = 1.0,
        aniso: Weight = 1.0,
        xfrac: Weight = 1.0,
        brightness: Weight = 1.0,
        contrast: Weight = 1.0,
        lumaflip: Weight = 1.0,
        hue: Weight = 1.0,
        saturation: Weight = 1.0,
        xint_max: Weight = 0.125,
        scale_std: Weight = 0.2,
        rotate_max: Weight = 1.0,
        aniso_std: Weight = 0.2,
        xfrac_std: Weight = 0.125,
        brightness_std: Weight = 0.2,
        contrast_std: Weight = 0.5,
        hue_max: Weight = 1.0,
        saturation_std: Weight = 1.0,
    ) -> None:
        super().__init__()
        at_least("channels", channels, 1)
        self.channels = int(channels)
        settings = dict(locals())
        for name in self.settings:
            at_least(name, settings[name], 0)  # refuses negatives, NaN and infinity
            setattr(self, name, float(settings[name]))
        if self.channels not in (1, 3) and any(getattr(self, op) > 0 for op in COLOUR_OPS):
            raise OptionError(
                "channels",
                f"channels={self.channels}: the colour ops work on 1- or 3-channel images; set "
                f"{', '.join(COLOUR_OPS)} to 0",
                also=COLOUR_OPS,
            )

    # The parameters after ``channels``, in the signature's order.
    settings = (
        "xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac",
        "brightness", "contrast", "lumaflip", "hue", "saturation",
        "xint_max", "scale_std", "rotate_max", "aniso_std", "xfrac_std",
        "brightness_std", "contrast_std", "hue_max", "saturation_std",
    )  # fmt: skip

    def extra_repr(self) -> str:
        return f"channels={self.channels}, " + ", ".join(f"{k}={getattr(self, k)}" for k in self.settings)

    def forward(self, x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """``x``: (N, C, H, W), C a multiple of ``channels``; ``p``: a 0-dim tensor on x's
        device, the probability scale of every op. The same shape and dtype back."""
        if x.dim() != 4 or x.shape[1] % self.channels:
            raise ValueError(f"AugmentPipeline expects (N, k*{self.channels}, H, W) images, got {tuple(x.shape)}")
        with torch.autocast(x.device.type, enabled=False):
            return self._augment(x, p)

    def _augment(self, x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        p = torch.as_tensor(p, dtype=torch.float32, device=x.device)
        y = x.float()
        geometry = self._geometry(y.shape[0], y.shape[2], y.shape[3], p, x.device)
        if geometry is not None:
            y = self._resample(y, geometry)
        colour = self._colour(y.shape[0], p, x.device)
        if colour is not None:
            y = self._recolour(y, colour)
        return y.to(x.dtype)

    def _applied(self, n: int, p: torch.Tensor, multiplier: float | torch.Tensor, device: torch.device) -> torch.Tensor:
        """Which samples get an op, (n,) booleans: ``U(0, 1) < p * multiplier``."""
        return torch.rand(n, device=device) < p * multiplier

    def _geometry(self, n: int, h: int, w: int, p: torch.Tensor, device: torch.device) -> torch.Tensor | None:
        """(n, 3, 3) inverse transforms in pixel units (output pixel -> input pixel), or
        None when every geometric op is off. Each op's inverse multiplies on the right."""
        ops = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac")
        if not any(getattr(self, op) > 0 for op in ops):
            return None
        one, zero = torch.ones(n, device=device), torch.zeros(n, device=device)
        inverse = torch.eye(3, device=device).expand(n, 3, 3)
        if self.xflip > 0:
            i = torch.floor(torch.rand(n, device=device) * 2)
            i = torch.where(self._applied(n, p, self.xflip, device), i, zero)
            inverse = inverse @ _scale2d(1 - 2 * i, 1, n, device)
        if self.rotate90 > 0:
            i = torch.floor(torch.rand(n, device=device) * 4)
            i = torch.where(self._applied(n, p, self.rotate90, device), i, zero)
            # The cosine and sine of i * 90 degrees, exact for i in 0..3 (cos(pi/2) in float32
            # is -4e-8, not 0, and would blur a rotation that can be exact).
            odd = i.remainder(2)
            inverse = inverse @ _rotate2d((1 - odd) * (1 - i), odd * (2 - i), n, device)
        if self.xint > 0:
            t = (torch.rand(n, 2, device=device) * 2 - 1) * self.xint_max
            t = torch.where(self._applied(n, p, self.xint, device)[:, None], t, 0.0)
            inverse = inverse @ _translate2d(-torch.round(t[:, 0] * w), -torch.round(t[:, 1] * h), n, device)
        if self.scale > 0:
            s = torch.exp2(torch.randn(n, device=device) * self.scale_std)
            s = torch.where(self._applied(n, p, self.scale, device), s, one)
            inverse = inverse @ _scale2d(1 / s, 1 / s, n, device)
        # P(pre or post) = p * rotate when each is applied with probability 1 - sqrt(1 - p * rotate).
        p_rotate = 1 - torch.sqrt((1 - p * self.rotate).clamp(0, 1))
        for stage in ("pre", "post"):
            if self.rotate > 0:
                theta = (torch.rand(n, device=device) * 2 - 1) * math.pi * self.rotate_max
                theta = torch.where(self._applied(n, p_rotate, 1.0, device), theta, zero)
                inverse = inverse @ _rotate2d(torch.cos(theta), torch.sin(theta), n, device)
            if stage == "pre" and self.aniso > 0:
                s = torch.exp2(torch.randn(n, device=device) * self.aniso_std)
                s = torch.where(self._applied(n, p, self.aniso, device), s, one)
                inverse = inverse @ _scale2d(1 / s, s, n, device)
        if self.xfrac > 0:
            t = torch.randn(n, 2, device=device) * self.xfrac_std
            t = torch.where(self._applied(n, p, self.xfrac, device)[:, None], t, 0.0)
            inverse = inverse @ _translate2d(-t[:, 0] * w, -t[:, 1] * h, n, device)
        return inverse

    @staticmethod
    def _resample(y: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
        """Resample once by ``inverse`` in pixel units, converted to grid_sample's [-1, 1]
        units (align_corners=False: x_norm = x_pixel * 2 / W about the centre). Written out
        entrywise so that an identity stays an exact identity."""
        n, _, h, w = y.shape
        theta = torch.stack(
            [
                torch.stack([inverse[:, 0, 0], inverse[:, 0, 1] * (h / w), inverse[:, 0, 2] * (2 / w)], dim=-1),
                torch.stack([inverse[:, 1, 0] * (w / h), inverse[:, 1, 1], inverse[:, 1, 2] * (2 / h)], dim=-1),
            ],
            dim=1,
        )
        grid = F.affine_grid(theta, [n, 1, h, w], align_corners=False)
        return F.grid_sample(y, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    def _colour(self, n: int, p: torch.Tensor, device: torch.device) -> torch.Tensor | None:
        """(n, 4, 4) homogeneous colour transforms, each op multiplying on the left, or None
        when every colour op is off."""
        if not any(getattr(self, op) > 0 for op in COLOUR_OPS):
            return None
        one, zero = torch.ones(n, device=device), torch.zeros(n, device=device)
        eye = torch.eye(4, device=device)
        matrix = eye.expand(n, 4, 4)
        # v v^T of the homogeneous luma axis (1, 1, 1, 0) / sqrt(3): 1/3 in the colour block.
        vv = F.pad(torch.full((3, 3), 1 / 3, device=device), (0, 1, 0, 1))
        if self.brightness > 0:
            b = torch.randn(n, device=device) * self.brightness_std
            b = torch.where(self._applied(n, p, self.brightness, device), b, zero)
            matrix = _stack([[1, 0, 0, b], [0, 1, 0, b], [0, 0, 1, b], [0, 0, 0, 1]], n, device) @ matrix
        if self.contrast > 0:
            c = torch.exp2(torch.randn(n, device=device) * self.contrast_std)
            c = torch.where(self._applied(n, p, self.contrast, device), c, one)
            matrix = _stack([[c, 0, 0, 0], [0, c, 0, 0], [0, 0, c, 0], [0, 0, 0, 1]], n, device) @ matrix
        if self.lumaflip > 0:
            i = torch.floor(torch.rand(n, device=device) * 2)
            i = torch.where(self._applied(n, p, self.lumaflip, device), i, zero)
            matrix = (eye - 2 * vv * i[:, None, None]) @ matrix  # Householder reflection
        if self.hue > 0 and self.channels > 1:
            theta = (torch.rand(n, device=device) * 2 - 1) * math.pi * self.hue_max
            theta = torch.where(self._applied(n, p, self.hue, device), theta, zero)
            matrix = _hue_rotation(theta) @ matrix
        if self.saturation > 0 and self.channels > 1:
            s = torch.exp2(torch.randn(n, device=device) * self.saturation_std)
            s = torch.where(self._applied(n, p, self.saturation, device), s, one)
            matrix = (vv + (eye - vv) * s[:, None, None]) @ matrix
        return matrix

    def _recolour(self, y: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
        """Apply one colour matrix per sample to each group of ``channels`` channels."""
        n, c, h, w = y.shape
        groups = y.reshape(n, c // self.channels, self.channels, h * w)
        if self.channels == 3:
            groups = matrix[:, None, :3, :3] @ groups + matrix[:, None, :3, 3:]
        else:  # one channel: the mean of the three colour rows, as the authors do
            row = matrix[:, :3, :].mean(dim=1)  # (n, 4)
            groups = groups * row[:, :3].sum(dim=1)[:, None, None, None] + row[:, 3][:, None, None, None]
        return groups.reshape(n, c, h, w)


def _hue_rotation(theta: torch.Tensor) -> torch.Tensor:
    """(n, 4, 4) rotations by ``theta`` about the luma axis (1, 1, 1) / sqrt(3) (Rodrigues'
    formula: R = I + sin(theta) K + (1 - cos(theta)) K^2, K the axis' cross-product matrix)."""
    # K = ((0, -1, 1), (1, 0, -1), (-1, 1, 0)) / sqrt(3), built from a cyclic permutation on
    # the device (no host-to-device copy inside the training step).
    cycle = torch.eye(3, device=theta.device).roll(1, dims=0)
    k = (cycle - cycle.T) / math.sqrt(3)
    s, c = torch.sin(theta)[:, None, None], torch.cos(theta)[:, None, None]
    rotation = torch.eye(3, device=theta.device) + s * k + (1 - c) * (k @ k)
    # Homogeneous: the fourth row and column of the identity.
    return F.pad(rotation, (0, 1, 0, 1)) + F.pad(torch.ones(1, 1, device=theta.device), (3, 0, 3, 0))
