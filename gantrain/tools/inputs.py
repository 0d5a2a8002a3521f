"""What the tools feed a generator: seeded z (with truncation), seed lists, batches,
and folders of images shaped like the run's data."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from gantrain.errors import UserError


def seeded_z(seeds: list[int], z_dim: int, truncation: float | None = None) -> torch.Tensor:
    """One z per seed, each from its own generator: image k of ``--seeds`` is the same
    image whatever else is drawn beside it. ``truncation`` t: the truncation trick
    (Brock et al. 2019, BigGAN): values beyond +-t are redrawn, trading variety for quality."""
    if truncation is not None and truncation <= 0:
        raise UserError(f"--truncation {truncation}: use a positive threshold, e.g. 1.0 (or leave it out)")
    rows = []
    for seed in seeds:
        generator = torch.Generator().manual_seed(int(seed))
        z = torch.empty(z_dim)
        if truncation is None:
            z.normal_(generator=generator)
        else:
            nn.init.trunc_normal_(z, 0.0, 1.0, -truncation, truncation, generator=generator)
        rows.append(z)
    return torch.stack(rows)


def parse_seeds(text: str, option: str = "--seeds") -> list[int]:
    """``"0-7"``, ``"3,5,9"`` or ``"0-3,10"`` -> a list of numbers (seeds, indices, classes)."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            if "-" in part.strip()[1:]:
                low, high = part.strip().split("-", 1)
                if int(high) < int(low):
                    raise ValueError
                seeds += range(int(low), int(high) + 1)
            else:
                seeds.append(int(part))
    except ValueError:
        raise UserError(f"{option} {text!r}: write non-negative numbers and ranges, e.g. 0-15 or 3,5,9") from None
    if not seeds or min(seeds) < 0:
        raise UserError(f"{option} {text!r}: write non-negative numbers and ranges, e.g. 0-15 or 3,5,9")
    return seeds


def class_labels(num_classes: int, n: int, label: int | None) -> torch.Tensor | None:
    """A conditional generator's class for each of ``n`` images: ``label``, or the classes
    in turn; None for an unconditional one."""
    if not num_classes:
        return None
    if label is not None:
        return torch.full((n,), label, dtype=torch.long)
    return torch.arange(n) % num_classes


def in_batches(fn, inputs: list[torch.Tensor], batch_size: int, device: torch.device) -> torch.Tensor:
    """``fn`` over aligned input tensors (None allowed), batch by batch, on ``device``; results on the CPU."""
    n = len(inputs[0])
    out = []
    with torch.no_grad():
        for k in range(0, n, batch_size):
            part = [None if x is None else x[k : k + batch_size].to(device) for x in inputs]
            out.append(fn(*part).float().cpu())
    return torch.cat(out)


def read_image_folder(
    folder: str | Path, channels: int, image_size: int, option: str = "--inputs"
) -> tuple[torch.Tensor, list[Path]]:
    """Every readable image under ``folder`` as the run's data is shaped (grey or RGB,
    resized and centre-cropped to a square), in [-1, 1], with their files in the same
    order. Files that are not images are left out with a warning, as in training."""
    from gantrain.data.folder import ImageFiles, find_images
    from gantrain.data.images import scan
    from gantrain.data.spec import to_unit_range

    root = Path(folder).expanduser()
    if not root.is_dir():
        raise UserError(f"{option} {root}: no such folder: point at a folder of image files")
    files = find_images(root)
    if not files:
        raise UserError(f"{option} {root} holds no image files (.png, .jpg, ...): point at a folder of images")
    files = scan(files, "skip", str(root))
    dataset = ImageFiles(files, None, image_size, channels, on_bad_file="fail")
    return to_unit_range(torch.stack([dataset[k]["image"] for k in range(len(files))])), files
