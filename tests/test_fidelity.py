"""Where gantrain used to differ from the papers: pix2pix's G at test time, the EMA
copy's BatchNorm statistics, and the penalties on PatchGAN discriminators."""

import pytest
import torch
from conftest import TINY, checkpoint, gantrain, train
from test_translation import cyclegan, pix2pix
from torch import nn

from gantrain.engine.ema import EMA, recompute_batch_norm
from gantrain.losses.bce import BCELoss
from gantrain.models.gan import GAN
from gantrain.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from gantrain.nets.unet import UNetGenerator
from gantrain.test_time import translate


def unet() -> UNetGenerator:
    torch.manual_seed(0)
    G = UNetGenerator(3, 3, 16, width=4)
    with torch.no_grad():  # running statistics far from any batch's, so that the modes differ
        for m in G.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.fill_(3.0)
                m.running_var.fill_(9.0)
    return G


def test_the_papers_test_mode_uses_each_images_own_statistics_and_dropout_and_changes_nothing():
    G = unet().eval()
    images = torch.rand(3, 3, 16, 16) * 2 - 1
    buffers = {k: v.clone() for k, v in G.state_dict().items()}
    rng = torch.get_rng_state()

    out = translate(G, images, "train")
    assert torch.equal(torch.get_rng_state(), rng)  # dropout's masks from a forked RNG
    assert all(torch.equal(v, buffers[k]) for k, v in G.state_dict().items())  # no running statistic moved
    assert not G.training  # the mode it was in
    # One image at a time, as the authors' test script: an image's output does not
    # depend on the others in the batch (batch statistics of that image alone).
    torch.manual_seed(3)
    alone = translate(G, images[1:2], "train")
    torch.manual_seed(3)
    assert torch.equal(translate(G, images[1:2], "train"), alone)
    assert not torch.allclose(out, translate(G, images, "eval"), atol=1e-3)  # eval: running statistics


def test_the_tools_seed_the_dropout_masks_so_their_outputs_repeat():
    G = unet().eval()
    images = torch.rand(2, 3, 16, 16) * 2 - 1
    torch.manual_seed(1)
    first = translate(G, images, "train", seed=0)
    torch.manual_seed(2)  # whatever state the caller is in
    assert torch.equal(translate(G, images, "train", seed=0), first)
    assert not torch.equal(translate(G, images, "train", seed=1), first)  # dropout is on


def test_eval_mode_is_the_running_statistics_in_batches():
    G = unet().train()
    images = torch.rand(5, 3, 16, 16) * 2 - 1
    G.eval()
    with torch.no_grad():
        expected = G(images)
    G.train()
    assert torch.allclose(translate(G, images, "eval", batch_size=2), expected, atol=1e-6)
    assert G.training


@pytest.mark.slow
def test_pix2pix_samples_change_nothing_and_resume_stays_exact(tmp_path):
    """Sample grids and val/* metrics every 2 steps, in the paper's test mode: the weights
    equal those of a run that never sampled, and a resumed run equals a straight one."""
    base = [*pix2pix(tmp_path), "trainer.log_every=1", "trainer.checkpoint_every=100", "trainer.num_samples=2"]
    train(tmp_path / "quiet", [*base, "trainer.steps=6", "trainer.sample_every=100"])
    train(tmp_path / "straight", [*base, "trainer.steps=6", "trainer.sample_every=2"])
    train(tmp_path / "cut", [*base, "trainer.steps=3", "trainer.sample_every=2"])
    train(tmp_path / "cut", [*base, "trainer.steps=6", "trainer.sample_every=2", f"resume={tmp_path / 'cut'}"])
    quiet, straight, resumed = (checkpoint(tmp_path / name)["model"] for name in ("quiet", "straight", "cut"))
    for key, value in quiet.items():
        assert torch.equal(value, straight[key]) and torch.equal(value, resumed[key]), key


def test_the_test_mode_is_one_setting_and_a_bad_value_is_one_line(tmp_path):
    done = gantrain(*pix2pix(tmp_path), "trainer=smoke", "model.test_mode=inference", cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines == [
        "gantrain: error: model.test_mode='inference' is not one of train, eval: fix the value of model.test_mode"
    ], done.stderr


def test_the_instance_norm_generator_of_the_authors_code_trains(tmp_path):
    run = tmp_path / "run"
    train(run, [*pix2pix(tmp_path), "trainer=smoke", "model.generator.norm=instance"])
    state = checkpoint(run)["model"]
    assert not any("running_mean" in key for key in state if key.startswith("G."))  # no BatchNorm in G


# -- the EMA copy's BatchNorm statistics -------------------------------------------
def dcgan() -> GAN:
    torch.manual_seed(0)
    return GAN(DCGANGenerator(8, 1, 16, width=4), DCGANDiscriminator(1, 16, width=4), BCELoss(), 8)


def test_the_ema_copy_recomputes_its_own_batch_norm_statistics():
    model = dcgan()
    ema = EMA(model.G, 0.5, model.calibration_inputs)
    torch.manual_seed(1)
    for _ in range(5):  # G moves on, and its running statistics with it
        with torch.no_grad():
            for p in model.G.parameters():
                p.add_(0.05 * torch.randn_like(p))
        model.G(torch.randn(16, 8))
        ema.update(model.G)
    rng = torch.get_rng_state()
    averaged = ema.module
    assert torch.equal(torch.get_rng_state(), rng)  # its own noise, not the training RNG's
    reference = ema.shadow.__class__(8, 1, 16, width=4)
    reference.load_state_dict(averaged.state_dict())
    recompute_batch_norm(reference, model.calibration_inputs(torch.device("cpu")))
    G_stats = {k: v for k, v in model.G.state_dict().items() if "running" in k}
    for key, value in G_stats.items():
        assert torch.equal(averaged.state_dict()[key], reference.state_dict()[key]), key
        assert not torch.allclose(averaged.state_dict()[key], value), key  # not G's
    assert not averaged.training
    # The statistics are those of the averaged weights on their own outputs: each
    # normalised activation has mean about 0 and variance about 1 over fresh noise.
    first_norm = next(m for m in averaged.modules() if isinstance(m, nn.BatchNorm2d))
    seen = []
    handle = first_norm.register_forward_hook(
        lambda m, i, o: seen.append((o - m.bias.view(1, -1, 1, 1)) / m.weight.view(1, -1, 1, 1))
    )
    with torch.no_grad():
        averaged(torch.randn(512, 8))
    handle.remove()
    assert seen[0].mean((0, 2, 3)).abs().max() < 0.1
    assert (seen[0].var((0, 2, 3)) - 1).abs().max() < 0.15


@pytest.mark.slow
def test_an_ema_run_resumes_exactly_with_recomputed_statistics(tmp_path):
    base = [*TINY, "trainer.ema_decay=0.9", "trainer.sample_every=2", "trainer.checkpoint_every=100"]
    train(tmp_path / "straight", [*base, "trainer.steps=6"])
    train(tmp_path / "cut", [*base, "trainer.steps=3"])
    train(tmp_path / "cut", [*base, "trainer.steps=6", f"resume={tmp_path / 'cut'}"])
    a, b = checkpoint(tmp_path / "straight"), checkpoint(tmp_path / "cut")
    for key, value in a["ema"]["module"].items():
        assert torch.equal(value, b["ema"]["module"][key]), key
    stats = [k for k in a["ema"]["module"] if "running_mean" in k]
    assert stats and not any(torch.equal(a["ema"]["module"][k], a["model"][f"G.{k}"]) for k in stats)


# -- penalties on every discriminator ------------------------------------------------
@pytest.mark.parametrize(
    "setup,penalty",
    [
        (pix2pix, "loss.gp_weight=10"),
        (pix2pix, "loss.r1_weight=1"),
        (cyclegan, "loss.gp_weight=10"),
        (cyclegan, "loss.r1_weight=1"),
    ],
    ids=["pix2pix-gp", "pix2pix-r1", "cyclegan-gp", "cyclegan-r1"],
)
@pytest.mark.slow
def test_penalties_train_patchgan_discriminators(tmp_path, setup, penalty):
    from conftest import events

    run = tmp_path / "run"
    train(run, [*setup(tmp_path), "trainer=smoke", "trainer.log_every=1", "model.discriminator.norm=instance", penalty])
    name = "gp" if "gp" in penalty else "r1"
    tags = events(run).Tags()["scalars"]
    values = [e.value for tag in tags if tag.startswith(f"penalty/{name}") for e in events(run).Scalars(tag)]
    assert values and all(v == v and v >= 0 for v in values)


@pytest.mark.parametrize(
    "extra,norms", [([], "layer (or instance, none, spectral)"), (["model=pix2pix"], "instance (or none, spectral)")]
)
def test_r1_on_a_batch_norm_discriminator_is_refused_like_the_gradient_penalty(tmp_path, extra, norms):
    args = [*TINY, "loss.r1_weight=1", "trainer.steps=1"]
    if extra:
        args = [*pix2pix(tmp_path), "trainer=smoke", "loss.r1_weight=1"]
    done = gantrain(*args, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "gantrain: error: R1 (loss.r1_weight > 0) needs a discriminator without "
        f"BatchNorm: set model.discriminator.norm={norms}"
    )


@pytest.mark.slow
def test_gantrain_eval_translates_in_the_runs_test_mode(tmp_path, offline):
    """The evaluation's G(A) is the paper's test-time G (one image at a time, batch
    statistics), as the grids' are; ``model.test_mode=eval`` switches every use at once.
    (No dropout here, so that the two computations draw nothing at random.)"""
    from omegaconf import OmegaConf

    from gantrain.build import build_source
    from gantrain.eval_cli import parse, run_eval
    from gantrain.metrics.evaluate import protocol_lines
    from gantrain.trained import load_generator

    for mode in ("train", "eval"):
        run = tmp_path / mode
        train(run, [*pix2pix(tmp_path), "trainer=smoke", f"model.test_mode={mode}", "model.generator.dropout=0"])
        report = run_eval(parse([str(run), "--device", "cpu"]))
        said = f"test_mode={mode}" + (", dropout seed 0" if mode == "train" else "")
        assert report["protocol"]["generator"] == said
        assert f"generator: {said}" in protocol_lines(report["protocol"])
        G, export = load_generator(run)
        fixed = build_source(OmegaConf.create(export["config"])).fixed_batch(report["protocol"]["num_samples"])
        fake = translate(G, fixed["A"], mode)
        l1 = ((fake - fixed["B"]).abs().mean() / 2).item()  # the report's L1 is on images in [0, 1]
        assert report["metrics"]["l1"] == pytest.approx(l1, rel=1e-4)
        other = translate(G, fixed["A"], "eval" if mode == "train" else "train")
        assert report["metrics"]["l1"] != pytest.approx(((other - fixed["B"]).abs().mean() / 2).item(), rel=1e-4)
