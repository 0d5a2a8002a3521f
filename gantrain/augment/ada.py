"""Adaptive discriminator augmentation, ADA (Karras et al., 2020, "Training Generative
Adversarial Networks with Limited Data").

Every image D sees goes through the augmentation pipeline (``pipeline.py``), each op
applied with probability ``p``. ``p`` follows D's overfitting, measured by

    r_t = E[sign(D(x_real))]          (Eq. 1: the share of real images D is sure of, in [-1, 1])

accumulated over ``interval`` D steps; then

    p <- max(p + sign(r_t - target) * N / (kimg * 1000), 0)

with N the real images observed over those steps: ``p`` can move from 0 to 1 in
``kimg`` thousand images. The paper's values: ``target`` 0.6, ``interval`` 4 minibatches,
``kimg`` 500, ``p`` starting at 0. ``sign`` is taken against the loss's decision
boundary (0 for the logistic and hinge losses, 1/2 for the least-squares loss's 0-1
coding); a Wasserstein critic has none, and the config check refuses ADA with it. A
PatchGAN's scores count patch by patch. As in the authors' code, ``p`` is bounded below
only (by 0): it may pass 1, and then takes as long to come back. N counts the real images
shown to the discriminators: CycleGAN's two Ds each report their batch, so one of its
steps counts twice the batch (and two observations towards ``interval``). When fine-tuning
(``init_from``) the authors use ``kimg`` = 100.

``p``, the running sums and ``r_t`` are buffers updated on the device: no step waits on
the host, and the checkpoint holds them, so a resumed run continues with the exact ``p``.
The count of observations, which decides when ``p`` moves, is host-side (extra state,
saved too). Under data parallelism the sums are added over the processes before each
update, so every process moves ``p`` alike.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist

from gantrain.augment.base import Augmentation
from gantrain.augment.pipeline import AugmentPipeline
from gantrain.checks import PositiveFloat, PositiveInt, within


class ADA(Augmentation):
    needs_decision_boundary = True

    def __init__(
        self,
        channels: PositiveInt,
        pipeline: Callable[..., AugmentPipeline] | None = None,
        target: float = 0.6,
        interval: PositiveInt = 4,
        kimg: PositiveFloat = 500.0,
        initial_p: float = 0.0,
    ) -> None:
        """``pipeline``: the ops and their multipliers (``conf/augment/ada.yaml``: the
        paper's bgc), called with ``channels``; ``target``: the r_t to hold; ``interval``:
        D steps between adjustments; ``kimg``: thousands of images for p to go from 0 to 1."""
        super().__init__()
        within("target", target, 0, 1, "(the paper: 0.6)", closed=(False, False))
        within("initial_p", initial_p, 0, 1, "(the paper: 0)", closed=(True, True))
        self.pipeline = (pipeline or AugmentPipeline)(channels=channels)
        self.target, self.interval, self.kimg = float(target), int(interval), float(kimg)
        self.register_buffer("p", torch.tensor(float(initial_p)))
        self.register_buffer("rt", torch.tensor(0.0))  # the last r_t, for the logs
        self.register_buffer("sign_sum", torch.tensor(0.0))
        self.register_buffer("sign_count", torch.tensor(0.0))
        self.observed = 0  # observations since the start (host)
        self.images = 0  # real images observed since the last adjustment (host)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pipeline(x, self.p)

    @torch.no_grad()
    def observe(self, real_scores: torch.Tensor) -> dict[str, torch.Tensor]:
        self.sign_sum += real_scores.detach().float().sign().sum()
        self.sign_count += real_scores.numel()
        self.observed += 1
        self.images += len(real_scores)
        if self.observed % self.interval == 0:
            self._adjust()
        return {"augment/p": self.p.clone(), "augment/rt": self.rt.clone()}

    def _adjust(self) -> None:
        # torch.full: a fill on the device; torch.tensor(value, device=...) would copy from the host.
        images = torch.full((), float(self.images), device=self.p.device)
        totals = torch.stack([self.sign_sum, self.sign_count, images])
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(totals)
        rt = totals[0] / totals[1].clamp(min=1)
        step = torch.sign(rt - self.target) * totals[2] / (self.kimg * 1000)
        self.p.copy_((self.p + step).clamp(min=0))
        self.rt.copy_(rt)
        self.sign_sum.zero_()
        self.sign_count.zero_()
        self.images = 0

    def get_extra_state(self) -> dict[str, Any]:
        return {"observed": self.observed, "images": self.images}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.observed, self.images = int(state["observed"]), int(state["images"])
