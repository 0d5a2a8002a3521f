"""CycleGAN: unpaired image-to-image translation (Zhu et al., 2017).

Two generators, G_AB: A -> B and G_BA: B -> A, and a discriminator per domain. With
lambda = 10 (cycle) and lambda_id = 0.5 (identity, relative to lambda):

    D_B minimises  1/2 loss_d(D_B(b), D_B(pool(G_AB(a))))      (D_A alike)
    G   minimises  loss_g(D_B(G_AB(a))) + loss_g(D_A(G_BA(b)))
                   + lambda * (|G_BA(G_AB(a)) - a|_1 + |G_AB(G_BA(b)) - b|_1)
                   + lambda * lambda_id * (|G_AB(b) - b|_1 + |G_BA(a) - a|_1)

with |.|_1 the mean absolute error over pixels. The paper uses the least-squares
loss (``loss=lsgan``), whose ``loss_g`` is MSE(D(x), 1) with no constant factor, so G's
objective is the authors' MSE(D_B(G(a)), 1) + MSE(D_A(F(b)), 1) + 10 * cycle + 5 * identity. D sees fakes from a pool of
the last 50 generated images (Shrivastava et al., 2017): half the time a fake from an
earlier step, which damps oscillation. The pool lives in buffers, so a checkpoint
holds it and a resumed run continues with the same history.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gantrain.augment.base import augmented
from gantrain.checks import Count, Weight, at_least
from gantrain.models.base import GANModel, GeneratorInfo, NetFactory
from gantrain.models.common import discriminator_loss
from gantrain.test_time import TestMode, describe, translate, translator


def exchange(
    pool: torch.Tensor, images: torch.Tensor, swap: torch.Tensor, slots: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images go through a full pool one after another: image i with ``swap[i]`` set
    comes back as what slot ``slots[i]`` holds and takes its place; the others come back
    as they are. Returns (what comes back, the pool after the batch).

    Vectorised over the batch without leaving the device (no ``.item()``, no boolean
    indexing: a GPU would wait on the host for every image), and equal to the
    one-at-a-time loop also when two images draw the same slot: the later one gets the
    earlier one's image, and the later one is what the slot keeps."""
    n = len(images)
    order = torch.arange(n, device=images.device)
    # same[i, j]: image j swaps into the slot image i draws.
    same = (slots.view(-1, 1) == slots.view(1, -1)) & swap.view(1, -1)
    before = same & (order.view(1, -1) < order.view(-1, 1))
    later = same & (order.view(1, -1) > order.view(-1, 1))
    # What image i finds in its slot: the last earlier image that went there, else the pool's.
    last_before = torch.where(before, order.view(1, -1), -1).amax(1)
    found = torch.where((last_before >= 0).view(-1, 1, 1, 1), images[last_before.clamp(min=0)], pool[slots])
    returned = torch.where(swap.view(-1, 1, 1, 1), found, images)
    # What each slot keeps: the last image that swapped into it (at most one "writer" per slot).
    writer = swap & ~later.any(1)
    writes = (slots.view(-1, 1) == torch.arange(len(pool), device=images.device).view(1, -1)) & writer.view(-1, 1)
    kept = torch.where(writes.any(0).view(-1, 1, 1, 1), images[writes.int().argmax(0)], pool)
    return returned, kept


class ImagePool(nn.Module):
    """The history of fakes D learns from. The images and the count are buffers (the
    checkpoint holds them); a copy of the count lives on the host so that a step never
    reads it back from the GPU."""

    def __init__(self, size: int, image_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.size = size
        self.register_buffer("images", torch.zeros(size, *image_shape))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))
        self.filled = 0  # == count, on the host

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self.filled = int(self.count)  # once, at load time: not inside a step

    @torch.no_grad()
    def query(self, fakes: torch.Tensor) -> torch.Tensor:
        """While the pool fills, each fake is stored and comes back; once it is full,
        each comes back with probability 1/2, else a stored one comes back in its place."""
        if self.size == 0:
            return fakes
        fakes = fakes.detach().to(self.images.dtype)
        stored = min(self.size - self.filled, len(fakes))
        if stored:
            self.images[self.filled : self.filled + stored] = fakes[:stored]
            self.filled += stored
            self.count.fill_(self.filled)
        rest = fakes[stored:]
        if not len(rest):
            return fakes
        swap = torch.rand(len(rest), device=rest.device) < 0.5
        slots = torch.randint(self.size, (len(rest),), device=rest.device)
        returned, kept = exchange(self.images, rest, swap, slots)
        self.images.copy_(kept)
        return torch.cat([fakes[:stored], returned]) if stored else returned


def _side_tag(tag: str, side: str) -> str:
    """The tag of one D's logged value: ``d/real`` -> ``d_A/real``, ``penalty/gp`` ->
    ``penalty/gp_A``; the shared augmentation's (``augment/p``) stays as it is, and so do the
    health signals (``health/d_acc_real``): ``d_loss`` logs their mean over both Ds, so that
    every model logs the same health tags."""
    if tag.startswith(("augment/", "health/")):
        return tag
    return tag.replace("d/", f"d_{side}/") if tag.startswith("d/") else f"{tag}_{side}"


class CycleGAN(GANModel):
    data_kind = "unpaired"  # batches {"A": from domain A, "B": from domain B}, not aligned
    built_args = ("generator", "discriminator", "image_shape")
    # calibration_inputs stays None: the EMA copy takes G's BatchNorm buffers (engine/ema.py),
    # as G runs on batch statistics at test time by default (test_mode: train).

    def __init__(
        self,
        generator: nn.ModuleDict,
        discriminator: nn.ModuleDict,
        loss,
        image_shape: tuple[int, ...],
        cycle_weight: Weight = 10.0,
        identity_weight: Weight = 0.5,
        pool_size: Count = 50,
        test_mode: TestMode = "train",
    ) -> None:
        super().__init__()
        at_least("cycle_weight", cycle_weight, 0)
        at_least("identity_weight", identity_weight, 0)
        at_least("pool_size", pool_size, 0)
        self.G, self.D, self.loss = generator, discriminator, loss  # G: {"AB", "BA"}, D: {"A", "B"}
        self.cycle_weight, self.identity_weight = float(cycle_weight), float(identity_weight)
        self.test_mode = test_mode
        self.pools = nn.ModuleDict({side: ImagePool(pool_size, tuple(image_shape)) for side in ("A", "B")})
        self._fakes: dict[str, torch.Tensor] | None = None

    @classmethod
    def build_nets(
        cls, make_generator: NetFactory, make_discriminator: NetFactory, spec, options: Mapping[str, Any]
    ) -> dict[str, Any]:
        """G: {"AB", "BA"}, D: {"A", "B"}, all at the data's channels and size."""
        channels, image_size = spec.channels, spec.image_size

        def generator() -> nn.Module:
            return make_generator(in_channels=channels, out_channels=channels, image_size=image_size)

        return {
            "generator": nn.ModuleDict({"AB": generator(), "BA": generator()}),
            "discriminator": nn.ModuleDict(
                {side: make_discriminator(in_channels=channels, image_size=image_size) for side in "AB"}
            ),
            "image_shape": (channels, image_size, image_size),
        }

    def _d_side(self, side: str, real: torch.Tensor, fake: torch.Tensor):
        # One augmentation for both Ds: ADA's p follows the real scores of both.
        loss, logs = discriminator_loss(self.loss, self.D[side], real, fake, scale=0.5, augment=self.augment)
        return loss, {_side_tag(tag, side): value for tag, value in logs.items()}

    def d_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        A, B = batch["A"], batch["B"]
        fakes = {"B": self.G["AB"](A), "A": self.G["BA"](B)}  # kept for G's step
        self._fakes = fakes
        loss_b, logs_b = self._d_side("B", B, self.pools["B"].query(fakes["B"]))
        loss_a, logs_a = self._d_side("A", A, self.pools["A"].query(fakes["A"]))
        loss = loss_a + loss_b
        health = {tag: (value + logs_b[tag]) / 2 for tag, value in logs_a.items() if tag.startswith("health/")}
        return loss, {"loss/d": loss.detach(), **logs_a, **logs_b, **health}

    def g_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        A, B = batch["A"], batch["B"]
        fakes = self._fakes or {"B": self.G["AB"](A), "A": self.G["BA"](B)}
        self._fakes = None
        judge_A, judge_B = (augmented(self.D[side], self.augment) for side in "AB")
        adversarial = self.loss.g_loss(judge_B(fakes["B"]).float()) + self.loss.g_loss(judge_A(fakes["A"]).float())
        cycle = F.l1_loss(self.G["BA"](fakes["B"]), A) + F.l1_loss(self.G["AB"](fakes["A"]), B)
        loss = adversarial + self.cycle_weight * cycle
        logs = {"loss/g_adv": adversarial.detach(), "loss/cycle": cycle.detach()}
        if self.identity_weight:
            identity = F.l1_loss(self.G["AB"](B), B) + F.l1_loss(self.G["BA"](A), A)
            loss = loss + self.cycle_weight * self.identity_weight * identity
            logs["loss/identity"] = identity.detach()
        return loss, {"loss/g": loss.detach(), **logs}

    def translate(self, images: torch.Tensor, direction: str, generator: nn.ModuleDict | None = None) -> torch.Tensor:
        """``direction`` "AB" or "BA", as at test time (``test_mode``: see gantrain/test_time.py)."""
        return translate((self.G if generator is None else generator)[direction], images, self.test_mode)

    def fixed_inputs(self, num_samples: int, seed: int, source) -> dict[str, torch.Tensor]:
        """The first test images of each domain, the same at every grid."""
        return source.fixed_batch(num_samples)

    def sample_grid(self, fixed: dict[str, torch.Tensor], generator: nn.ModuleDict | None = None):
        """Rows of real_A | fake_B | rec_A | real_B | fake_A | rec_B."""
        A, B = fixed["A"], fixed["B"]
        fake_B, fake_A = self.translate(A, "AB", generator), self.translate(B, "BA", generator)
        rec_A, rec_B = self.translate(fake_B, "BA", generator), self.translate(fake_A, "AB", generator)
        return torch.stack([A, fake_B, rec_A, B, fake_A, rec_B], 1).flatten(0, 1), 6

    # -- quality and the trained generator ------------------------------------------
    @classmethod
    def evaluate(
        cls, generator: nn.Module, source, eval_cfg, options: Mapping[str, Any], device: torch.device, seed: int
    ) -> dict:
        """Cycle L1 of both domains (and FID of each translation) on the test images."""
        from gantrain.metrics.evaluate import evaluate_unpaired

        return evaluate_unpaired(
            cls.translator(generator, "AB", options, seed),
            cls.translator(generator, "BA", options, seed),
            source,
            eval_cfg,
            device,
            describe(options.get("test_mode", "train"), seed),
        )

    @classmethod
    def generator_info(cls, options: Mapping[str, Any], spec: Mapping[str, Any]) -> GeneratorInfo:
        return GeneratorInfo("translator", directions=("AB", "BA"))

    @classmethod
    def translator(cls, generator: nn.ModuleDict, direction: str, options: Mapping[str, Any], seed: int = 0):
        return translator(generator[direction], options.get("test_mode", "train"), seed)
