"""The health signals (gantrain/health/signals.py) on constructed cases: an overconfident D,
a chance D, a Wasserstein critic, exploding weights, a collapsed generator against a healthy
one, class coverage, held-out accuracy; no host sync in the per-step signals; and a tiny
training run that logs them. About 10 s on 2 CPU cores (the training run is most of it)."""

from __future__ import annotations

import pytest
import torch
from conftest import TINY, events, train
from torch import nn

from gantrain.health.signals import SampleProbe, d_accuracy_logs, grad_norm, normalised_entropy, weight_norm
from gantrain.losses.bce import BCELoss
from gantrain.losses.lsgan import LSGANLoss
from gantrain.losses.wasserstein import WassersteinLoss
from gantrain.models.acgan import ACGAN
from gantrain.models.cyclegan import CycleGAN
from gantrain.models.gan import GAN
from gantrain.models.pix2pix import Pix2Pix
from gantrain.nets.auxiliary import AuxiliaryClassifierDiscriminator
from gantrain.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from gantrain.nets.mlp import MLPDiscriminator
from gantrain.nets.patchgan import PatchDiscriminator
from gantrain.nets.resnet import ResnetGenerator
from gantrain.nets.unet import UNetGenerator

HEALTH = {"health/d_acc_real", "health/d_acc_fake", "health/rt"}


def close(a, b, tol: float = 1e-6) -> bool:
    return abs(float(a) - float(b)) <= tol


# -- D's accuracy and r_t -----------------------------------------------------------------


def test_an_overconfident_d_is_always_right_and_sure_of_every_real_image():
    logs = d_accuracy_logs(torch.full((16,), 10.0), torch.full((16,), -10.0), 0.0)
    assert set(logs) == HEALTH
    assert all(close(value, 1.0) for value in logs.values())
    lsgan = d_accuracy_logs(torch.ones(16), torch.zeros(16), LSGANLoss.decision_boundary)  # 0-1 coding, b = 1/2
    assert all(close(value, 1.0) for value in lsgan.values())


def test_a_d_at_chance_scores_one_half_and_rt_zero():
    at_boundary = d_accuracy_logs(torch.zeros(8), torch.zeros(8), 0.0)  # every score on the boundary: half
    assert close(at_boundary["health/d_acc_real"], 0.5) and close(at_boundary["health/d_acc_fake"], 0.5)
    assert close(at_boundary["health/rt"], 0.0)
    rng = torch.Generator().manual_seed(0)
    real, fake = torch.randn(20_000, generator=rng), torch.randn(20_000, generator=rng)  # one distribution
    logs = d_accuracy_logs(real, fake, 0.0)
    assert abs(float(logs["health/d_acc_real"]) - 0.5) < 0.02 and abs(float(logs["health/d_acc_fake"]) - 0.5) < 0.02
    assert abs(float(logs["health/rt"])) < 0.03
    assert close(logs["health/rt"], 2 * logs["health/d_acc_real"] - 1)  # r_t = 2 acc_real - 1


def test_patch_maps_count_patch_by_patch():
    real = torch.tensor([[[[1.0, -1.0], [1.0, 1.0]]]])  # one image, 3 of 4 patches judged real
    logs = d_accuracy_logs(real, -real, 0.0)
    assert close(logs["health/d_acc_real"], 0.75) and close(logs["health/rt"], 0.5)


def test_a_wasserstein_critic_is_judged_against_the_midpoint_of_its_means():
    real, fake = torch.tensor([5.0, 6.0, 7.0, 2.0]), torch.tensor([-3.0, -2.0, 4.0, 1.0])
    middle = (real.mean() + fake.mean()) / 2  # 2.5
    logs = d_accuracy_logs(real, fake, None)
    assert set(logs) == {"health/d_acc_real", "health/d_acc_fake"}  # no r_t without a boundary
    assert close(logs["health/d_acc_real"], (real > middle).float().mean())  # 3 of 4
    assert close(logs["health/d_acc_fake"], (fake < middle).float().mean())  # 3 of 4
    shifted = d_accuracy_logs(real + 100, fake + 100, None)  # the critic's scores drift freely
    assert all(close(shifted[tag], logs[tag]) for tag in logs)


# -- norms --------------------------------------------------------------------------------


def test_grad_norm_is_the_global_norm_clip_grad_norm_returns():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3), nn.Linear(3, 2))
    net[3].requires_grad_(False)  # a frozen layer has no gradient: it does not count
    net(torch.randn(4, 5)).square().sum().backward()
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    expected = torch.nn.utils.get_total_norm(grads)
    value = grad_norm(net.parameters())
    assert isinstance(value, torch.Tensor) and value.dim() == 0
    assert close(value, expected, 1e-5)
    assert close(value, torch.nn.utils.clip_grad_norm_(net.parameters(), float("inf")), 1e-5)
    net.zero_grad(set_to_none=True)
    assert float(grad_norm(net.parameters())) == 0.0 and float(grad_norm([])) == 0.0


def test_weight_norm_grows_with_exploding_weights():
    torch.manual_seed(0)
    net = DCGANDiscriminator(1, 28, width=4, norm="spectral")  # the stored weights, not W / sigma(W)
    before = weight_norm(net)
    assert close(before, torch.nn.utils.get_total_norm(list(net.parameters())), 1e-4)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(1e3)
    assert close(weight_norm(net) / before, 1e3, 1e-2)


def test_the_per_step_signals_never_read_a_value_back_to_the_host(monkeypatch):
    torch.manual_seed(0)
    model = GAN(DCGANGenerator(8, 1, 28, width=4), DCGANDiscriminator(1, 28, width=4), BCELoss(), z_dim=8)
    batch = {"image": torch.rand(4, 1, 28, 28) * 2 - 1}

    def host_sync(*args, **kwargs):
        raise AssertionError("a host sync in a per-step signal")

    for name in ("item", "tolist", "__float__", "__int__", "__bool__"):
        monkeypatch.setattr(torch.Tensor, name, host_sync)
    loss, logs = model.d_loss(batch)
    loss.backward()
    values = [
        *d_accuracy_logs(torch.randn(8), torch.randn(8), 0.0).values(),
        *d_accuracy_logs(torch.randn(8), torch.randn(8), None).values(),
        grad_norm(model.D.parameters()),
        weight_norm(model.G),
        *(logs[tag] for tag in HEALTH),
    ]
    monkeypatch.undo()
    assert all(isinstance(value, torch.Tensor) and value.dim() == 0 for value in values)


# -- the models log them -------------------------------------------------------------------


def test_every_model_logs_the_same_health_tags():
    torch.manual_seed(0)
    images = {"image": torch.rand(4, 1, 28, 28) * 2 - 1, "label": torch.tensor([0, 1, 2, 1])}
    acgan = ACGAN(
        DCGANGenerator(8, 1, 28, 3, width=4), AuxiliaryClassifierDiscriminator(1, 28, 3, width=4), BCELoss(), 8, 3
    )
    wgan = GAN(
        DCGANGenerator(8, 1, 28, width=4),
        DCGANDiscriminator(1, 28, width=4, norm="layer"),
        WassersteinLoss(clip=0.01),
        8,
    )
    assert HEALTH <= set(acgan.d_loss(images)[1])
    assert set(wgan.d_loss(images)[1]) & HEALTH == {"health/d_acc_real", "health/d_acc_fake"}
    pairs = {"A": torch.rand(2, 3, 16, 16) * 2 - 1, "B": torch.rand(2, 3, 16, 16) * 2 - 1}
    pix2pix = Pix2Pix(
        UNetGenerator(3, 3, 16, width=4), PatchDiscriminator(6, width=4, layers=1, image_size=16), BCELoss()
    )
    assert HEALTH <= set(pix2pix.d_loss(pairs)[1])


def test_cyclegan_logs_the_mean_of_its_two_discriminators():
    torch.manual_seed(0)
    G = nn.ModuleDict({d: ResnetGenerator(3, 3, 16, width=4, blocks=1) for d in ("AB", "BA")})
    D = nn.ModuleDict({d: PatchDiscriminator(3, width=4, layers=1, norm="instance", image_size=16) for d in "AB"})
    model = CycleGAN(G, D, LSGANLoss(), (3, 16, 16))
    a, b = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 16, 16) * 2 - 1
    _, logs = model.d_loss({"A": a, "B": b})
    assert not any(tag.startswith("health/") and tag not in HEALTH for tag in logs)  # no health/..._A
    with torch.no_grad():  # the pool is filling: D sees the current fakes
        side_a = d_accuracy_logs(D["A"](a), D["A"](G["BA"](b)), 0.5)
        side_b = d_accuracy_logs(D["B"](b), D["B"](G["AB"](a)), 0.5)
    for tag in HEALTH:
        assert close(logs[tag], (side_a[tag] + side_b[tag]) / 2), tag


# -- SampleProbe --------------------------------------------------------------------------


class Fixed(nn.Module):
    """A collapsed G: every z (and class) maps to one image."""

    def __init__(self, image: torch.Tensor) -> None:
        super().__init__()
        self.image, self.scale = image, nn.Parameter(torch.ones(()))

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return (self.scale * self.image).expand(len(z), *self.image.shape)


class Squash(nn.Module):
    """A healthy G: images drawn exactly as the real ones, tanh(z) as 1x28x28."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return torch.tanh(self.scale * z).view(-1, 1, 28, 28)


def real_like(n: int, seed: int = 1) -> torch.Tensor:
    return torch.tanh(torch.randn(n, 784, generator=torch.Generator().manual_seed(seed))).view(-1, 1, 28, 28)


@pytest.mark.parametrize("make_d", ["mlp", "dcgan", "dcgan_spectral"])
def test_diversity_falls_to_zero_for_a_collapsed_generator_and_is_near_one_for_a_healthy_one(make_d):
    torch.manual_seed(0)
    D = {
        "mlp": lambda: MLPDiscriminator(1, 28, hidden=16),
        "dcgan": lambda: DCGANDiscriminator(1, 28, width=8),
        "dcgan_spectral": lambda: DCGANDiscriminator(1, 28, width=8, norm="spectral"),
    }[make_d]()
    real = real_like(64)
    healthy = GAN(Squash(), D, BCELoss(), z_dim=784)
    probe = SampleProbe(healthy, real, None, 0, None, healthy.loss, num=64)
    state, rng = {k: v.clone() for k, v in D.state_dict().items()}, torch.get_rng_state()
    diversity = probe(healthy.G)["health/diversity"]
    assert 0.8 < diversity < 1.25
    assert torch.equal(torch.get_rng_state(), rng)  # the training RNG is untouched
    assert all(torch.equal(v, D.state_dict()[k]) for k, v in state.items())  # so are D's buffers
    assert D.training
    collapsed = Fixed(real[0])
    assert probe(collapsed)["health/diversity"] < 1e-4  # the probe samples the G it is given


def test_d_features_are_the_input_of_d_s_output_layer():
    torch.manual_seed(0)
    x, y = real_like(6), torch.tensor([0, 1, 2, 0, 1, 2])
    cases = [
        (DCGANDiscriminator(1, 28, width=4), None, lambda D: D.net[:-1](x)),
        (DCGANDiscriminator(1, 28, 3, width=4, conditioning="projection"), y, lambda D: D.net[:-1](x)),
        (AuxiliaryClassifierDiscriminator(1, 28, 3, width=4), y, lambda D: D.body.net[:-1](x)),
        (MLPDiscriminator(1, 28, hidden=8, norm="spectral"), None, lambda D: D.net[:-1](x.flatten(1))),
    ]
    for D, labels, expected in cases:
        model = GAN(Squash(), D, BCELoss(), z_dim=784)
        probe = SampleProbe(model, x, None, 0, None, model.loss, num=6)
        D.eval()
        with torch.no_grad():
            want = expected(D)
        D.train()
        assert torch.allclose(probe.d_features(x, labels), want), type(D).__name__


class OneHotJudge(nn.Module):
    """A judge in metrics/judge.py's shape (``features``, ``classify``): the class of an image
    is the brightest of its first K pixels."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes, self.unused = num_classes, nn.Linear(1, 1)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return images.flatten(1)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return 100 * features[:, : self.num_classes]


class ClassImage(nn.Module):
    """A conditional G that draws class c as an image whose pixel c is lit (or class 0 always)."""

    def __init__(self, num_classes: int, collapsed: bool) -> None:
        super().__init__()
        self.num_classes, self.collapsed, self.scale = num_classes, collapsed, nn.Parameter(torch.ones(()))

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        y = torch.zeros_like(y) if self.collapsed else y
        lit = nn.functional.one_hot(y, 784).float() * 2 - 1
        return (self.scale * lit).view(-1, 1, 28, 28)


def test_class_entropy_is_one_for_every_class_and_zero_for_one_class():
    assert close(normalised_entropy(torch.arange(10).repeat(3), 10), 1.0)
    assert close(normalised_entropy(torch.full((30,), 4), 10), 0.0)
    classes, judge = 10, OneHotJudge(10)
    model = GAN(ClassImage(classes, False), DCGANDiscriminator(1, 28, classes, width=4), BCELoss(), 8, classes)
    real = ClassImage(classes, False)(torch.zeros(20, 1), torch.arange(20) % classes).detach()
    probe = SampleProbe(model, real, judge, classes, None, model.loss, num=60)
    values = probe(model.G)
    assert close(values["health/class_entropy"], 1.0) and "health/diversity" in values
    collapsed = probe(ClassImage(classes, True))
    assert close(collapsed["health/class_entropy"], 0.0) and collapsed["health/diversity"] < 1e-6


class MeanD(nn.Module):
    """D scores an image by its mean pixel."""

    def __init__(self) -> None:
        super().__init__()
        self.out = nn.Linear(1, 1)
        with torch.no_grad():
            self.out.weight.fill_(1.0)
            self.out.bias.zero_()

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.out(x.mean((1, 2, 3)).unsqueeze(1)).squeeze(1)


@pytest.mark.parametrize("loss", [BCELoss(), WassersteinLoss(clip=0.01)], ids=["boundary", "midpoint"])
def test_d_acc_heldout_is_d_s_accuracy_on_images_it_never_trained_on(loss):
    real = torch.full((8, 1, 28, 28), 0.5)
    model = GAN(Fixed(torch.full((1, 28, 28), -0.5)), MeanD(), loss, z_dim=4)
    for heldout, accuracy in ((torch.full((5, 1, 28, 28), 0.3), 1.0), (torch.full((5, 1, 28, 28), -0.3), 0.0)):
        probe = SampleProbe(model, real, None, 0, heldout, loss, num=8)
        assert close(probe(model.G)["health/d_acc_heldout"], accuracy)
    assert "health/d_acc_heldout" not in SampleProbe(model, real, None, 0, None, loss, num=8)(model.G)


def test_translators_get_no_probe_signals():
    pix2pix = Pix2Pix(
        UNetGenerator(3, 3, 16, width=4), PatchDiscriminator(6, width=4, layers=1, image_size=16), BCELoss()
    )
    G = nn.ModuleDict({d: ResnetGenerator(3, 3, 16, width=4, blocks=1) for d in ("AB", "BA")})
    D = nn.ModuleDict({d: PatchDiscriminator(3, width=4, layers=1, image_size=16) for d in "AB"})
    cyclegan = CycleGAN(G, D, LSGANLoss(), (3, 16, 16))
    images = torch.rand(4, 3, 16, 16) * 2 - 1
    for model in (pix2pix, cyclegan):
        assert SampleProbe(model, images, None, 0, images, model.loss)(model.G) == {}


# -- end to end ------------------------------------------------------------------------


def test_a_training_run_logs_the_health_signals(tmp_path):
    run_dir = tmp_path / "run"
    train(run_dir, [*TINY, "trainer.steps=2"])
    scalars = set(events(run_dir).Tags()["scalars"])
    assert HEALTH <= scalars
    for tag in HEALTH:
        assert all(-1.0 <= event.value <= 1.0 for event in events(run_dir).Scalars(tag))
