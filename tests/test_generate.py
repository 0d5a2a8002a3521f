"""gantrain-generate, gantrain-walk and gantrain-arithmetic on tiny trained runs: seeds
reproduce images, classes and weights are the ones asked for, walks start and end at
their inputs, arithmetic combines the group means, and mistakes are one line."""

import pytest
import torch
from conftest import events, train_pix2pix
from PIL import Image, ImageSequence
from torchvision.transforms.functional import pil_to_tensor

from gantrain.tools import arithmetic, generate, walk
from gantrain.tools.inputs import seeded_z
from gantrain.tools.latent import interpolate, lerp, slerp
from gantrain.tools.run import open_run


def _png(path):
    return pil_to_tensor(Image.open(path))


def test_a_seed_gives_the_same_image_alone_or_in_a_batch(dcgan_run):
    # Closed as the command closes them: the TensorBoard writer flushes its events then.
    generate.run_generate(generate.parse([str(dcgan_run), "--num", "6", "--name", "six"])).close()
    generate.run_generate(generate.parse([str(dcgan_run), "--seeds", "4", "--name", "four"])).close()
    six, four = dcgan_run / "generate" / "six", dcgan_run / "generate" / "four"
    assert sorted(p.name for p in six.glob("seed*.png")) == [f"seed{k:06d}.png" for k in range(6)]
    assert torch.equal(_png(six / "seed000004.png"), _png(four / "seed000004.png"))
    assert not torch.equal(_png(six / "seed000004.png"), _png(six / "seed000005.png"))
    assert (six / "grid.png").is_file() and (six / "images.csv").read_text().count("\n") == 7
    tags = events(dcgan_run).Tags()["images"]
    assert "generate/six/grid" in tags


def test_conditional_generation_draws_the_asked_class_with_ema_or_raw_weights(cgan_run):
    run = open_run(cgan_run)
    assert run.weights == "ema" and open_run(cgan_run, weights="raw").weights == "raw"
    images, labels = generate.generate_images(run, [0, 1, 2], label=7)
    assert labels.tolist() == [7, 7, 7]
    z = seeded_z([0, 1, 2], run.z_dim)
    expected = run.G(z, torch.full((3,), 7))
    assert torch.allclose(images, expected, atol=1e-6)
    raw, _ = generate.generate_images(open_run(cgan_run, weights="raw"), [0, 1, 2], label=7)
    assert not torch.allclose(images, raw)  # the EMA copy is another set of weights
    generate.run_generate(generate.parse([str(cgan_run), "--num", "20", "--name", "cycle", "--output", "png"]))
    names = sorted(p.name for p in (cgan_run / "generate" / "cycle").glob("*.png"))
    assert "seed000013_class3.png" in names and not (cgan_run / "generate" / "cycle" / "grid.png").exists()


def test_truncation_bounds_z_and_is_reproducible():
    z = seeded_z(list(range(50)), 64, truncation=0.5)
    assert z.abs().max() <= 0.5 and torch.equal(z, seeded_z(list(range(50)), 64, truncation=0.5))
    assert seeded_z([3], 64).abs().max() > 0.5


def test_pix2pix_translates_a_folder_of_inputs(tmp_path):
    run_dir = tmp_path / "run"
    train_pix2pix(run_dir, tmp_path / "data")
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for k in range(3):
        Image.new("RGB", (48, 40), (40 * k, 90, 200)).save(inputs / f"in{k}.png")
    (inputs / "notes.txt").write_text("not an image")
    out = generate.run_generate(generate.parse([str(run_dir), "--inputs", str(inputs), "--name", "t"]))
    files = sorted(p.name for p in out.path.glob("0*.png"))
    assert files == ["00000_in0.png", "00001_in1.png", "00002_in2.png"]
    assert _png(out.path / files[0]).shape == (3, 32, 32)
    with pytest.raises(SystemExit):
        walk.main([str(run_dir), "--seeds", "0,1"])


def test_slerp_and_lerp_start_and_end_at_their_inputs():
    a, b = torch.randn(64, generator=torch.Generator().manual_seed(0)), torch.randn(64)
    for method in ("slerp", "lerp"):
        path = interpolate(a, b, 9, method)
        assert path.shape == (9, 64)
        assert torch.allclose(path[0], a, atol=1e-5) and torch.allclose(path[-1], b, atol=1e-5)
    t = torch.tensor([0.5])
    middle = slerp(a, b, t)[0]
    # Slerp keeps the norm (here between |a| and |b|); the straight line's middle is shorter.
    assert middle.norm() > lerp(a, b, t)[0].norm()
    assert torch.allclose(middle.norm(), (a.norm() + b.norm()) / 2, rtol=1e-4)
    assert torch.allclose(slerp(a, 2 * a, torch.tensor([0.5]))[0], 1.5 * a, atol=1e-5)  # same direction


def test_walks_write_a_grid_a_gif_and_the_path(dcgan_run, cgan_run):
    out = walk.run_walk(walk.parse([str(dcgan_run), "--seeds", "0,5,9", "--steps", "4", "--fps", "10", "--name", "w"]))
    out.close()  # as the command does: the TensorBoard writer flushes its events then
    # 3 points, 2 segments of 4 frames sharing the joint: 7 frames of 100 ms (10 fps; GIF counts in 10 ms). Pillow
    # merges identical neighbours (this barely trained G draws near-constant images) into
    # one longer frame, so the frames are counted by their total duration.
    gif = Image.open(out.path / "walk.gif")
    assert sum(frame.info["duration"] for frame in ImageSequence.Iterator(gif)) == 7 * 100
    saved = torch.load(out.path / "path.pt", weights_only=True)["path"]
    z = seeded_z([0, 5, 9], 64)
    assert torch.allclose(saved[0], z[0]) and torch.allclose(saved[3], z[1]) and torch.allclose(saved[-1], z[2])
    assert "walk/w/grid" in events(dcgan_run).Tags()["images"]

    out = walk.run_walk(
        walk.parse([str(cgan_run), "--classes", "2,6", "--seeds", "0-2", "--steps", "5", "--name", "c"])
    )
    weights = torch.load(out.path / "path.pt", weights_only=True)["path"]
    assert weights[0].argmax() == 2 and weights[-1].argmax() == 6 and torch.allclose(weights.sum(1), torch.ones(5))
    run = open_run(cgan_run)
    last = run.G(seeded_z([0, 1, 2], 64), torch.full((3,), 6))
    grid_end = run.G(seeded_z([0, 1, 2], 64), weights[-1].expand(3, -1))
    assert torch.allclose(last, grid_end, atol=1e-6)  # the soft class vector at t=1 is class 6


def test_arithmetic_combines_the_means_of_the_groups(dcgan_run, tmp_path):
    torch.save(seeded_z([10, 11, 12], 64), tmp_path / "z.pt")
    out = arithmetic.run_arithmetic(
        arithmetic.parse(
            [
                str(dcgan_run),
                "--a",
                "1,2,3",
                "--b",
                "seeds:4,5",
                "--c",
                "z:0,2",
                "--z",
                str(tmp_path / "z.pt"),
                "--variations",
                "3",
                "--name",
                "ar",
            ]
        )
    )
    out.close()  # as the command does: the TensorBoard writer flushes its events then
    saved = torch.load(out.path / "vectors.pt", weights_only=True)
    a, b, c = seeded_z([1, 2, 3], 64).mean(0), seeded_z([4, 5], 64).mean(0), seeded_z([10, 12], 64).mean(0)
    assert torch.allclose(saved["result"], a - b + c, atol=1e-6)
    grid = _png(out.path / "grid.png")
    assert grid.shape[1:] == (4 * 30 + 2, 4 * 30 + 2)  # rows a, b, c, result; 4 tiles of 28 + 2 padding
    assert "arithmetic/ar/grid" in events(dcgan_run).Tags()["images"]


@pytest.mark.parametrize(
    "tool, args, fragment",
    [
        (generate, ["--class", "3"], "unconditional"),
        (generate, ["--num", "0"], "--num 0"),
        (generate, ["--name", "six"], "already exists"),
        (generate, ["--inputs", "."], "noise generator"),
        (walk, ["--seeds", "4"], "at least two"),
        (walk, ["--classes", "1,2"], "unconditional"),
        (walk, ["--z", "missing.pt", "--index", "0,1"], "no such file"),
        (arithmetic, ["--a", "1", "--b", "2", "--c", "data:class=3", "--per-group", "0"], "--per-group 0"),
        (arithmetic, ["--a", "1", "--b", "2", "--c", "data:Smiling=1"], "has no 'Smiling'"),
    ],
)
def test_mistakes_are_one_line_and_write_nothing(dcgan_run, capsys, tool, args, fragment):
    if "six" in args and not (dcgan_run / "generate" / "six").exists():
        generate.run_generate(generate.parse([str(dcgan_run), "--num", "2", "--name", "six"]))
    before = sorted(p.relative_to(dcgan_run) for p in dcgan_run.rglob("*") if "tb" not in p.parts)
    with pytest.raises(SystemExit) as exit_info:
        tool.main([str(dcgan_run), *args])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1 and fragment in err, err
    after = sorted(p.relative_to(dcgan_run) for p in dcgan_run.rglob("*") if "tb" not in p.parts)
    assert after == before


def test_a_folder_without_a_generator_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit):
        generate.main([str(tmp_path)])
    assert "holds no trained generator" in capsys.readouterr().err


def test_arithmetic_groups_of_real_images_are_inverted_into_z(dcgan_run):
    from gantrain.build import build_source
    from gantrain.tools.arithmetic import real_group

    out = arithmetic.run_arithmetic(
        arithmetic.parse(
            [
                str(dcgan_run),
                "--a",
                "data:class=3",
                "--b",
                "1,2",
                "--c",
                "data:class=7",
                "--per-group",
                "2",
                "--invert-steps",
                "5",
                "--variations",
                "0",
                "--name",
                "real",
            ]
        )
    )
    saved = torch.load(out.path / "vectors.pt", weights_only=True)
    assert saved["means"]["a"].shape == (64,) and not torch.allclose(saved["means"]["a"], saved["means"]["c"])
    images, labels = real_group(build_source(open_run(dcgan_run).config), {"class": 7}, 3, seed=0)
    assert labels.tolist() == [7, 7, 7] and images.shape == (3, 1, 28, 28)
