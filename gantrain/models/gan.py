"""Image GANs that map noise (and optionally a class) to an image: the vanilla GAN,
DCGAN and their conditional versions share this algorithm; the nets and the loss
object decide the rest.

One step, as the loop drives it:
* ``d_loss(batch)``: D on real images and on detached fakes, ``loss.d_loss`` plus the
  loss's penalties (gradient penalty, R1), which see D, the images and the labels;
* ``after_d_step()``: the loss's constraint on D's weights (WGAN's clipping);
* ``g_loss(batch)``: D on the fakes again, now with gradients flowing into G.

Conditional models (``num_classes > 0``) draw their fakes for the batch's own labels,
so real and fake images of one D step have the same class mix, and the gradient
penalty's interpolates keep the label they share.

Like pytorch/examples' DCGAN, G's step reuses the fakes drawn for the last D step
(``reuse_fakes``): G has not changed since, and it saves one G forward per step.
The model never calls ``backward()`` or ``step()``; the loop owns those.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from gantrain.augment.base import augmented
from gantrain.checks import PositiveInt, at_least
from gantrain.errors import OptionError
from gantrain.models.base import GANModel, GeneratorInfo, NetFactory
from gantrain.models.common import discriminator_loss, eval_forward

# The EMA copy's BatchNorm statistics: 16 batches of 64 noise vectors (1,024 samples).
CALIBRATION_BATCHES, CALIBRATION_BATCH_SIZE, CALIBRATION_SEED = 16, 64, 1234


class GAN(GANModel):
    data_kind = "none"  # images, with labels when conditional
    built_args = ("generator", "discriminator", "num_classes")
    build_options = ("conditional",)  # true: num_classes from the data's labels

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        loss,
        z_dim: PositiveInt,
        num_classes: int = 0,
        reuse_fakes: bool = True,
    ) -> None:
        super().__init__()
        self.G, self.D, self.loss = generator, discriminator, loss
        self.z_dim, self.num_classes, self.reuse_fakes = z_dim, num_classes, reuse_fakes
        self._fakes: tuple[torch.Tensor, torch.Tensor | None] | None = None

    # -- construction ----------------------------------------------------------------
    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        conditional = options.get("conditional", False)
        if not isinstance(conditional, bool):
            raise OptionError(
                "conditional", f"conditional={conditional!r} is not true or false: fix the value of conditional"
            )
        if "z_dim" in options:
            at_least("z_dim", options["z_dim"], 1)

    @classmethod
    def check_data(cls, spec, options: Mapping[str, Any]) -> None:
        super().check_data(spec, options)
        if options.get("conditional", False) and not spec.num_classes:
            raise OptionError(
                "conditional",
                f"conditional=true needs class labels, but {spec.name} has none: "
                f"use a labelled dataset (mnist, fashion_mnist, a folder of class "
                f"subfolders, celeba with label_attrs=[Smiling]) or "
                f"conditional=false",
                also=("label_attrs",),  # the data's option: the config layer names its key
            )

    @staticmethod
    def classes(spec, options: Mapping[str, Any]) -> int:
        """The class count G and D are conditioned on: the data's, when conditional."""
        return int(spec.num_classes) if options.get("conditional", False) else 0

    @classmethod
    def build_nets(
        cls, make_generator: NetFactory, make_discriminator: NetFactory, spec, options: Mapping[str, Any]
    ) -> dict[str, Any]:
        """G(z, y) and D(x, y) at the data's channels and size."""
        shape = {"channels": spec.channels, "image_size": spec.image_size, "num_classes": cls.classes(spec, options)}
        return {
            "generator": make_generator(z_dim=options["z_dim"], **shape),
            "discriminator": make_discriminator(**shape),
            "num_classes": shape["num_classes"],
        }

    # -- one step --------------------------------------------------------------------
    def sample_z(self, n: int, device: torch.device) -> torch.Tensor:
        return torch.randn(n, self.z_dim, device=device)

    def _labels(self, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        return batch["label"] if self.num_classes else None

    def _generate(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        real = batch["image"]
        y = self._labels(batch)  # fakes are drawn for the batch's own classes
        return self.G(self.sample_z(real.shape[0], real.device), y), y

    def d_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        fake, y = self._generate(batch)
        self._fakes = (fake, y) if self.reuse_fakes else None
        loss, logs = discriminator_loss(self.loss, self.D, batch["image"], fake.detach(), y, augment=self.augment)
        return loss, {"loss/d": loss.detach(), **logs}

    def g_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        fake, y = self._fakes if self._fakes is not None else self._generate(batch)
        self._fakes = None
        loss = self.loss.g_loss(augmented(self.D, self.augment)(fake, y).float())
        return loss, {"loss/g": loss.detach()}

    def calibration_inputs(self, device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        """What the EMA copy of G recomputes its BatchNorm statistics on (engine/ema.py):
        CALIBRATION_BATCHES batches of noise (and uniformly drawn classes), the same
        every time (their own seeded generator: nothing is taken from the training RNG)."""
        rng = torch.Generator().manual_seed(CALIBRATION_SEED)
        batches = []
        for _ in range(CALIBRATION_BATCHES):
            z = torch.randn(CALIBRATION_BATCH_SIZE, self.z_dim, generator=rng).to(device)
            y = (
                torch.randint(self.num_classes, (CALIBRATION_BATCH_SIZE,), generator=rng).to(device)
                if self.num_classes
                else None
            )
            batches.append((z, y))
        return batches

    def fixed_inputs(self, num_samples: int, seed: int, source=None) -> dict[str, torch.Tensor]:
        """Noise for the sample grids, from its own generator so that it takes nothing
        from the training RNG. Conditional: a row per class, the same z down each column."""
        classes = self.num_classes
        columns = max(1, num_samples // classes) if classes else math.ceil(math.sqrt(num_samples))
        n = columns * classes if classes else num_samples
        fixed = {
            "z": torch.randn(n, self.z_dim, generator=torch.Generator().manual_seed(seed)),
            "columns": torch.tensor(columns),
        }
        if classes:
            fixed["y"] = torch.arange(classes).repeat_interleave(columns)
        return fixed

    def sample_grid(self, fixed: dict[str, torch.Tensor], generator: nn.Module | None = None):
        return self.sample(fixed["z"], fixed.get("y"), generator), int(fixed["columns"])

    def sample(
        self, z: torch.Tensor, y: torch.Tensor | None = None, generator: nn.Module | None = None
    ) -> torch.Tensor:
        """Images for fixed noise, with G in eval mode (BatchNorm's running statistics).
        ``generator``: another copy of G to sample from (the loop's EMA copy)."""
        return eval_forward(self.G if generator is None else generator, z, y if self.num_classes else None)

    # -- quality and the trained generator ------------------------------------------
    @classmethod
    def evaluator(cls, eval_cfg, source, options: Mapping[str, Any], device: torch.device, seed: int):
        from gantrain.metrics.evaluate import GeneratorEvaluator

        return GeneratorEvaluator(eval_cfg, source, options["z_dim"], cls.classes(source.spec, options), device, seed)

    @classmethod
    def evaluate(
        cls, generator: nn.Module, source, eval_cfg, options: Mapping[str, Any], device: torch.device, seed: int
    ) -> dict:
        return cls.evaluator(eval_cfg, source, options, device, seed)(generator)

    @classmethod
    def generator_info(cls, options: Mapping[str, Any], spec: Mapping[str, Any]) -> GeneratorInfo:
        classes = int(spec["num_classes"]) if options.get("conditional", False) else 0
        return GeneratorInfo("noise", z_dim=int(options["z_dim"]), num_classes=classes)
