"""Image GANs that map noise (and optionally a class) to an image: the vanilla GAN,
DCGAN and their conditional versions share this algorithm; the nets and the loss
object decide the rest.

One step, as the loop drives it:
* ``d_loss(batch)``: D on real images and on detached fakes, ``loss.d_loss``;
* ``g_loss(batch)``: D on the fakes again, now with gradients flowing into G.

Like pytorch/examples' DCGAN, G's step reuses the fakes drawn for the last D step
(``reuse_fakes``): G has not changed since, and it saves one G forward per step.
The model never calls ``backward()`` or ``step()``; the loop owns those.
"""

from __future__ import annotations

import torch
from torch import nn


class GAN(nn.Module):
    def __init__(self, generator: nn.Module, discriminator: nn.Module, loss, z_dim: int,
                 num_classes: int = 0, reuse_fakes: bool = True) -> None:
        super().__init__()
        self.G, self.D, self.loss = generator, discriminator, loss
        self.z_dim, self.num_classes, self.reuse_fakes = z_dim, num_classes, reuse_fakes
        self._fakes: tuple[torch.Tensor, torch.Tensor | None] | None = None

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
        real_logits = self.D(batch["image"], self._labels(batch))
        fake_logits = self.D(fake.detach(), y)
        loss = self.loss.d_loss(real_logits, fake_logits)
        return loss, {"loss/d": loss.detach(),
                      "d/real": self.loss.score(real_logits.detach()).mean(),
                      "d/fake": self.loss.score(fake_logits.detach()).mean()}

    def g_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        fake, y = self._fakes if self._fakes is not None else self._generate(batch)
        self._fakes = None
        loss = self.loss.g_loss(self.D(fake, y))
        return loss, {"loss/g": loss.detach()}

    @torch.no_grad()
    def sample(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Images for fixed noise, with G in eval mode (BatchNorm's running statistics)."""
        was_training = self.G.training
        self.G.eval()
        images = self.G(z, y if self.num_classes else None)
        self.G.train(was_training)
        return images
