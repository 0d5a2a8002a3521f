"""Scores of a translation against its target, for pix2pix's validation pairs: L1,
PSNR and SSIM (Wang et al., 2004) on images mapped to [0, 1] (data range 1), summed
per image so that batches of any size add up to exact means."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure


def paired_sums(out: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """Per-image L1, PSNR and SSIM of ``out`` against ``target`` (both in [-1, 1]), summed."""
    out, target = (out.clamp(-1, 1) + 1) / 2, (target + 1) / 2
    l1 = (out - target).abs().flatten(1).mean(1)
    psnr = peak_signal_noise_ratio(out, target, data_range=1.0, reduction="none", dim=(1, 2, 3))
    ssim = structural_similarity_index_measure(out, target, data_range=1.0, reduction="sum")
    return {"l1": l1.sum().item(), "psnr": psnr.sum().item(), "ssim": ssim.item()}


def paired_scores(
    translate: Callable[[torch.Tensor], torch.Tensor], batches: Iterable[dict[str, torch.Tensor]], device
) -> dict[str, float]:
    """Mean L1, PSNR and SSIM of ``translate(A)`` against ``B`` over the pairs."""
    totals, count = {"l1": 0.0, "psnr": 0.0, "ssim": 0.0}, 0
    for batch in batches:
        A, B = batch["A"].to(device), batch["B"].to(device)
        for key, value in paired_sums(translate(A), B).items():
            totals[key] += value
        count += len(A)
    return {key: value / max(count, 1) for key, value in totals.items()}
