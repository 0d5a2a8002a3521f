"""augment=diffaugment and augment=ada through the models and the engine: D sees augmented
images in every call (its step, G's step, the penalties), labels and stacked pairs go
through untouched, ADA's p moves with D's overconfidence, is logged and resumes exactly,
and what cannot apply is refused in one line. (The ops themselves: test_augment_ops.py.)"""

import pytest
import torch
from conftest import TINY, checkpoint, compose_config, events, gantrain, train
from fixtures import write_paired, write_unpaired

from gantrain.augment.ada import ADA
from gantrain.augment.base import Augmentation
from gantrain.build import build_augment, build_model, instantiate
from gantrain.data.spec import DataSpec
from gantrain.models.common import discriminator_loss


class Spy(Augmentation):
    """Records the inputs it augments, and shifts them (so D's input is visibly changed)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Size] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.shape)
        return x + 1.0


def _model(overrides: list[str], spec: DataSpec, augment: Augmentation):
    cfg = compose_config([*TINY, *overrides])
    return build_model(cfg.model, spec, instantiate(cfg.loss), augment)


MNIST = DataSpec(channels=1, image_size=28, num_classes=10, name="mnist")


@pytest.mark.parametrize(
    "loss, d_calls",
    [(["loss=bce"], 2), (["loss=wgan_gp", "model.discriminator.norm=layer"], 3), (["loss.r1_weight=10"], 2)],
    ids=["plain", "gradient-penalty", "r1"],
)
def test_every_call_of_D_sees_augmented_images_the_penalties_too(loss, d_calls):
    spy = Spy()
    model = _model(["model.discriminator.norm=layer", *loss], MNIST, spy)
    batch = {"image": torch.rand(4, 1, 28, 28) * 2 - 1}
    d, logs = model.d_loss(batch)
    assert len(spy.seen) == d_calls  # real, fake (and the gradient penalty's interpolates)
    d.backward()
    model.g_loss(batch)[0].backward()
    assert len(spy.seen) == d_calls + 1  # G's step: D o augment on the fakes
    assert all(shape == (4, 1, 28, 28) for shape in spy.seen)
    if "loss.r1_weight=10" in loss:
        # R1 differentiates D(augment(x)) with respect to the un-augmented x (as ADA's authors do).
        assert logs["penalty/r1"] > 0


def test_labels_reach_a_conditional_D_unchanged():
    spy = Spy()
    model = _model(["model=cgan"], MNIST, spy)
    labels_seen = []
    model.D.register_forward_pre_hook(lambda module, args: labels_seen.append(args[1].clone()))
    y = torch.arange(4)
    batch = {"image": torch.rand(4, 1, 28, 28) * 2 - 1, "label": y}
    model.d_loss(batch)
    model.g_loss(batch)
    assert len(labels_seen) == 3 and all(torch.equal(seen, y) for seen in labels_seen)


def test_pix2pix_augments_the_pair_stacked_so_it_stays_a_pair():
    spy = Spy()
    spec = DataSpec(channels=3, image_size=32, name="facades", pairing="paired")
    model = _model(["model=pix2pix"], spec, spy)
    batch = {"A": torch.rand(2, 3, 32, 32), "B": torch.rand(2, 3, 32, 32)}
    model.d_loss(batch)
    model.g_loss(batch)
    assert spy.seen == [torch.Size([2, 6, 32, 32])] * 3  # (A, B), (A, G(A)), and G's step


def test_a_D_made_overconfident_raises_p_and_an_unsure_one_lowers_it():
    ada = ADA(channels=1, interval=2, kimg=1.0, initial_p=0.5)
    sure = lambda x: torch.full((len(x), 1), 5.0)  # noqa: E731  (scores every image as real)
    unsure = lambda x: torch.full((len(x), 1), -5.0)  # noqa: E731
    loss = instantiate(compose_config([]).loss)
    images = torch.rand(8, 1, 28, 28)
    for _ in range(2):
        _, logs = discriminator_loss(loss, sure, images, images, augment=ada)
    assert ada.p.item() == pytest.approx(0.5 + 16 / 1000) and logs["augment/rt"].item() == 1.0
    for _ in range(4):
        discriminator_loss(loss, unsure, images, images, augment=ada)
    assert ada.p.item() == pytest.approx(0.5 + 16 / 1000 - 32 / 1000) and ada.rt.item() == -1.0


def test_r_t_is_read_against_the_least_squares_boundary():
    ada = ADA(channels=1, interval=1, kimg=1.0)
    loss = instantiate(compose_config(["loss=lsgan"]).loss)
    images = torch.rand(10, 1, 8, 8)
    # LSGAN codes real as 1 and fake as 0: scores of 0.4 say "fake", though positive.
    discriminator_loss(loss, lambda x: torch.full((len(x), 1), 0.4), images, images, augment=ada)
    assert ada.rt.item() == -1.0 and ada.p.item() == 0.0


def test_p_is_bounded_below_by_zero_only_as_in_the_authors_code():
    ada = ADA(channels=1, interval=1, kimg=0.001)
    ada.observe(-torch.ones(64))
    assert ada.p.item() == 0.0
    ada.observe(torch.ones(64))
    assert ada.p.item() == pytest.approx(64.0)  # past 1: every op applies, and p takes as long to come back


def test_the_pipeline_is_float32_under_bf16_autocast():
    ada = ADA(channels=3)
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.allclose(ada(x), x, atol=1e-5)  # p = 0: the identity, not a bf16 resampling


def _translation(tmp_path, kind: str) -> list[str]:
    nets = ["model.generator.width=8", "model.discriminator.width=8", "data.image_size=32", "data.load_size=32"]
    if kind == "pix2pix":
        write_paired(tmp_path / "data" / "facades", {"train": 8, "val": 2}, size=(64, 32))
        return ["model=pix2pix", "data=facades", f"data.root={tmp_path / 'data'}", *nets, "data.num_workers=0"]
    write_unpaired(tmp_path / "u", {"trainA": 8, "trainB": 8, "testA": 2, "testB": 2}, size=(32, 32))
    return ["model=cyclegan", "loss=lsgan", "data=unpaired_folder", f"data.path={tmp_path / 'u'}", *nets]


@pytest.mark.parametrize("augment", ["diffaugment", "ada"])
@pytest.mark.parametrize("kind", ["dcgan", "cgan", "acgan", "pix2pix", "cyclegan"])
@pytest.mark.slow
def test_every_model_trains_with_each_augmentation(tmp_path, kind, augment):
    setup = _translation(tmp_path, kind) if kind in ("pix2pix", "cyclegan") else [f"model={kind}"]
    run_dir = tmp_path / "run"
    ada = ["augment.interval=1", "augment.kimg=0.1", "augment.initial_p=0.5"] if augment == "ada" else []
    assert train(run_dir, [*TINY, *setup, f"augment={augment}", *ada, "trainer.log_every=1"]) == "finished"
    tags = events(run_dir).Tags()["scalars"]
    if augment == "ada":
        p = [event.value for event in events(run_dir).Scalars("augment/p")]
        assert "augment/rt" in tags and len(p) == 4 and p != [0.5] * 4  # p moved, one way or the other
        assert checkpoint(run_dir)["model"]["augment.p"].item() == pytest.approx(p[-1])
    else:
        assert not any(tag.startswith("augment/") for tag in tags)


@pytest.mark.slow
def test_ada_resumes_with_the_exact_p(tmp_path):
    base = [*TINY, "augment=ada", "augment.interval=1", "augment.kimg=0.05", "trainer.checkpoint_every=100"]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(straight, [*base, "trainer.steps=7"])
    train(resumed, [*base, "trainer.steps=3"])
    train(resumed, [*base, "trainer.steps=7", f"resume={resumed}"])
    a, b = checkpoint(straight)["model"], checkpoint(resumed)["model"]
    assert 0 < a["augment.p"].item() < 1  # p moved, and is not pinned at a bound
    for key, value in a.items():  # p, r_t and the running sums, and every weight
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, b[key]), key
    assert a["augment._extra_state"] == b["augment._extra_state"]


def test_build_makes_the_configured_augmentation_for_the_data_channels():
    assert build_augment(compose_config([]), MNIST) is None
    ada = build_augment(compose_config(["augment=ada"]), MNIST)
    assert isinstance(ada, ADA) and ada.p.item() == 0 and ada.target == 0.6 and ada.interval == 4 and ada.kimg == 500


@pytest.mark.slow
def test_colour_ops_on_images_of_other_channel_counts_name_the_keys_to_change(tmp_path):
    data = ["data=synthetic", "data.channels=2", "data.image_size=16", "hydra.run.dir=run"]
    done = gantrain(*TINY, *data, "augment=ada", cwd=tmp_path)
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    assert "data.channels=2" in done.stderr and "augment.pipeline.brightness" in done.stderr, done.stderr
    assert not (tmp_path / "run").exists()
    off = [f"augment.pipeline.{op}=0" for op in ("brightness", "contrast", "lumaflip", "hue", "saturation")]
    assert gantrain(*TINY, *data, "augment=ada", *off, cwd=tmp_path).returncode == 0


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["augment=ada", "loss=wgan_gp", "model.discriminator.norm=layer"],
            "augment=ada adjusts its probability from the sign of D's scores",
        ),
        (["augment=diffaugment", "augment.policy=[color,blur]"], "augment.policy"),
        (["augment=ada", "augment.target=1.5"], "augment.target=1.5 must lie in (0, 1)"),
        (["augment=ada", "augment.pipeline.xflip=-1"], "augment.pipeline.xflip"),
        (["augment=ada", "+augment.speed=2"], "unknown option augment.speed"),
        (["augment=diffaugment", "+augment.channels=3"], "augment.channels is set by gantrain"),
        (["augment=diffaugment", "augment._target_=torch.nn.Identity"], "is not an augmentation of gantrain.augment"),
    ],
)
def test_what_cannot_apply_is_one_line_and_leaves_no_run(tmp_path, overrides, message):
    done = gantrain(*TINY, *overrides, "hydra.run.dir=run", cwd=tmp_path)
    assert done.returncode != 0
    assert message in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "run").exists()
