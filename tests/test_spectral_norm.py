"""Spectral normalisation (Miyato et al., 2018) as a discriminator norm: every weight of
D ends up with largest singular value 1, the power-iteration vectors travel in the
state dict so resume stays bit-exact, ``experiment=sngan_mnist`` holds the paper's
numbers and trains from the command line, and bad norms name the config key."""

import pytest
import torch
from conftest import TINY, checkpoint, compose_config, gantrain, train
from fixtures import write_mnist
from torch import nn
from torch.nn.utils import parametrize

from gantrain.build import build_nets, check_config
from gantrain.errors import OptionError, UserError
from gantrain.nets.auxiliary import AuxiliaryClassifierDiscriminator
from gantrain.nets.dcgan import DCGANDiscriminator
from gantrain.nets.mlp import MLPDiscriminator
from gantrain.nets.patchgan import PatchDiscriminator

SMOKE = [*TINY, "data=synthetic", "data.size=40", "data.image_size=16"]
WEIGHTED = (nn.Conv2d, nn.Linear, nn.Embedding)

DISCRIMINATORS = {
    "acgan": lambda: AuxiliaryClassifierDiscriminator(1, 28, 10, width=8, norm="spectral"),
    "dcgan": lambda: DCGANDiscriminator(1, 28, width=8, norm="spectral"),
    "dcgan_projection": lambda: DCGANDiscriminator(1, 28, 10, width=8, norm="spectral", conditioning="projection"),
    "mlp_projection": lambda: MLPDiscriminator(1, 28, 10, hidden=16, norm="spectral", conditioning="projection"),
    "patchgan": lambda: PatchDiscriminator(6, width=8, norm="spectral"),
}


def _inputs(D: nn.Module, n: int = 4):
    if isinstance(D, PatchDiscriminator):
        return (torch.randn(n, 6, 64, 64),)
    y = torch.arange(n) % 10
    return (torch.randn(n, 1, 28, 28), y) if getattr(D, "num_classes", 0) else (torch.randn(n, 1, 28, 28),)


def _largest_singular_value(weight: torch.Tensor) -> float:
    """sigma(W) of the matrix the paper normalises: a conv's weight as (out, in * k * k)."""
    return torch.linalg.matrix_norm(weight.detach().flatten(1), ord=2).item()


@pytest.mark.parametrize("name", sorted(DISCRIMINATORS))
def test_every_weight_of_d_has_largest_singular_value_one(name):
    torch.manual_seed(0)
    D = DISCRIMINATORS[name]()
    weighted = [m for m in D.modules() if isinstance(m, WEIGHTED)]
    assert weighted and all(parametrize.is_parametrized(m, "weight") for m in weighted)
    assert not any(
        isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.InstanceNorm2d)) for m in D.modules()
    )
    with torch.no_grad():  # the weights as learnt, far from 1: W_SN does not depend on the scale of W
        for module in weighted:
            original = module.parametrizations.weight.original
            original.mul_(7.0 / _largest_singular_value(original))
    for _ in range(5):
        D(*_inputs(D))
    for module in weighted:
        assert _largest_singular_value(module.weight) == pytest.approx(1.0, abs=1e-2)


def test_one_power_iteration_per_forward_in_train_mode_none_in_eval():
    D = DCGANDiscriminator(1, 28, width=8, norm="spectral")
    u = D.net[0].parametrizations.weight[0]._u
    before = u.clone()
    D.eval()
    D(torch.randn(2, 1, 28, 28))
    assert torch.equal(u, before)
    D.train()
    D(torch.randn(2, 1, 28, 28))
    assert not torch.equal(u, before)
    assert D.net[0].parametrizations.weight[0].n_power_iterations == 1  # Ip=1, as the authors' code


def test_state_dict_round_trips_with_the_power_iteration_vectors():
    torch.manual_seed(0)
    D = DCGANDiscriminator(1, 28, 10, width=8, norm="spectral", conditioning="projection")
    x, y = torch.randn(4, 1, 28, 28), torch.arange(4)
    for _ in range(3):
        D(x, y)
    state = D.state_dict()
    assert any(key.endswith("_u") for key in state) and any(key.endswith("_v") for key in state)
    assert "projection.embed.parametrizations.weight.0._u" in state
    torch.manual_seed(1)  # another init: everything must come from the state dict
    E = DCGANDiscriminator(1, 28, 10, width=8, norm="spectral", conditioning="projection")
    E.load_state_dict(state)
    for key, value in E.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert torch.equal(D(x, y), E(x, y))  # one more power iteration each, from the same u
    for key, value in E.state_dict().items():
        assert torch.equal(value, D.state_dict()[key]), key


def test_spectral_norm_keeps_conv_biases_and_adds_no_layers():
    batch = DCGANDiscriminator(1, 28, width=8, norm="batch")
    spectral = DCGANDiscriminator(1, 28, width=8, norm="spectral")
    assert all(m.bias is not None for m in spectral.modules() if isinstance(m, nn.Conv2d))
    assert len([m for m in batch.net if not isinstance(m, nn.BatchNorm2d)]) == len(spectral.net)


@pytest.mark.parametrize(
    "cls,args",
    [
        (DCGANDiscriminator, (1, 28)),
        (MLPDiscriminator, (1, 28)),
        (PatchDiscriminator, (6,)),
        (AuxiliaryClassifierDiscriminator, (1, 28, 10)),
    ],
)
def test_each_discriminator_declares_its_norm_choices(cls, args):
    assert "spectral" in cls.norm_choices and "none" in cls.norm_choices
    for kind in cls.norm_choices:
        cls(*args, norm=kind)
    with pytest.raises(OptionError, match=r"^norm='bogus' is not known: use .*spectral") as error:
        cls(*args, norm="bogus")
    assert error.value.option == "norm"


# --- the experiment ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["sngan_mnist", "sngan_celeba"])
def test_the_experiment_holds_the_papers_numbers(name):
    cfg = compose_config([f"experiment={name}"])
    check_config(cfg)
    for side in ("g", "d"):  # Miyato et al. (2018), Table 1, setting C
        assert cfg.optim[side]._target_ == "torch.optim.Adam"
        assert cfg.optim[side].lr == 2e-4 and list(cfg.optim[side].betas) == [0.5, 0.999]
    assert cfg.trainer.d_steps == 1 and cfg.data.batch_size == 64 and cfg.model.z_dim == 128
    assert cfg.loss._target_.rsplit(".", 1)[1] == "HingeLoss"
    assert cfg.loss.gp_weight == 0.0 and cfg.loss.r1_weight == 0.0
    assert cfg.model.discriminator.norm == "spectral" and cfg.model.reuse_fakes is False
    assert cfg.model.discriminator._target_.endswith("DCGANDiscriminator")


def test_sngan_mnist_trains_from_the_command_line(tmp_path):
    write_mnist(tmp_path / "data")
    run_dir = tmp_path / "run"
    result = gantrain(
        "experiment=sngan_mnist",
        f"data.root={tmp_path / 'data'}",
        "data.download=false",
        *TINY,
        "trainer.steps=3",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    state = checkpoint(run_dir)
    assert state["step"] == 3
    assert "D.net.0.parametrizations.weight.0._u" in state["model"]
    assert not any(key.startswith("D.") and "running_mean" in key for key in state["model"])  # no BatchNorm


@pytest.mark.slow
def test_resume_with_spectral_norm_gives_the_same_weights_as_one_long_run(tmp_path):
    write_mnist(tmp_path / "data")
    base = [
        "experiment=sngan_mnist",
        f"data.root={tmp_path / 'data'}",
        "data.download=false",
        *TINY,
        "data.batch_size=8",
        "trainer.checkpoint_every=100",
    ]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(straight, [*base, "trainer.steps=8"])  # 8 steps of batch 8 over 40 images: across an epoch
    train(resumed, [*base, "trainer.steps=3"])
    assert checkpoint(resumed)["step"] == 3
    train(resumed, [*base, "trainer.steps=8", f"resume={resumed}"])
    a, b = checkpoint(straight), checkpoint(resumed)
    assert b["step"] == 8 and b["images_seen"] == a["images_seen"]
    vectors = [key for key in a["model"] if key.endswith(("_u", "_v"))]
    assert vectors
    for key, value in a["model"].items():  # weights, biases and the power-iteration vectors
        assert torch.equal(value, b["model"][key]), key
    for k, state in a["optim"]["d"]["state"].items():
        assert torch.equal(state["exp_avg"], b["optim"]["d"]["state"][k]["exp_avg"])


def test_a_gradient_penalty_with_spectral_norm_is_accepted(tmp_path):
    run_dir = tmp_path / "run"
    overrides = [*SMOKE, "loss=wgan_gp", "model.discriminator.norm=spectral", "trainer.steps=2"]
    assert train(run_dir, overrides) == "finished"
    assert checkpoint(run_dir)["step"] == 2


# --- errors name the config key -----------------------------------------------------


def test_a_bogus_norm_on_the_command_line_names_the_key_and_lists_spectral(tmp_path):
    result = gantrain(*SMOKE, "model.discriminator.norm=bogus", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert "model.discriminator.norm='bogus'" in lines[0] and "spectral" in lines[0]
    assert not (tmp_path / "outputs").exists()


SPEC = {"channels": 1, "image_size": 28, "num_classes": 10}


@pytest.mark.parametrize(
    "overrides,spec,fragment",
    [
        (
            ["model.discriminator.norm=bogus"],
            SPEC,
            "model.discriminator.norm='bogus' is not known: use batch, layer, instance, none, spectral",
        ),
        (
            ["model=gan", "model.discriminator.norm=batch"],
            SPEC,
            "model.discriminator.norm='batch' is not known: use none",
        ),
        (
            ["model.discriminator.conditioning=add", "model.conditional=true"],
            SPEC,
            "model.discriminator.conditioning='add'",
        ),
        (["model.discriminator.width=0"], SPEC, "model.discriminator.width=0 must be at least 1"),
        ([], {**SPEC, "image_size": 48}, "set data.image_size to one of"),
        (
            ["model=pix2pix", "model.discriminator.layers=0"],
            {**SPEC, "image_size": 64},
            "set model.discriminator.layers",
        ),
        (
            ["model=pix2pix", "model.generator.norm=spectral"],
            {**SPEC, "image_size": 64},
            "model.generator.norm='spectral' is not known: use batch, instance, none",
        ),
        (["model=cyclegan", "model.generator.blocks=-1"], {**SPEC, "image_size": 64}, "model.generator.blocks=-1"),
    ],
)
def test_net_errors_reach_the_user_with_their_key_path(overrides, spec, fragment):
    cfg = compose_config(overrides)
    with pytest.raises(UserError) as error:
        build_nets(cfg.model, spec)
    assert fragment in str(error.value), str(error.value)
