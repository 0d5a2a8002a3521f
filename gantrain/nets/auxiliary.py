"""The auxiliary-classifier discriminator of AC-GAN (Odena, Olah & Shlens, 2017).

D does not read the class; it predicts it. The DCGAN discriminator's stack (built
unconditional) ends in two heads on the same features: the source logit (real or
fake), and ``num_classes`` class logits, each a convolution with the geometry of the
DCGAN D's last layer (the paper: "the discriminator ... outputs both a probability
distribution over sources and a probability distribution over the class labels").
``D(x)`` returns the source logits, as every loss and penalty expects;
``D(x, with_classes=True)`` returns (source logits, class logits) from one pass.
``freeze`` (Freeze-D, Mo et al., 2020) freezes the first blocks of the DCGAN stack, as
there; the two heads are the last block and always train.
"""

from __future__ import annotations

import torch
from torch import nn

from gantrain.checks import Count, PositiveInt, at_least
from gantrain.nets.dcgan import DCGANDiscriminator, Norm, dcgan_init
from gantrain.nets.norms import SPECTRAL, spectrally_normalised


class AuxiliaryClassifierDiscriminator(nn.Module):
    norm_choices: tuple[str, ...] = DCGANDiscriminator.norm_choices

    def __init__(
        self,
        channels: int,
        image_size: int,
        num_classes: int,
        width: PositiveInt = 64,
        norm: Norm = "batch",
        freeze: Count = 0,
    ) -> None:
        super().__init__()
        at_least("num_classes", num_classes, 2)
        self.body = DCGANDiscriminator(channels, image_size, 0, width=width, norm=norm, freeze=freeze)
        last = self.body.net[-1]
        head = nn.Conv2d(last.in_channels, num_classes, last.kernel_size, last.stride, last.padding)
        dcgan_init(head)
        # A spectrally normalised D normalises every weight layer, the class head too.
        self.classes = spectrally_normalised(head) if norm == SPECTRAL else head
        self.num_classes = num_classes

    def forward(
        self, x: torch.Tensor, y: torch.Tensor | None = None, with_classes: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``y`` is accepted and ignored (the penalties pass it to conditional Ds)."""
        features = self.body.net[:-1](x)
        source = self.body.net[-1](features).flatten(1).squeeze(1)
        if not with_classes:
            return source
        return source, self.classes(features).flatten(1)
