"""gantrain-invert: inversion by optimisation recovers generated images, the generator
fills in what a degradation threw away, the encoder is trained once and then cached, the
command writes its pictures, tables and TensorBoard grid, and mistakes are one line."""

import copy
import csv
import json

import pytest
import torch
from conftest import TINY, events, train, train_pix2pix
from PIL import Image
from torch import nn

from gantrain.tools.degrade import center_mask, file_mask, make_degradation, random_mask
from gantrain.tools.encoder import encoder_path, load_or_train_encoder
from gantrain.tools.inputs import seeded_z
from gantrain.tools.invert import invert, main, parse, run_invert
from gantrain.tools.run import open_run

FAST = ["--device", "cpu", "--steps", "3", "--starts", "1"]


@pytest.fixture(scope="module")
def G(dcgan_run):
    """The dcgan_run generator with its BatchNorm statistics measured. After 4 training
    steps the running statistics are still near their initial values, so in eval mode it
    maps every z to nearly the same flat image (pixel spread ~1e-4), which says little
    about inversion. Same weights, statistics from 256 samples: images that differ."""
    G = copy.deepcopy(open_run(dcgan_run).G)
    for module in G.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # a plain average over the batches below
    G.train()
    with torch.no_grad():
        generator = torch.Generator().manual_seed(0)
        for _ in range(4):
            G(torch.randn(64, G.z_dim, generator=generator))
    return G.eval()


@pytest.fixture(scope="module")
def rgb_run(tmp_path_factory):
    """A tiny RGB run (random 16x16 images): colorize needs colour."""
    run_dir = tmp_path_factory.mktemp("rgb") / "run"
    train(run_dir, [*TINY, "data=synthetic", "data.image_size=16", "data.size=32", "trainer.steps=2"])
    return run_dir


def targets_of(G, n=4):
    z = seeded_z(list(range(100, 100 + n)), G.z_dim)
    with torch.no_grad():
        return z, G(z)


def mse(a, b):
    return (a - b).pow(2).mean().item()


def test_inverting_a_generated_image_recovers_it(G):
    z_true, targets = targets_of(G)
    result = invert(G, targets, steps=100, starts=2, seed=0)
    with torch.no_grad():
        random = G(torch.randn(4, G.z_dim, generator=torch.Generator().manual_seed(7)))
    assert result.z.shape == (4, G.z_dim) and result.images.shape == targets.shape
    assert result.loss.shape == result.start.shape == (4,)
    assert mse(result.images, targets) < mse(random, targets) / 5
    assert torch.allclose(result.loss, (result.images - targets).pow(2).flatten(1).mean(1), rtol=1e-3, atol=1e-7)


def test_inversion_is_deterministic_and_images_do_not_interact(G):
    _, targets = targets_of(G, 3)
    one_batch = invert(G, targets, steps=5, starts=3, seed=1)
    again = invert(G, targets, steps=5, starts=3, seed=1)
    one_by_one = invert(G, targets, steps=5, starts=3, seed=1, batch_size=1)
    assert torch.equal(one_batch.z, again.z) and torch.equal(one_batch.start, again.start)
    assert torch.allclose(one_batch.z, one_by_one.z, atol=1e-5)  # summed loss: no image affects another
    assert not torch.equal(one_batch.z, invert(G, targets, steps=5, starts=3, seed=2).z)


def test_init_z_is_start_zero(G):
    z_true, targets = targets_of(G, 3)
    result = invert(G, targets, steps=3, starts=2, init_z=z_true)
    assert result.start.tolist() == [0, 0, 0]  # the truth beats the random start
    assert result.loss.max() < 1e-8


def test_inpainting_fills_the_unknown_region_from_the_prior(G):
    _, truth = targets_of(G)
    inpaint = make_degradation("inpaint", 1, 28, len(truth), seed=0)
    result = invert(G, truth, steps=100, starts=2, degradation=inpaint)
    unknown = inpaint.unknown.expand_as(truth)
    masked_input = inpaint.show(inpaint.apply(truth))  # the unknown region grey (0)
    assert masked_input[unknown].abs().max() == 0
    assert mse(result.images[unknown], truth[unknown]) < 0.5 * mse(masked_input[unknown], truth[unknown])


def test_feature_loss_uses_the_discriminator(G, dcgan_run):
    _, targets = targets_of(G, 2)
    D = open_run(dcgan_run).discriminator()
    plain = invert(G, targets, steps=3, starts=1)
    with_features = invert(G, targets, steps=3, starts=1, feature_weight=10.0, D=D)
    assert not torch.allclose(plain.z, with_features.z)
    assert not D._forward_pre_hooks and not any(m._forward_pre_hooks for m in D.modules())  # hook removed
    with pytest.raises(ValueError, match="needs the discriminator"):
        invert(G, targets, feature_weight=1.0)


def test_degradations(tmp_path):
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    assert center_mask(28).mean().item() == pytest.approx(0.75)  # a centred 14x14 square unknown
    boxes = random_mask(3, 28, seed=5)
    assert boxes.shape == (3, 1, 28, 28) and torch.equal(boxes, random_mask(3, 28, seed=5))
    assert not torch.equal(boxes[0], boxes[1]) and 0 < boxes.mean() < 1
    grey = make_degradation("colorize", 3, 8, 2, 0)
    assert grey.apply(x).shape == (2, 1, 8, 8) and torch.allclose(grey.apply(x)[:, 0], x.mean(1))
    assert grey.show(grey.apply(x)).shape == x.shape
    low = make_degradation("superres", 3, 8, 2, 0, scale=4)
    assert low.apply(x).shape == (2, 3, 2, 2) and low.apply(x.expand(5, 2, 3, 8, 8)).shape == (5, 2, 3, 2, 2)
    assert torch.allclose(low.apply(x)[0, 0, 0, 0], x[0, 0, :4, :4].mean())
    assert low.show(low.apply(x)).shape == x.shape
    noisy = make_degradation("denoise", 3, 8, 2, 0, noise_std=0.1)
    assert torch.equal(noisy.corrupt(x), noisy.corrupt(x)) and 0.05 < (noisy.corrupt(x) - x).std() < 0.2
    painted = torch.full((1, 10, 10), 255, dtype=torch.uint8)
    painted[:, :5] = 0  # the top half unknown
    Image.fromarray(painted[0].numpy()).save(tmp_path / "mask.png")
    mask = file_mask(tmp_path / "mask.png", 28)
    assert mask.shape == (1, 1, 28, 28) and mask[..., :14, :].max() == 0 and mask[..., 14:, :].min() == 1


@pytest.mark.parametrize(
    "task", [["superres", "--scale", "4"], ["denoise", "--noise-std", "0.3"]], ids=["superres", "denoise"]
)
def test_tasks_run_end_to_end(dcgan_run, task):
    output = run_invert(
        parse([str(dcgan_run), "--from-generator", "2", "--task", *task, *FAST, "--name", f"task-{task[0]}"])
    )
    rows = list(csv.DictReader(open(output.path / "scores.csv")))
    assert len(rows) == 2 and all(float(row["psnr_input"]) > 0 for row in rows)
    summary = json.loads((output.path / "summary.json").read_text())
    assert summary["task"] == task[0] and summary["settings"][task[1][2:].replace("-", "_")] == float(task[2])


def test_colorize_runs_on_rgb_and_is_refused_on_grey(rgb_run, dcgan_run, capsys):
    output = run_invert(parse([str(rgb_run), "--from-generator", "2", "--task", "colorize", *FAST, "--name", "c"]))
    assert Image.open(output.path / "input.png").mode == "RGB"
    assert (output.path / "scores.csv").is_file()
    with pytest.raises(SystemExit) as exit_:
        main([str(dcgan_run), "--from-generator", "2", "--task", "colorize", *FAST, "--name", "grey"])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and len(err.splitlines()) == 1 and "colorize needs RGB data" in err
    assert not (dcgan_run / "invert" / "grey").exists()


def test_encoder_is_trained_once_cached_and_its_guess_is_start_zero(dcgan_run):
    args = [
        str(dcgan_run),
        "--from-generator",
        "3",
        "--encoder",
        "--encoder-steps",
        "5",
        "--device",
        "cpu",
        "--steps",
        "1",
        "--starts",
        "1",
    ]
    first = run_invert(parse([*args, "--name", "enc1"]))
    cache = encoder_path(open_run(dcgan_run))
    assert cache.name == "encoder_raw_step4.pt" and cache.is_file()
    stamp = cache.stat().st_mtime_ns
    second = run_invert(parse([*args, "--name", "enc2"]))
    assert cache.stat().st_mtime_ns == stamp  # reused, not retrained
    states = [json.loads((out.path / "summary.json").read_text())["settings"]["encoder"] for out in (first, second)]
    assert states == ["trained", "cached"]
    saved = torch.load(second.path / "z.pt", weights_only=True)
    E, cached = load_or_train_encoder(open_run(dcgan_run), 5, torch.device("cpu"))
    with torch.no_grad():
        guess = E(generated(dcgan_run))  # plain reconstruction: the input is the target itself
    assert cached and torch.allclose(saved["encoder_z"], guess, atol=1e-5)
    # One start (the encoder's), one Adam step: z moved at most lr (0.05) per coordinate from the guess.
    assert saved["start"].tolist() == [0, 0, 0]
    assert (saved["z"] - saved["encoder_z"]).abs().max() <= 0.05 + 1e-6


def generated(run_dir):
    """The --from-generator targets of seed 0..2, as the command makes them."""
    run = open_run(run_dir)
    with torch.no_grad():
        return run.G(seeded_z([0, 1, 2], run.z_dim))


def test_cli_writes_pictures_tables_and_a_tensorboard_grid(dcgan_run, capsys):
    main(
        [
            str(dcgan_run),
            "--from-generator",
            "3",
            "--task",
            "inpaint",
            "--device",
            "cpu",
            "--steps",
            "5",
            "--starts",
            "2",
            "--name",
            "files",
        ]
    )
    out = capsys.readouterr().out
    folder = dcgan_run / "invert" / "files"
    assert "mean PSNR" in out and "unknown region" in out and str(folder) in out
    names = {"truth.png", "input.png", "reconstruction.png", "comparison.png", "z.pt", "scores.csv", "summary.json"}
    assert names <= {p.name for p in folder.iterdir()}
    # Rows truth | input | reconstruction, 3 images each: 3 rows of 28 px + 2 px padding.
    assert Image.open(folder / "comparison.png").size == (3 * 30 + 2, 3 * 30 + 2)
    rows = list(csv.DictReader(open(folder / "scores.csv")))
    assert list(rows[0]) == [
        "index",
        "psnr_input",
        "psnr_reconstruction",
        "psnr_masked_input",
        "psnr_masked_reconstruction",
        "start",
        "loss",
    ]
    saved = torch.load(folder / "z.pt", weights_only=True)
    assert saved["z"].shape == (3, 64) and saved["labels"] is None and saved["args"]["task"] == "inpaint"
    assert torch.equal(saved["z_truth"], seeded_z([0, 1, 2], 64))
    summary = json.loads((folder / "summary.json").read_text())
    assert set(summary["mean"]) == {
        "psnr_input",
        "psnr_reconstruction",
        "psnr_masked_input",
        "psnr_masked_reconstruction",
        "loss",
    }
    assert summary["settings"]["mask"] == "center" and sum(summary["wins"]) == 3
    assert "invert/files/comparison" in events(dcgan_run).Tags()["images"]


def test_images_folder_and_dataset_images(dcgan_run, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.new("RGB", (50, 30), (200, 10, 10)).save(folder / "wide.png")
    Image.new("L", (20, 20), 30).save(folder / "small.jpg")
    (folder / "notes.txt").write_text("not an image")
    output = run_invert(parse([str(dcgan_run), "--images", str(folder), *FAST, "--name", "photos"]))
    saved = torch.load(output.path / "z.pt", weights_only=True)
    assert saved["files"] == ["small.jpg", "wide.png"] and saved["z"].shape == (2, 64)
    assert [row["file"] for row in csv.DictReader(open(output.path / "scores.csv"))] == saved["files"]
    output = run_invert(parse([str(dcgan_run), "--from-data", "3", *FAST, "--name", "data"]))
    assert "3 images of" in json.loads((output.path / "summary.json").read_text())["images"]


def test_conditional_generator_takes_labels(cgan_run, tmp_path, capsys):
    output = run_invert(parse([str(cgan_run), "--from-generator", "3", "--class", "7", *FAST, "--name", "seven"]))
    assert torch.load(output.path / "z.pt", weights_only=True)["labels"].tolist() == [7, 7, 7]
    (tmp_path / "one").mkdir()
    Image.new("L", (28, 28)).save(tmp_path / "one" / "a.png")
    with pytest.raises(SystemExit):
        main([str(cgan_run), "--images", str(tmp_path / "one"), *FAST])
    assert "--class K (0..9)" in capsys.readouterr().err


def translation_run(dcgan_run, tmp_path):
    """A one-step pix2pix run: its model says it is a translator (models/base.py), and
    require_noise asks the model, not the data spec."""
    run_dir = tmp_path / "translator"
    train_pix2pix(run_dir, tmp_path / "data", "data.batch_size=1", "trainer.steps=1")
    return run_dir


@pytest.mark.parametrize(
    "case, message",
    [
        ("no-generator", "holds no trained generator"),
        ("empty-folder", "holds no image files"),
        ("translation", "works on noise-to-image generators"),
        ("steps", "--steps 0: use a whole number of at least 1"),
        ("lr", "--lr -1.0: use a positive number"),
        ("mask-without-inpaint", "--mask applies to --task inpaint"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(dcgan_run, tmp_path, capsys, case, message):
    (tmp_path / "empty").mkdir()
    run, extra = str(dcgan_run), ["--from-generator", "2"]
    if case == "no-generator":
        run = str(tmp_path / "empty")
    elif case == "empty-folder":
        (tmp_path / "empty" / "readme.txt").write_text("no pictures here")
        extra = ["--images", str(tmp_path / "empty")]
    elif case == "translation":
        run = str(translation_run(dcgan_run, tmp_path))
    elif case == "steps":
        extra += ["--steps", "0"]
    elif case == "lr":
        extra += ["--lr", "-1"]
    else:
        extra += ["--mask", "random"]
    with pytest.raises(SystemExit) as exit_:
        main([run, *extra, "--device", "cpu", "--name", f"bad-{case}"])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and len(err.splitlines()) == 1
    assert err.startswith("gantrain-invert: error:") and message in err
    assert not (dcgan_run / "invert" / f"bad-{case}").exists()
