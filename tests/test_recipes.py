"""Every recipe equals its paper: G's and D's objectives for fixed tiny nets and inputs,
computed here from each paper's equation written out with torch.nn.functional's own
losses (never gantrain's), must equal what the models compute; and every named
experiment's hyperparameters are the paper's (README's table gives the sources).

The models draw their noise, interpolation weights and dropout masks from torch's
global RNG; each reference replays the same seed and draws in the same order."""

import pytest
import torch
import torch.nn.functional as F
from conftest import compose_config

from gantrain.losses.bce import BCELoss
from gantrain.losses.lsgan import LSGANLoss
from gantrain.losses.wasserstein import WassersteinLoss
from gantrain.models.cyclegan import CycleGAN
from gantrain.models.gan import GAN
from gantrain.models.pix2pix import Pix2Pix
from gantrain.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from gantrain.nets.mlp import MLPDiscriminator, MLPGenerator
from gantrain.nets.patchgan import PatchDiscriminator
from gantrain.nets.resnet import ResnetGenerator
from gantrain.nets.unet import UNetGenerator

SEED, N, Z = 7, 6, 8


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.allclose(a, b, rtol=1e-5, atol=1e-6)


def ones_like(t):
    return torch.ones_like(t)


def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    """The paper's log-loss, as PyTorch's own BCE on logits."""
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def mse(scores: torch.Tensor, target: float) -> torch.Tensor:
    return F.mse_loss(scores, torch.full_like(scores, target))


def noise_gan(kind: str, loss, num_classes: int = 0, reuse_fakes: bool = True, norm: str = "batch") -> GAN:
    torch.manual_seed(0)
    if kind == "gan":
        G = MLPGenerator(Z, 1, 8, num_classes, hidden=16, blocks=2)
        D = MLPDiscriminator(1, 8, num_classes, hidden=16, blocks=2)
    else:
        G = DCGANGenerator(Z, 1, 16, num_classes, width=4)
        D = DCGANDiscriminator(1, 16, num_classes, width=4, norm=norm)
    return GAN(G, D, loss, Z, num_classes, reuse_fakes=reuse_fakes)


def real_batch(size: int, num_classes: int = 0) -> dict:
    torch.manual_seed(1)
    batch = {"image": torch.rand(N, 1, size, size) * 2 - 1}
    if num_classes:
        batch["label"] = torch.randint(num_classes, (N,))
    return batch


@pytest.mark.parametrize("kind,size,num_classes", [("gan", 8, 0), ("dcgan", 16, 0), ("cgan", 16, 3)])
def test_the_gan_objectives_are_goodfellow_et_al_with_the_non_saturating_g(kind, size, num_classes):
    """Goodfellow et al. (2014), eq. 1 and section 3: D maximises
    E[log D(x)] + E[log(1 - D(G(z)))]; G maximises E[log D(G(z))], on a fresh noise
    minibatch (Algorithm 1; gan_mnist). DCGAN's reference code (pytorch/examples) lets
    G's step reuse the fakes of D's step. cGAN (Mirza & Osindero, 2014): the same
    objective with y given to both players."""
    fresh = kind == "gan"
    model = noise_gan("gan" if kind == "gan" else "dcgan", BCELoss(), num_classes, reuse_fakes=not fresh)
    batch = real_batch(size, num_classes)
    y = batch.get("label")
    torch.manual_seed(SEED)
    d_loss, d_logs = model.d_loss(batch)
    g_loss, _ = model.g_loss(batch)

    torch.manual_seed(SEED)
    fake = model.G(torch.randn(N, Z), y)
    d_real, d_fake = torch.sigmoid(model.D(batch["image"], y)), torch.sigmoid(model.D(fake, y))
    expected_d = -(torch.log(d_real).mean() + torch.log(1 - d_fake).mean())
    assert close(d_loss, expected_d)
    g_fake = torch.sigmoid(model.D(model.G(torch.randn(N, Z), y), y)) if fresh else d_fake
    assert close(g_loss, -torch.log(g_fake).mean())
    assert close(d_logs["d/real"], d_real.mean()) and close(d_logs["d/fake"], d_fake.mean())


def test_the_minimax_g_is_log_1_minus_d():
    model = noise_gan("dcgan", BCELoss(variant="minimax"))
    batch = real_batch(16)
    torch.manual_seed(SEED)
    model.d_loss(batch)
    g_loss, _ = model.g_loss(batch)
    torch.manual_seed(SEED)
    fake = model.G(torch.randn(N, Z))
    assert close(g_loss, torch.log(1 - torch.sigmoid(model.D(fake))).mean())


def test_wgan_is_arjovsky_et_al_algorithm_1():
    """Arjovsky et al. (2017), Algorithm 1: the critic maximises mean f(x) - mean f(G(z))
    and its weights are clipped to [-c, c] after every update (c = 0.01); G minimises
    -mean f(G(z)) on fresh noise."""
    model = noise_gan("dcgan", WassersteinLoss(clip=0.01), reuse_fakes=False, norm="none")
    batch = real_batch(16)
    torch.manual_seed(SEED)
    d_loss, _ = model.d_loss(batch)
    g_loss, _ = model.g_loss(batch)

    torch.manual_seed(SEED)
    fake_d = model.G(torch.randn(N, Z))
    fake_g = model.G(torch.randn(N, Z))  # drawn anew for G's update
    assert close(d_loss, model.D(fake_d).mean() - model.D(batch["image"]).mean())
    assert close(g_loss, -model.D(fake_g).mean())
    assert not close(g_loss, -model.D(fake_d).mean())  # the critic's fakes were not reused

    with torch.no_grad():
        for p in model.D.parameters():
            p.mul_(100)
    model.after_d_step()
    assert all(p.abs().max() <= 0.01 for p in model.D.parameters())


def test_wgan_gp_is_gulrajani_et_al_algorithm_1():
    """Gulrajani et al. (2017), Algorithm 1: x_hat = e x + (1 - e) G(z), e ~ U[0, 1] per
    sample; L = D(G(z)) - D(x) + lambda (||grad D(x_hat)||_2 - 1)^2, lambda = 10;
    G minimises -D(G(z)) on fresh noise."""
    model = noise_gan("dcgan", WassersteinLoss(gp_weight=10.0), reuse_fakes=False, norm="layer")
    batch = real_batch(16)
    real = batch["image"]
    torch.manual_seed(SEED)
    d_loss, logs = model.d_loss(batch)
    g_loss, _ = model.g_loss(batch)

    torch.manual_seed(SEED)
    fake = model.G(torch.randn(N, Z)).detach()
    e = torch.rand(N, 1, 1, 1)
    x_hat = (e * real + (1 - e) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(model.D(x_hat).sum(), x_hat)
    gp = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
    expected = model.D(fake).mean() - model.D(real).mean() + 10 * gp
    assert close(logs["penalty/gp"], gp) and close(d_loss, expected)
    assert close(g_loss, -model.D(model.G(torch.randn(N, Z))).mean())


def paired_batch() -> dict:
    torch.manual_seed(1)
    return {"A": torch.rand(2, 3, 16, 16) * 2 - 1, "B": torch.rand(2, 3, 16, 16) * 2 - 1}


@pytest.mark.parametrize("loss,adversarial", [(BCELoss(), bce), (LSGANLoss(), mse)], ids=["bce", "lsgan"])
def test_pix2pix_is_isola_et_al_eq_4(loss, adversarial):
    """Isola et al. (2017), eq. 4: G* = arg min_G max_D L_cGAN(G, D) + lambda L_L1(G),
    lambda = 100; the authors' code halves D's loss, (real + fake) / 2, and writes the
    adversarial term as BCE(D(A, G(A)), 1) (or the MSE with --gan_mode lsgan)."""
    torch.manual_seed(0)
    G = UNetGenerator(3, 3, 16, width=4)
    D = PatchDiscriminator(6, width=4, layers=1, image_size=16)
    model = Pix2Pix(G, D, loss)
    batch = paired_batch()
    A, B = batch["A"], batch["B"]
    torch.manual_seed(SEED)
    d_loss, _ = model.d_loss(batch)
    g_loss, logs = model.g_loss(batch)

    torch.manual_seed(SEED)
    fake = G(A)  # dropout draws the same masks
    expected_d = 0.5 * (adversarial(D(torch.cat([A, B], 1)), 1.0) + adversarial(D(torch.cat([A, fake], 1)), 0.0))
    expected_g = adversarial(D(torch.cat([A, fake], 1)), 1.0) + 100 * F.l1_loss(fake, B)
    assert close(d_loss, expected_d)
    assert close(g_loss, expected_g) and close(logs["loss/l1"], F.l1_loss(fake, B))


def test_cyclegan_is_zhu_et_al_with_the_authors_weights():
    """Zhu et al. (2017), eq. 3 with the least-squares GAN loss (section 4): G minimises
    MSE(D_B(G(a)), 1) + MSE(D_A(F(b)), 1) + 10 * (|F(G(a)) - a| + |G(F(b)) - b|)
    + 5 * (|G(b) - b| + |F(a) - a|) (identity 0.5 of lambda = 10); each D minimises
    (MSE(D(real), 1) + MSE(D(fake), 0)) / 2 on fakes through the history pool."""
    torch.manual_seed(0)
    G = torch.nn.ModuleDict({d: ResnetGenerator(3, 3, 16, width=4, blocks=1) for d in ("AB", "BA")})
    D = torch.nn.ModuleDict({d: PatchDiscriminator(3, width=4, layers=1, norm="instance", image_size=16) for d in "AB"})
    model = CycleGAN(G, D, LSGANLoss(), (3, 16, 16))
    batch = paired_batch()
    a, b = batch["A"], batch["B"]
    torch.manual_seed(SEED)
    d_loss, _ = model.d_loss(batch)
    g_loss, logs = model.g_loss(batch)

    fake_b, fake_a = G["AB"](a), G["BA"](b)  # no randomness in the ResNet generators
    # The pool is filling (50 slots), so it hands back the current fakes.
    expected_d = 0.5 * (mse(D["B"](b), 1.0) + mse(D["B"](fake_b), 0.0)) + 0.5 * (
        mse(D["A"](a), 1.0) + mse(D["A"](fake_a), 0.0)
    )
    cycle = F.l1_loss(G["BA"](fake_b), a) + F.l1_loss(G["AB"](fake_a), b)
    identity = F.l1_loss(G["AB"](b), b) + F.l1_loss(G["BA"](a), a)
    expected_g = mse(D["B"](fake_b), 1.0) + mse(D["A"](fake_a), 1.0) + 10 * cycle + 5 * identity
    assert close(d_loss, expected_d)
    assert close(g_loss, expected_g)
    assert close(logs["loss/cycle"], cycle) and close(logs["loss/identity"], identity)


# -- the named experiments' hyperparameters --------------------------------------
# Each value is the paper's (README's "Faithful to the papers" table says where it stands).
ADAM_DCGAN = {"_target_": "torch.optim.Adam", "lr": 2e-4, "betas": [0.5, 0.999]}
PAPERS = {
    # Radford et al. (2016), section 4: Adam lr 0.0002, beta1 0.5, batch 128, z of 100 dims.
    "dcgan_mnist": {"optim": ADAM_DCGAN, "loss": ("BCELoss", {}), "batch_size": 128, "d_steps": 1},
    "dcgan_celeba": {
        "optim": ADAM_DCGAN,
        "loss": ("BCELoss", {}),
        "batch_size": 128,
        "d_steps": 1,
        "z_dim": 100,
        "image_size": 64,
    },
    # Conditional DCGAN: DCGAN's settings with labels (Mirza & Osindero, 2014, for the conditioning).
    "cgan_mnist": {"optim": ADAM_DCGAN, "loss": ("BCELoss", {}), "batch_size": 128, "d_steps": 1},
    "cgan_fashion_mnist": {"optim": ADAM_DCGAN, "loss": ("BCELoss", {}), "batch_size": 128, "d_steps": 1},
    "cgan_celeba": {"optim": ADAM_DCGAN, "loss": ("BCELoss", {}), "batch_size": 128, "d_steps": 1, "z_dim": 100},
    # Odena et al. (2017), appendix A: Adam lr 0.0002, betas (0.5, 0.999), batch 100; the source
    # and class log-likelihoods summed with weight 1.
    "acgan_mnist": {
        "optim": ADAM_DCGAN,
        "loss": ("BCELoss", {}),
        "batch_size": 100,
        "d_steps": 1,
        "model": {"class_weight": 1.0},
    },
    # Miyato et al. (2018): hinge loss, spectrally normalised D, Table 1 setting C (Adam 2e-4, (0.5, 0.999),
    # n_dis 1) as the authors' chainer-gan-lib runs its SN standard CNN; batch 64, z of 128 dims, fresh noise for G.
    "sngan_mnist": {
        "optim": ADAM_DCGAN,
        "loss": ("HingeLoss", {}),
        "batch_size": 64,
        "d_steps": 1,
        "z_dim": 128,
        "reuse_fakes": False,
        "d_norm": "spectral",
    },
    "sngan_celeba": {
        "optim": ADAM_DCGAN,
        "loss": ("HingeLoss", {}),
        "batch_size": 64,
        "d_steps": 1,
        "z_dim": 128,
        "reuse_fakes": False,
        "d_norm": "spectral",
        "image_size": 64,
    },
    # Goodfellow et al. (2014), Algorithm 1: BCE, one D step (k = 1), fresh noise for G;
    # SEEDS.md's Adam, and batch 64 (the authors' code: 100; README lists both differences).
    "gan_mnist": {"optim": ADAM_DCGAN, "loss": ("BCELoss", {}), "batch_size": 64, "d_steps": 1, "reuse_fakes": False},
    # Arjovsky et al. (2017), Algorithm 1: alpha = 5e-5 (RMSProp), c = 0.01, m = 64, n_critic = 5.
    "wgan_mnist": {
        "optim": {"_target_": "torch.optim.RMSprop", "lr": 5e-5},
        "loss": ("WassersteinLoss", {"clip": 0.01, "gp_weight": 0.0}),
        "batch_size": 64,
        "d_steps": 5,
        "reuse_fakes": False,
    },
    # Gulrajani et al. (2017), Algorithm 1: lambda = 10, n_critic = 5, Adam alpha = 1e-4,
    # beta1 = 0, beta2 = 0.9; m = 64 as the authors' gan_64x64.py; no BatchNorm in the
    # critic (layer norm, section 4).
    "wgan_gp_mnist": {
        "optim": {"_target_": "torch.optim.Adam", "lr": 1e-4, "betas": [0.0, 0.9]},
        "loss": ("WassersteinLoss", {"clip": None, "gp_weight": 10.0}),
        "batch_size": 64,
        "d_steps": 5,
        "reuse_fakes": False,
        "d_norm": "layer",
    },
    "wgan_gp_celeba": {
        "optim": {"_target_": "torch.optim.Adam", "lr": 1e-4, "betas": [0.0, 0.9]},
        "loss": ("WassersteinLoss", {"clip": None, "gp_weight": 10.0}),
        "batch_size": 64,
        "d_steps": 5,
        "reuse_fakes": False,
        "d_norm": "layer",
        "image_size": 64,
    },
    # Isola et al. (2017), section 3.3 and appendix 6.2: Adam lr 0.0002, beta1 0.5, batch 1,
    # lambda = 100, 200 epochs of the 400 facades; the authors' PyTorch code (train_options:
    # n_epochs 100, n_epochs_decay 100) keeps the rate for 100 and decays it linearly to 0.
    "pix2pix_facades": {
        "optim": ADAM_DCGAN,
        "loss": ("BCELoss", {}),
        "batch_size": 1,
        "d_steps": 1,
        "model": {"l1_weight": 100.0, "test_mode": "train"},
        "steps": 200 * 400,
        "lr_decay_start": 100 * 400,
        "g_norm": "batch",
        "d_layers": 3,
    },
    # Zhu et al. (2017), section 4 and 7: LSGAN, lambda = 10, pool of 50, Adam lr 0.0002,
    # batch 1, 200 epochs (100 + 100 decaying) of the larger domain (1,334); identity 0.5 * lambda
    # and beta1 0.5 are the authors' code defaults (the paper uses identity for paintings only).
    "cyclegan_horse2zebra": {
        "optim": ADAM_DCGAN,
        "loss": ("LSGANLoss", {}),
        "batch_size": 1,
        "d_steps": 1,
        "model": {"cycle_weight": 10.0, "identity_weight": 0.5, "pool_size": 50, "test_mode": "train"},
        "steps": 200 * 1334,
        "lr_decay_start": 100 * 1334,
        "g_norm": "instance",
        "d_layers": 3,
    },
}


def test_every_experiment_is_pinned():
    from pathlib import Path

    from gantrain.config import CONF_DIR

    assert sorted(p.stem for p in (Path(CONF_DIR) / "experiment").glob("*.yaml")) == sorted(PAPERS)


@pytest.mark.parametrize("name", sorted(PAPERS))
def test_each_experiment_has_its_papers_hyperparameters(name):
    paper = PAPERS[name]
    cfg = compose_config([f"experiment={name}"])
    for side in ("g", "d"):
        node = cfg.optim[side]
        for key, value in paper["optim"].items():
            got = list(node[key]) if key == "betas" else node[key]
            assert got == value, (side, key)
        if "betas" not in paper["optim"] and "betas" in node:
            pytest.fail(f"optim.{side} sets betas the paper does not")
    loss_class, loss_values = paper["loss"]
    assert cfg.loss._target_.rsplit(".", 1)[1] == loss_class
    for key, value in loss_values.items():
        assert cfg.loss[key] == value, key
    assert cfg.loss.get("gp_weight", 0.0) == loss_values.get("gp_weight", 0.0)
    assert cfg.loss.get("r1_weight", 0.0) == 0.0
    assert cfg.data.batch_size == paper["batch_size"] and cfg.trainer.d_steps == paper["d_steps"]
    for key, value in paper.get("model", {}).items():
        assert cfg.model[key] == value, key
    if "z_dim" in paper:
        assert cfg.model.z_dim == paper["z_dim"]
    if "image_size" in paper:
        assert cfg.data.image_size == paper["image_size"]
    if "reuse_fakes" in paper:
        assert cfg.model.reuse_fakes == paper["reuse_fakes"]
    if "d_norm" in paper:
        assert cfg.model.discriminator.norm == paper["d_norm"]
    if "steps" in paper:
        assert cfg.trainer.steps == paper["steps"] and cfg.trainer.lr_decay_start == paper["lr_decay_start"]
        assert cfg.model.generator.norm == paper["g_norm"] and cfg.model.discriminator.layers == paper["d_layers"]
