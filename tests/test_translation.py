"""pix2pix and CycleGAN through the real engine: short runs, exact resume, grids,
validation metrics, the learning-rate schedule, the image pool, and the errors for
data of the wrong kind."""

import pytest
import torch
from conftest import checkpoint, events, gantrain, on_device, train
from fixtures import write_paired, write_unpaired
from PIL import Image

from gantrain.models.cyclegan import ImagePool, exchange

NETS = [
    "model.generator.width=8",
    "model.discriminator.width=8",
    "device=cpu",
    "trainer.progress=false",
    "data.image_size=32",
    "data.load_size=36",
    "data.num_workers=0",
]


def pix2pix(tmp_path):
    write_paired(tmp_path / "data" / "facades", {"train": 6, "val": 3}, size=(80, 40))
    return ["model=pix2pix", "data=facades", f"data.root={tmp_path / 'data'}", *NETS]


def cyclegan(tmp_path):
    write_unpaired(tmp_path / "h2z", {"trainA": 5, "trainB": 4, "testA": 2, "testB": 2}, size=(40, 40))
    return [
        "model=cyclegan",
        "loss=lsgan",
        "data=unpaired_folder",
        f"data.path={tmp_path / 'h2z'}",
        "model.pool_size=3",
        *NETS,
    ]


@pytest.mark.parametrize("setup", [pix2pix, cyclegan], ids=["pix2pix", "cyclegan"])
@pytest.mark.slow
def test_resume_gives_the_same_weights_as_one_long_run(tmp_path, setup):
    base = [
        *setup(tmp_path),
        "trainer.log_every=1",
        "trainer.sample_every=100",
        "trainer.checkpoint_every=100",
        "trainer.num_samples=2",
        "trainer.lr_decay_start=6",
    ]  # after the cut: same schedule up to it
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(straight, [*base, "trainer.steps=8"])
    train(resumed, [*base, "trainer.steps=5"])
    train(resumed, [*base, "trainer.steps=8", f"resume={resumed}"])
    a, b = checkpoint(straight), checkpoint(resumed)
    assert a["step"] == b["step"] == 8
    for key, value in a["model"].items():  # every net, and CycleGAN's image pools
        assert torch.equal(value, b["model"][key]), key
    assert a["schedulers"] == b["schedulers"]
    lr = [event.value for event in events(straight).Scalars("lr/g")]
    # lr/g logged after step s is the rate of step s + 1: constant up to step 6, then
    # linear to 0 at step 8.
    assert lr[:6] == pytest.approx([2e-4] * 6) and lr[6:] == pytest.approx([1e-4, 0.0])


@pytest.mark.device
def test_pix2pix_logs_validation_metrics_and_input_output_target_rows(tmp_path, device):
    run_dir = tmp_path / "run"
    train(run_dir, on_device([*pix2pix(tmp_path), "trainer=smoke", *NETS, "trainer.num_samples=3"], device))
    scalars = set(events(run_dir).Tags()["scalars"])
    assert {"val/l1", "val/psnr", "val/ssim", "loss/l1", "loss/g_adv"} <= scalars
    psnr = events(run_dir).Scalars("val/psnr")[-1].value
    assert 0 < psnr < 60
    grid = Image.open(run_dir / "samples" / "samples_00000004.png")
    # 3 pairs, two triplets (input | output | target) per row: 6 columns, 2 rows of 32 px + padding.
    assert grid.size == (6 * 34 + 2, 2 * 34 + 2)


@pytest.mark.device
def test_cyclegan_grid_has_both_directions_and_reconstructions(tmp_path, device):
    run_dir = tmp_path / "run"
    train(run_dir, on_device([*cyclegan(tmp_path), "trainer=smoke", *NETS, "trainer.num_samples=2"], device))
    grid = Image.open(run_dir / "samples" / "samples_00000004.png")
    assert grid.size == (6 * 34 + 2, 2 * 34 + 2)  # real_A fake_B rec_A real_B fake_A rec_B, per test pair
    assert {"loss/cycle", "loss/identity", "d_A/real", "d_B/fake"} <= set(events(run_dir).Tags()["scalars"])
    state = checkpoint(run_dir)
    assert {"G.AB.net.1.weight", "G.BA.net.1.weight", "pools.A.images"} <= set(state["model"])


def test_image_pool_fills_then_mixes_old_and_new():
    torch.manual_seed(0)
    pool = ImagePool(4, (1, 2, 2))
    first = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 2, 2)
    assert torch.equal(pool.query(first), first) and int(pool.count) == 4
    new = (100 + torch.arange(64.0)).view(64, 1, 1, 1).expand(64, 1, 2, 2)
    out = pool.query(new)
    from_pool = (out[:, 0, 0, 0] != new[:, 0, 0, 0]).sum().item()
    assert 15 < from_pool < 49  # about half are earlier fakes
    assert set(out[:, 0, 0, 0].tolist()) <= set(range(4)) | set(range(100, 164))
    assert ImagePool(0, (1, 2, 2)).query(new) is new


def test_the_vectorised_exchange_is_the_one_at_a_time_loop_also_when_slots_repeat():
    def one_at_a_time(pool, images, swap, slots):
        pool, out = pool.clone(), []
        for image, s, k in zip(images, swap.tolist(), slots.tolist()):
            if s:
                out.append(pool[k].clone())
                pool[k] = image
            else:
                out.append(image)
        return torch.stack(out), pool

    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        pool = torch.randn(3, 1, 2, 2, generator=generator)
        images = torch.randn(8, 1, 2, 2, generator=generator)
        swap = torch.rand(8, generator=generator) < 0.5
        slots = torch.randint(3, (8,), generator=generator)  # 8 draws of 3 slots: repeats every time
        expected, actual = one_at_a_time(pool, images, swap, slots), exchange(pool, images, swap, slots)
        assert torch.equal(expected[0], actual[0]) and torch.equal(expected[1], actual[1])


def test_a_loaded_pool_knows_how_full_it_is():
    pool = ImagePool(4, (1, 2, 2))
    pool.query(torch.ones(3, 1, 2, 2))
    loaded = ImagePool(4, (1, 2, 2))
    loaded.load_state_dict(pool.state_dict())
    assert loaded.filled == 3
    out = loaded.query(torch.full((1, 1, 2, 2), 7.0))  # the fourth slot is still free: stored, not swapped
    assert torch.equal(out, torch.full((1, 1, 2, 2), 7.0)) and torch.equal(loaded.images[3], out[0])


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["model=pix2pix", "data=unpaired_folder", "data.path={u}"], "this model trains on paired A|B images"),
        (["model=cyclegan", "data=facades", "data.root={root}"], "this model trains on two unpaired domains"),
        (["model=dcgan", "data=facades", "data.root={root}"], "this model trains on single images"),
    ],
)
def test_data_of_the_wrong_kind_is_one_line(tmp_path, args, fragment):
    write_paired(tmp_path / "facades", {"train": 2}, size=(80, 40))
    write_unpaired(tmp_path / "u", {"trainA": 2, "trainB": 2}, size=(40, 40))
    args = [arg.format(u=tmp_path / "u", root=tmp_path) for arg in args]
    result = gantrain(*args, "trainer=smoke", "device=cpu", cwd=tmp_path)
    assert result.returncode == 2 and fragment in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "outputs").exists()
