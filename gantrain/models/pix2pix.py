"""pix2pix: paired image-to-image translation (Isola et al., 2017).

G maps an input image A to an output G(A); D judges pairs, (A, B) as real and
(A, G(A)) as fake, patch by patch (PatchGAN). G minimises the adversarial loss plus
an L1 term that pulls G(A) towards the target B:

    D minimises  1/2 [ loss_d(D(A, B), D(A, G(A))) ]          (halved, as the paper does)
    G minimises  loss_g(D(A, G(A))) + lambda * |B - G(A)|_1     (lambda = 100)

with |.|_1 the mean absolute error over pixels, and ``loss_d``/``loss_g`` as the loss
objects define them (no constant factor: with ``loss=bce``, ``loss_g`` is
BCE(D(A, G(A)), 1), with ``loss=lsgan`` MSE(D(A, G(A)), 1), as in the authors' code).
Any loss from ``gantrain.losses`` applies (the paper uses BCE), and so do its
penalties, computed on the concatenated pairs and on the mean of D's patch map.

At test time G runs as the paper runs it, in train mode, one image at a time
(``test_mode: train``, see ``gantrain/test_time.py``); ``test_mode: eval`` uses the
running statistics and no dropout instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gantrain.augment.base import augmented
from gantrain.checks import Weight, at_least
from gantrain.models.base import GANModel, GeneratorInfo, NetFactory
from gantrain.models.common import discriminator_loss
from gantrain.test_time import TestMode, describe, translate, translator


class Pix2Pix(GANModel):
    data_kind = "paired"  # batches {"A": input, "B": target}
    # calibration_inputs stays None: the EMA copy takes G's BatchNorm buffers (engine/ema.py),
    # as G runs on batch statistics at test time by default (test_mode: train).

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        loss,
        l1_weight: Weight = 100.0,
        test_mode: TestMode = "train",
    ) -> None:
        super().__init__()
        at_least("l1_weight", l1_weight, 0)
        self.G, self.D, self.loss = generator, discriminator, loss
        self.l1_weight, self.test_mode = float(l1_weight), test_mode
        self._fake: torch.Tensor | None = None

    @classmethod
    def build_nets(
        cls, make_generator: NetFactory, make_discriminator: NetFactory, spec, options: Mapping[str, Any]
    ) -> dict[str, Any]:
        """G: A -> B at the data's size; D sees A and B stacked along the channels."""
        channels, size = spec.channels, spec.image_size
        return {
            "generator": make_generator(in_channels=channels, out_channels=channels, image_size=size),
            "discriminator": make_discriminator(in_channels=2 * channels, image_size=size),
        }

    def d_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        A, B = batch["A"], batch["B"]
        fake = self.G(A)
        self._fake = fake  # G's step uses the same output: G has not changed since
        loss, logs = discriminator_loss(
            self.loss, self.D, torch.cat([A, B], 1), torch.cat([A, fake.detach()], 1), scale=0.5, augment=self.augment
        )  # an augmentation transforms the stacked pair alike in A and B: it stays a pair
        return loss, {"loss/d": loss.detach(), **logs}

    def g_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        A, B = batch["A"], batch["B"]
        fake = self._fake if self._fake is not None else self.G(A)
        self._fake = None
        adversarial = self.loss.g_loss(augmented(self.D, self.augment)(torch.cat([A, fake], 1)).float())
        l1 = F.l1_loss(fake, B)
        loss = adversarial + self.l1_weight * l1
        return loss, {"loss/g": loss.detach(), "loss/g_adv": adversarial.detach(), "loss/l1": l1.detach()}

    def translate(self, A: torch.Tensor, generator: nn.Module | None = None) -> torch.Tensor:
        """G(A) as at test time (``test_mode``); changes no buffer and no RNG state."""
        return translate(self.G if generator is None else generator, A, self.test_mode)

    def fixed_inputs(self, num_samples: int, seed: int, source) -> dict[str, torch.Tensor]:
        """The first held-out pairs (val/, else test/), the same at every grid."""
        return source.fixed_batch(num_samples)

    def sample_grid(self, fixed: dict[str, torch.Tensor], generator: nn.Module | None = None):
        """Rows of input | output | target for the fixed validation pairs (two per row)."""
        A, B = fixed["A"], fixed["B"]
        triplets = torch.stack([A, self.translate(A, generator), B], 1).flatten(0, 1)
        return triplets, 6 if len(A) > 1 else 3

    def validation(self, source, batch_size: int):
        return lambda: source.validation_batches(batch_size)

    @torch.no_grad()
    def validate(self, batches, generator: nn.Module | None = None) -> dict[str, float]:
        """L1, PSNR and SSIM of G(A) against B over the validation pairs."""
        from gantrain.metrics.paired import paired_scores  # torchmetrics: not on the way to a config error

        device = next(self.G.parameters()).device
        scores = paired_scores(lambda A: self.translate(A, generator), batches, device)
        return {f"val/{key}": value for key, value in scores.items()}

    # -- quality and the trained generator ------------------------------------------
    @classmethod
    def evaluate(
        cls, generator: nn.Module, source, eval_cfg, options: Mapping[str, Any], device: torch.device, seed: int
    ) -> dict:
        """L1, PSNR, SSIM (and FID) of G(A) against B on the held-out pairs."""
        from gantrain.metrics.evaluate import evaluate_paired

        mode = options.get("test_mode", "train")
        return evaluate_paired(
            cls.translator(generator, "AB", options, seed), source, eval_cfg, device, describe(mode, seed)
        )

    @classmethod
    def generator_info(cls, options: Mapping[str, Any], spec: Mapping[str, Any]) -> GeneratorInfo:
        return GeneratorInfo("translator", directions=("AB",))

    @classmethod
    def translator(cls, generator: nn.Module, direction: str, options: Mapping[str, Any], seed: int = 0):
        # Runs from before test_mode existed: the paper's (train).
        return translator(generator, options.get("test_mode", "train"), seed)
