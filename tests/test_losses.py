"""Every loss at known logits, and that each update only moves its own side."""

import math

import pytest
import torch

from gantrain.errors import UserError
from gantrain.losses.bce import BCELoss
from gantrain.losses.hinge import HingeLoss
from gantrain.losses.lsgan import LSGANLoss
from gantrain.losses.wasserstein import WassersteinLoss
from gantrain.models.gan import GAN
from gantrain.nets.dcgan import DCGANDiscriminator, DCGANGenerator


def test_d_loss_at_known_logits():
    loss = BCELoss()
    zero = torch.zeros(4)
    assert loss.d_loss(zero, zero).item() == pytest.approx(2 * math.log(2))
    # A confident, correct D: real logits +10, fake logits -10.
    assert loss.d_loss(torch.full((4,), 10.0), torch.full((4,), -10.0)).item() == pytest.approx(
        2 * math.log1p(math.exp(-10)), rel=1e-4
    )
    # -[log sigmoid(2) + log(1 - sigmoid(-1))]
    expected = -(math.log(1 / (1 + math.exp(-2))) + math.log(1 - 1 / (1 + math.exp(1))))
    assert loss.d_loss(torch.tensor([2.0]), torch.tensor([-1.0])).item() == pytest.approx(expected)


def test_g_loss_variants_at_known_logits():
    logits = torch.tensor([-3.0])
    d = 1 / (1 + math.exp(3))  # D(G(z))
    assert BCELoss("non_saturating").g_loss(logits).item() == pytest.approx(-math.log(d))
    assert BCELoss("minimax").g_loss(logits).item() == pytest.approx(math.log(1 - d))


def test_non_saturating_has_the_stronger_gradient_when_d_wins():
    grads = {}
    for variant in ("non_saturating", "minimax"):
        logit = torch.tensor([-6.0], requires_grad=True)
        BCELoss(variant).g_loss(logit).backward()
        grads[variant] = abs(logit.grad.item())
    assert grads["non_saturating"] > 100 * grads["minimax"]


def test_unknown_variant_is_a_user_error():
    with pytest.raises(UserError, match="variant"):
        BCELoss("saturating")


REAL, FAKE = torch.tensor([2.0, 0.5]), torch.tensor([-1.0, 0.25])


@pytest.mark.parametrize(
    "loss,d_value,g_value",
    [
        # LSGAN: mean((r - 1)^2) + mean(f^2); G: mean((f - 1)^2), the MSE of pix2pix/CycleGAN's code
        (LSGANLoss(), (1.0 + 0.25) / 2 + (1.0 + 0.0625) / 2, (4.0 + 0.5625) / 2),
        # hinge: mean(relu(1 - r)) + mean(relu(1 + f)); G: -mean(f)
        (HingeLoss(), (0.0 + 0.5) / 2 + (0.0 + 1.25) / 2, -(-1.0 + 0.25) / 2),
        # Wasserstein: mean(f) - mean(r); G: -mean(f)
        (WassersteinLoss(clip=0.01), (-1.0 + 0.25) / 2 - (2.0 + 0.5) / 2, -(-1.0 + 0.25) / 2),
    ],
    ids=["lsgan", "hinge", "wasserstein"],
)
def test_losses_at_known_logits(loss, d_value, g_value):
    assert loss.d_loss(REAL, FAKE).item() == pytest.approx(d_value)
    assert loss.g_loss(FAKE).item() == pytest.approx(g_value)
    assert torch.equal(loss.score(REAL), REAL)  # raw scores are what these losses log


LOSSES = {
    "bce": BCELoss(),
    "bce_r1": BCELoss(r1_weight=10.0),
    "lsgan": LSGANLoss(),
    "hinge": HingeLoss(),
    "wgan": WassersteinLoss(clip=0.01),
    "wgan_gp": WassersteinLoss(gp_weight=10.0),
}


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("conditioning", [None, "concat", "projection"])
def test_each_update_reaches_only_its_own_side(name, conditioning):
    torch.manual_seed(0)
    classes = 3 if conditioning else 0
    norm = "layer" if name == "wgan_gp" else "batch"
    D = DCGANDiscriminator(1, 28, classes, width=4, norm=norm, conditioning=conditioning or "concat")
    model = GAN(DCGANGenerator(8, 1, 28, classes, width=4), D, LOSSES[name], z_dim=8, num_classes=classes)
    batch = {"image": torch.rand(4, 1, 28, 28) * 2 - 1, "label": torch.tensor([0, 1, 2, 1])}
    loss_d, logs = model.d_loss(batch)
    loss_d.backward()
    assert all(p.grad is None for p in model.G.parameters())
    assert all(p.grad is not None for p in model.D.parameters())
    assert sum(p.grad.abs().sum() for p in model.D.parameters()) > 0
    penalties = {"bce_r1": {"penalty/r1"}, "wgan_gp": {"penalty/gp"}}.get(name, set())
    health = {"health/d_acc_real", "health/d_acc_fake"}
    health |= {"health/rt"} if LOSSES[name].decision_boundary is not None else set()
    assert set(logs) == {"loss/d", "d/real", "d/fake"} | penalties | health
    model.zero_grad(set_to_none=True)
    model.D.requires_grad_(False)  # as the loop does
    loss_g, _ = model.g_loss(batch)
    loss_g.backward()
    assert all(p.grad is not None for p in model.G.parameters())
    assert all(p.grad is None for p in model.D.parameters())
