"""AC-GAN: the auxiliary classifier GAN (Odena, Olah & Shlens, 2017).

G draws an image for a class, G(z, c); D reads the image alone and predicts both its
source and its class. With the log-likelihoods of the correct source and class,

    L_S = E[log P(S=real | x_real)] + E[log P(S=fake | x_fake)]
    L_C = E[log P(C=c | x_real)]   + E[log P(C=c | x_fake)]

D maximises L_S + L_C and G maximises L_C - L_S (the paper's section 3). As losses
here, with CE the cross-entropy of D's class logits and ``w`` = ``class_weight`` (1 in
the paper, where the two terms are simply summed):

    D minimises  loss_d(D(x_real), D(x_fake)) + w * (CE(x_real, c) + CE(x_fake, c))
    G minimises  loss_g(D(x_fake)) + w * CE(x_fake, c)

``loss_d``/``loss_g`` are those of the loss object (``loss=bce``: the paper's source
log-likelihood, with G's term in the non-saturating form the paper's code uses), and
its penalties apply on the source logit. Fakes are drawn for the batch's own classes,
as the conditional GAN does, so D's class loss sees the same class mix in both halves.
The nets: any conditional G (the DCGAN G appends onehot(c) to z; the paper writes the
class into the first dimensions of z instead, which is the same linear map into G's
first layer), and ``nets.auxiliary.AuxiliaryClassifierDiscriminator``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from gantrain.augment.base import augmented
from gantrain.checks import PositiveInt, Weight, at_least
from gantrain.errors import UserError
from gantrain.health.signals import d_accuracy_logs
from gantrain.models.base import GeneratorInfo
from gantrain.models.common import observe
from gantrain.models.gan import GAN


class ACGAN(GAN):
    build_options = ()  # always conditional: the classes are the data's labels

    def __init__(
        self,
        generator,
        discriminator,
        loss,
        z_dim: PositiveInt,
        num_classes: int,
        reuse_fakes: bool = True,
        class_weight: Weight = 1.0,
    ) -> None:
        super().__init__(generator, discriminator, loss, z_dim, num_classes, reuse_fakes)
        at_least("class_weight", class_weight, 0)
        self.class_weight = float(class_weight)

    # -- construction ----------------------------------------------------------------
    @classmethod
    def check_data(cls, spec, options: Mapping[str, Any]) -> None:
        if spec.pairing != cls.data_kind or spec.num_classes < 2:
            raise UserError(
                f"AC-GAN trains on labelled images (two classes or more), but {spec.name or 'the data'} "
                f"holds {'images without labels' if spec.pairing == 'none' else spec.pairing + ' images'}: "
                f"choose a labelled data= "
                f"(mnist, fashion_mnist, a folder of class subfolders, celeba with label_attrs)"
            )

    @staticmethod
    def classes(spec, options: Mapping[str, Any]) -> int:
        """Always the data's classes: GAN.build_nets and GAN.evaluator ask this."""
        return int(spec.num_classes)

    @classmethod
    def generator_info(cls, options: Mapping[str, Any], spec: Mapping[str, Any]) -> GeneratorInfo:
        return GeneratorInfo("noise", z_dim=int(options["z_dim"]), num_classes=int(spec["num_classes"]))

    # -- one step --------------------------------------------------------------------
    def d_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        fake, y = self._generate(batch)
        self._fakes = (fake, y) if self.reuse_fakes else None
        real, fake = batch["image"], fake.detach()
        if self.loss.needs_real_grad:  # R1 differentiates D(real) with respect to real
            real = real.detach().requires_grad_(True)
        judge = augmented(self.D, self.augment)  # D o augment, the penalty's too
        real_logits, real_classes = judge(real, with_classes=True)
        fake_logits, fake_classes = judge(fake, with_classes=True)
        real_logits, fake_logits = real_logits.float(), fake_logits.float()
        class_real = F.cross_entropy(real_classes.float(), y)
        class_fake = F.cross_entropy(fake_classes.float(), y)
        penalty, penalty_logs = self.loss.penalty(judge, real, fake, None, real_logits)
        loss = self.loss.d_loss(real_logits, fake_logits) + self.class_weight * (class_real + class_fake) + penalty
        accuracy = (real_classes.argmax(1) == y).float().mean()
        return loss, {
            "loss/d": loss.detach(),
            "loss/d_class": (class_real + class_fake).detach(),
            "d/real": self.loss.score(real_logits.detach()).mean(),
            "d/fake": self.loss.score(fake_logits.detach()).mean(),
            "d/class_accuracy_real": accuracy,
            **penalty_logs,
            **observe(self.augment, self.loss, real_logits),
            **d_accuracy_logs(real_logits, fake_logits, self.loss.decision_boundary),  # of the source logit
        }

    def g_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        fake, y = self._fakes if self._fakes is not None else self._generate(batch)
        self._fakes = None
        logits, classes = augmented(self.D, self.augment)(fake, with_classes=True)
        adversarial = self.loss.g_loss(logits.float())
        class_loss = F.cross_entropy(classes.float(), y)
        loss = adversarial + self.class_weight * class_loss
        return loss, {"loss/g": loss.detach(), "loss/g_adv": adversarial.detach(), "loss/g_class": class_loss.detach()}
