"""The pictures of ``gantrain-dissect`` (``dissect.py``): a row per unit of the samples
where it fires most with its thresholded region highlighted (GAN Dissection's unit maps,
Bau et al., ICLR 2019), or of the samples it changes most, before and after switching it off.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gantrain.tools.units import Layer, generate, intervene, unit_masks

COLUMNS = 6  # samples shown per unit in the pictures


def enlarged(images: torch.Tensor, at_least: int = 64) -> torch.Tensor:
    """Small images blown up (nearest neighbour) so that a mask's outline stays readable."""
    factor = -(-at_least // images.shape[-1])
    return F.interpolate(images.float(), scale_factor=factor, mode="nearest") if factor > 1 else images.float()


def overlay(images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """RGB images in [-1, 1]: dimmed where the unit is off, tinted orange where it fires,
    with the mask's outline in yellow. ``masks``: boolean (N, H, W) at the images' size."""
    x = (images.float().clamp(-1, 1) + 1) / 2
    x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x[:, :3]
    m = masks[:, None].float()
    outline = (m - -F.max_pool2d(-m, 3, 1, 1)) > 0  # the mask less its erosion
    orange = torch.tensor([1.0, 0.45, 0.0], device=x.device).view(1, 3, 1, 1)
    yellow = torch.tensor([1.0, 1.0, 0.0], device=x.device).view(1, 3, 1, 1)
    out = (1 - m) * 0.5 * x + m * (0.45 * x + 0.55 * orange)
    return torch.where(outline, yellow, out) * 2 - 1


def unit_map_picture(images: torch.Tensor, h: torch.Tensor, units: list[int], thresholds: torch.Tensor) -> torch.Tensor:
    """A row per unit: the samples where it fires most, its thresholded region highlighted."""
    large = enlarged(images)
    rows = []
    for unit in units:
        chosen = h[:, unit].flatten(1).amax(1).topk(min(COLUMNS, len(h))).indices
        masks = unit_masks(h[chosen], [unit], large.shape[-1], thresholds)[:, 0]
        rows.append(overlay(large[chosen], masks))
    return torch.cat(rows)


def ablation_picture(
    G,
    layer: Layer,
    z: torch.Tensor,
    y: torch.Tensor | None,
    images: torch.Tensor,
    units: list[int],
    output_change: torch.Tensor,
) -> torch.Tensor:
    """A row per unit: the samples it changes most, before | after switching it off."""
    rows = []
    for unit in units:
        chosen = output_change[unit].topk(min(COLUMNS, len(z))).indices.to(z.device)
        ys = None if y is None else y[chosen]
        with intervene(G, layer.name, ablate=[unit]):
            after = generate(G, z[chosen], ys)
        gap = torch.zeros_like(after[:1])  # mid-grey between the halves
        rows.append(torch.cat([images[chosen], gap, after]))
    return enlarged(torch.cat(rows))
