"""Precision, recall, density and coverage of generated samples in a feature space.

Given N real features X and M generated features Y, each real point gets a ball B(X_i, r_k(X_i))
whose radius is the distance to its k-th nearest other real point; the union of the balls
estimates the real manifold (and likewise for Y):

* precision (Kynkäänniemi et al., 2019, "Improved Precision and Recall Metric for Assessing
  Generative Models", eq. 1-3): the share of fakes inside the real manifold,
  ``1/M sum_j 1[exists i: ||Y_j - X_i|| <= r_k(X_i)]``. Fidelity.
* recall (ibid.): the share of reals inside the fake manifold,
  ``1/N sum_i 1[exists j: ||X_i - Y_j|| <= r_k(Y_j)]``. Diversity.
* density (Naeem et al., 2020, "Reliable Fidelity and Diversity Metrics for Generative Models",
  eq. 5): ``1/(kM) sum_j sum_i 1[Y_j in B(X_i, r_k(X_i))]``, how many real balls hold each fake,
  so one real outlier with a huge ball cannot vouch for many fakes as it does for precision.
  Its expectation is 1 when both sets come from one distribution; it can exceed 1.
* coverage (ibid., eq. 6): ``1/N sum_i 1[exists j: Y_j in B(X_i, r_k(X_i))]``, the share of real
  balls that hold a fake; built on the real balls only, so fake outliers cannot inflate it. For
  one distribution its expectation is ``1 - prod_{l=1..k} (N - l) / (M + N - l)`` (their Lemma 2),
  about ``1 - 2^-k`` at M = N.

Neighbourhood sizes: k = 3 for precision and recall, as Kynkäänniemi et al. (and torch-fidelity's
``prc_neighborhood``); k = 5 for density and coverage, as Naeem et al. recommend (their M = N =
10,000 experiments). Their reference code (clovaai/generative-evaluation-prdc) uses k = 5 for all
four, so its precision and recall are not comparable with ours; the report's protocol names both
k. Balls are closed (``<=``, the papers' set membership; torch-fidelity too), where the reference
code compares with ``<``: they differ only on exact ties, such as duplicated images.

Why not a library: torchmetrics has none of the four; torch-fidelity computes precision and
recall only, through its own feature extraction; the reference ``prdc`` package is numpy and
scikit-learn on the CPU with the full N x M matrices in memory. Here the distances are torch
``cdist`` blocks on the caller's device, ``block`` rows at a time, so N = M = 10,000 in 2048-d
needs a few hundred MB at most. Features are centred on the real mean first: Euclidean distances
do not change, and the matrix-product form of ``cdist`` loses less to cancellation.
"""

from __future__ import annotations

import torch

PR_K = 3  # Kynkäänniemi et al., 2019
DC_K = 5  # Naeem et al., 2020
NAMES = ("precision", "recall", "density", "coverage")


def least_samples(k_pr: int = PR_K, k_dc: int = DC_K) -> int:
    """The fewest points of each set for which every k-th neighbour exists (the point itself excluded)."""
    return max(k_pr, k_dc) + 1


def protocol(k_pr: int = PR_K, k_dc: int = DC_K) -> str:
    return (
        f"precision/recall: k-NN manifolds with k={k_pr} (Kynkäänniemi et al., 2019); density/coverage: "
        f"real k-NN balls with k={k_dc} (Naeem et al., 2020); closed balls (<=), Euclidean distance"
    )


def _kth_radii(points: torch.Tensor, ks: tuple[int, ...], block: int) -> list[torch.Tensor]:
    """For each point, the distance to its k-th nearest other point, for every k in ``ks``.
    The (k+1)-th smallest distance of a row counts the point itself (distance 0) out."""
    top = max(ks) + 1
    parts = [
        torch.cdist(points[s : s + block], points).topk(top, dim=1, largest=False).values
        for s in range(0, len(points), block)
    ]
    nearest = torch.cat(parts)
    return [nearest[:, k] for k in ks]


@torch.no_grad()
def prdc(
    real: torch.Tensor,
    fake: torch.Tensor,
    k_pr: int = PR_K,
    k_dc: int = DC_K,
    device: torch.device | str | None = None,
    block: int = 1024,
) -> dict[str, float]:
    """``precision``, ``recall``, ``density``, ``coverage`` of ``fake`` (M, d) against ``real`` (N, d).

    Computed on ``device`` (default: the features' own) in float32, ``block`` real rows of the
    N x M distance matrix at a time (and of the N x N and M x M ones for the radii)."""
    if real.dim() != 2 or fake.dim() != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"want two (N, d) feature sets, got {tuple(real.shape)} and {tuple(fake.shape)}")
    least = least_samples(k_pr, k_dc)
    if min(len(real), len(fake)) < least or min(k_pr, k_dc) < 1:
        raise ValueError(
            f"k={k_pr} and k={k_dc} neighbours need at least {least} real and {least} generated points, "
            f"got {len(real)} and {len(fake)}"
        )
    device = torch.device(device) if device is not None else real.device
    real = real.to(device, torch.float32)
    centre = real.mean(0, keepdim=True)
    real, fake = real - centre, fake.to(device, torch.float32) - centre
    real_pr, real_dc = _kth_radii(real, (k_pr, k_dc), block)
    (fake_pr,) = _kth_radii(fake, (k_pr,), block)

    in_real_manifold = torch.zeros(len(fake), dtype=torch.bool, device=device)  # precision, per fake
    real_balls_holding = torch.zeros(len(fake), dtype=torch.int64, device=device)  # density, per fake
    recalled = torch.zeros(len(real), dtype=torch.bool, device=device)  # recall, per real
    covered = torch.zeros(len(real), dtype=torch.bool, device=device)  # coverage, per real
    for s in range(0, len(real), block):
        distance = torch.cdist(real[s : s + block], fake)  # (block, M)
        in_pr_ball = distance <= real_pr[s : s + block, None]
        in_dc_ball = distance <= real_dc[s : s + block, None]
        in_real_manifold |= in_pr_ball.any(0)
        real_balls_holding += in_dc_ball.sum(0)
        recalled[s : s + block] = (distance <= fake_pr[None, :]).any(1)
        covered[s : s + block] = in_dc_ball.any(1)
    return {
        "precision": float(in_real_manifold.double().mean()),
        "recall": float(recalled.double().mean()),
        "density": float(real_balls_holding.double().sum() / (k_dc * len(fake))),
        "coverage": float(covered.double().mean()),
    }
