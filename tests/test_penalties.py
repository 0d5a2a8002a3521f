"""The gradient penalty and R1 against their analytic values, and WGAN's clipping."""

import pytest
import torch
from conftest import TINY, compose_config
from torch import nn

from gantrain.build import build_trainer
from gantrain.errors import UserError
from gantrain.losses.base import gradient_penalty, interpolate, r1_penalty
from gantrain.losses.bce import BCELoss
from gantrain.losses.wasserstein import WassersteinLoss
from gantrain.models.gan import GAN
from gantrain.nets.mlp import MLPGenerator


class LinearCritic(nn.Module):
    """C(x) = <w, x> + b: its input gradient is w everywhere."""

    def __init__(self, shape) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(shape))
        self.b = nn.Parameter(torch.tensor(0.3))

    def forward(self, x, y=None):
        return (x * self.w).flatten(1).sum(1) + self.b


class QuadraticCritic(nn.Module):
    """C(x) = ||x||^2 / 2: its input gradient is x itself."""

    def forward(self, x, y=None):
        return 0.5 * x.flatten(1).square().sum(1)


def test_gradient_penalty_of_a_linear_critic_is_analytic():
    torch.manual_seed(0)
    critic = LinearCritic((1, 5, 5))
    real, fake = torch.randn(16, 1, 5, 5), torch.randn(16, 1, 5, 5)
    expected = (critic.w.detach().norm() - 1) ** 2
    assert gradient_penalty(critic, real, fake, None).item() == pytest.approx(expected.item(), rel=1e-5)


def test_gradient_penalty_draws_one_interpolation_weight_per_sample():
    # With C = ||x||^2/2, real = 0 and fake = c: grad C(x_hat) = x_hat = (1 - e_i) c, so
    # the penalty is mean_i ((1 - e_i) ||c|| - 1)^2: it depends on every e_i.
    real, fake = torch.zeros(64, 1, 4, 4), torch.full((64, 1, 4, 4), 0.5)
    torch.manual_seed(3)
    value = gradient_penalty(QuadraticCritic(), real, fake, None).item()
    torch.manual_seed(3)
    e = torch.rand(64)
    per_sample = ((1 - e) * fake[0].norm() - 1).square().mean().item()
    shared = ((1 - e[0]) * fake[0].norm() - 1).square().item()
    assert value == pytest.approx(per_sample, rel=1e-5)
    assert value != pytest.approx(shared, rel=1e-2)


def test_interpolates_lie_on_each_segment_with_their_own_weight():
    real, fake = torch.zeros(32, 3, 4, 4), torch.ones(32, 3, 4, 4)
    x_hat = interpolate(real, fake)
    weights = 1 - x_hat.flatten(1)  # e_i, repeated over every pixel of sample i
    assert torch.allclose(weights, weights[:, :1].expand_as(weights))
    assert ((weights >= 0) & (weights <= 1)).all() and weights[:, 0].std() > 0.1


def test_r1_of_a_linear_critic_is_the_squared_weight_norm():
    torch.manual_seed(0)
    critic = LinearCritic((2, 3, 3))
    real = torch.randn(8, 2, 3, 3, requires_grad=True)
    assert r1_penalty(critic(real), real).item() == pytest.approx(critic.w.detach().square().sum().item(), rel=1e-5)


def _linear_gan(loss, shape=(1, 4, 4)):
    return GAN(MLPGenerator(4, shape[0], shape[1], hidden=8, blocks=1), LinearCritic(shape), loss, z_dim=4)


def test_wgan_gp_d_loss_is_the_critic_gap_plus_ten_times_the_penalty():
    torch.manual_seed(1)
    model = _linear_gan(WassersteinLoss(gp_weight=10.0))
    batch = {"image": torch.rand(8, 1, 4, 4) * 2 - 1}
    loss, logs = model.d_loss(batch)
    gp = (model.D.w.detach().norm() - 1) ** 2
    gap = logs["d/fake"] - logs["d/real"]  # raw critic scores for the Wasserstein loss
    assert logs["penalty/gp"].item() == pytest.approx(gp.item(), rel=1e-5)
    assert loss.item() == pytest.approx((gap + 10 * gp).item(), rel=1e-5)


def test_r1_option_adds_half_gamma_times_the_penalty_to_any_loss():
    torch.manual_seed(2)
    model = _linear_gan(BCELoss(r1_weight=4.0))
    plain = _linear_gan(BCELoss())
    plain.load_state_dict(model.state_dict())
    batch = {"image": torch.rand(8, 1, 4, 4) * 2 - 1}
    torch.manual_seed(5)  # the same fakes for both
    with_r1, logs = model.d_loss(batch)
    torch.manual_seed(5)
    without, _ = plain.d_loss(batch)
    r1 = model.D.w.detach().square().sum()
    assert logs["penalty/r1"].item() == pytest.approx(r1.item(), rel=1e-5)
    assert (with_r1 - without).item() == pytest.approx(2.0 * r1.item(), rel=1e-4)


def test_wgan_clipping_clamps_every_critic_weight_after_its_update():
    model = _linear_gan(WassersteinLoss(clip=0.01))
    with torch.no_grad():
        model.D.w.mul_(10)
    model.after_d_step()
    assert all(p.abs().max() <= 0.01 for p in model.D.parameters())
    assert model.G.net[0].weight.abs().max() > 0.01  # G is never clipped


def test_wasserstein_loss_without_a_constraint_is_refused():
    with pytest.raises(UserError, match="Lipschitz"):
        WassersteinLoss(clip=None)
    with pytest.raises(UserError, match="clip"):
        WassersteinLoss(clip=-1.0)
    with pytest.raises(UserError, match="gp_weight"):
        WassersteinLoss(gp_weight=-1.0)


@pytest.mark.parametrize("optim,warned", [("adam", True), ("rmsprop", False)])
def test_clipping_with_a_momentum_optimizer_is_warned_about(tmp_path, caplog, optim, warned):
    overrides = [*TINY, "loss=wgan", f"optim={optim}"]
    with caplog.at_level("WARNING", logger="gantrain"):
        build_trainer(compose_config(overrides), tmp_path / "run", overrides).logger.close()
    assert ("momentum" in caplog.text) == warned
