"""The degradations a pretrained generator can undo when used as an image prior.

Each task is a known forward operator A: the inversion looks for the z whose G(z),
degraded by A, matches the degraded observation, so G fills in what A threw away (the
"deep generative prior" use of inversion, as in Yeh et al. 2017 for inpainting and Pan
et al. 2020; cf. Ulyanov et al. 2018 for the untrained-network prior).

A degradation has
* ``corrupt(truth)``: what the user holds, at full size, before A (the noisy image
  for ``denoise``; the truth itself otherwise, A being applied inside the loss);
* ``apply(x)``: A itself, on tensors shaped ``(..., C, H, W)`` so that one call covers
  every random start of every image (per-image parameters broadcast over the starts);
* ``mse(a, b)``: the per-image pixel loss between two degraded tensors;
* ``show(a)``: a degraded tensor as a full-size image in [-1, 1], for ``input.png``
  and for the discriminator's features;
* ``subset(index)``: the degradation of a subset of the images (for batching).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from gantrain.errors import UserError

TASKS = ("reconstruct", "inpaint", "colorize", "superres", "denoise")
SCALES = (2, 4)


def _per_image_mean(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(-3).mean(-1)


class Reconstruct:
    """The identity: plain inversion."""

    task = "reconstruct"

    def corrupt(self, truth: torch.Tensor) -> torch.Tensor:
        return truth

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def mse(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return _per_image_mean((a - b) ** 2)

    def show(self, a: torch.Tensor) -> torch.Tensor:
        return a

    def subset(self, index: slice) -> Reconstruct:
        return self

    def settings(self) -> dict:
        return {}


class Inpaint(Reconstruct):
    """Known pixels only: ``mask`` (1 or N, 1, H, W) is 1 where a pixel is known.
    Unknown pixels become 0, mid-grey in [-1, 1]."""

    task = "inpaint"

    def __init__(self, mask: torch.Tensor, source: str) -> None:
        self.mask, self.source = mask.float(), source

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mask.to(x.device)

    def mse(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        # The mean over known pixels: the unknown ones are 0 on both sides and must not
        # dilute the loss (masks of different sizes would otherwise weigh differently).
        known = _per_image_mean(self.mask.to(a.device).expand_as(a))
        return _per_image_mean((a - b) ** 2) / known.clamp_min(1e-8)

    @property
    def unknown(self) -> torch.Tensor:
        return self.mask < 0.5

    def subset(self, index: slice) -> Inpaint:
        return self if len(self.mask) == 1 else Inpaint(self.mask[index], self.source)

    def settings(self) -> dict:
        return {"mask": self.source, "known_fraction": round(self.mask.mean().item(), 4)}


class Colorize(Reconstruct):
    """Grey = the channel mean: the loss compares grey images."""

    task = "colorize"

    def __init__(self, channels: int) -> None:
        self.channels = channels

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(-3, keepdim=True)

    def show(self, a: torch.Tensor) -> torch.Tensor:
        return a.expand(*a.shape[:-3], self.channels, *a.shape[-2:])


class SuperRes(Reconstruct):
    """Average-pooled ``scale`` times down: the loss compares low-resolution images."""

    task = "superres"

    def __init__(self, scale: int) -> None:
        self.scale = scale

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        low = F.avg_pool2d(x.flatten(0, -4), self.scale)  # avg_pool2d wants (B, C, H, W)
        return low.view(*x.shape[:-2], *low.shape[-2:])

    def show(self, a: torch.Tensor) -> torch.Tensor:
        # Nearest: each low-resolution pixel as the block the loss sees.
        up = F.interpolate(a.flatten(0, -4), scale_factor=self.scale, mode="nearest")
        return up.view(*a.shape[:-2], *up.shape[-2:])

    def settings(self) -> dict:
        return {"scale": self.scale}


class Denoise(Reconstruct):
    """The observation is truth + seeded Gaussian noise; the loss is the pixel MSE to it,
    so it is the generator's range (and ``z_reg``) that keeps the noise out."""

    task = "denoise"

    def __init__(self, noise_std: float, seed: int) -> None:
        self.noise_std, self.seed = noise_std, seed

    def corrupt(self, truth: torch.Tensor) -> torch.Tensor:
        noise = torch.randn(truth.shape, generator=torch.Generator().manual_seed(self.seed))
        return truth + self.noise_std * noise.to(truth.device)

    def settings(self) -> dict:
        return {"noise_std": self.noise_std}


def center_mask(image_size: int) -> torch.Tensor:
    """Known everywhere but a centred square of half the side (a quarter of the area)."""
    mask = torch.ones(1, 1, image_size, image_size)
    side = image_size // 2
    start = (image_size - side) // 2
    mask[..., start : start + side, start : start + side] = 0
    return mask


def random_mask(n: int, image_size: int, seed: int, boxes: int = 3) -> torch.Tensor:
    """Per image, ``boxes`` seeded boxes of a sixth to a third of the side each."""
    generator = torch.Generator().manual_seed(seed)
    mask = torch.ones(n, 1, image_size, image_size)
    low, high = max(1, image_size // 6), max(2, image_size // 3)
    for k in range(n):
        for _ in range(boxes):
            h, w = torch.randint(low, high + 1, (2,), generator=generator).tolist()
            top = int(torch.randint(0, image_size - h + 1, (1,), generator=generator))
            left = int(torch.randint(0, image_size - w + 1, (1,), generator=generator))
            mask[k, 0, top : top + h, left : left + w] = 0
    return mask


def file_mask(path: Path, image_size: int) -> torch.Tensor:
    """A PNG (any size, resized with nearest): white (> 50% grey) = known pixel."""
    from PIL import Image, UnidentifiedImageError
    from torchvision.transforms.functional import pil_to_tensor

    if not path.is_file():
        raise UserError(f"--mask {path}: no such file: use center, random or a PNG (white = known pixel)")
    try:
        with Image.open(path) as image:
            grey = image.convert("L").resize((image_size, image_size), Image.NEAREST)
    except (UnidentifiedImageError, OSError):
        raise UserError(f"--mask {path} is not an image: use a PNG, white = known pixel") from None
    mask = (pil_to_tensor(grey) > 127).float()[None]
    if mask.min() == 1:
        raise UserError(f"--mask {path} marks every pixel known: paint the region to fill in black")
    if mask.max() == 0:
        raise UserError(f"--mask {path} marks no pixel known: paint the known pixels white")
    return mask


def make_degradation(
    task: str,
    channels: int,
    image_size: int,
    n: int,
    seed: int,
    mask: str | None = None,
    scale: int | None = None,
    noise_std: float | None = None,
) -> Reconstruct:
    """The degradation of ``task`` for ``n`` images of the run's shape (checked here)."""
    if task == "reconstruct":
        return Reconstruct()
    if task == "inpaint":
        mask = mask or "center"
        if mask == "center":
            return Inpaint(center_mask(image_size), "center")
        if mask == "random":
            return Inpaint(random_mask(n, image_size, seed), "random")
        return Inpaint(file_mask(Path(mask).expanduser(), image_size), str(mask))
    if task == "colorize":
        if channels != 3:
            raise UserError(
                f"--task colorize needs RGB data; this run makes {channels}-channel images: use another --task"
            )
        return Colorize(channels)
    if task == "superres":
        scale = scale or 2
        if image_size % scale:
            raise UserError(f"--scale {scale} does not divide the run's {image_size}px images: use --scale 2")
        return SuperRes(scale)
    if task == "denoise":
        return Denoise(0.2 if noise_std is None else noise_std, seed)
    raise UserError(f"--task {task} is not known: use one of {', '.join(TASKS)}")
