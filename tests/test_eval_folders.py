"""``gantrain-eval --real DIR --fake DIR`` and ``gantrain-eval RUN --real DIR``: folders scored
with the protocol of runs (gantrain/metrics/folders.py), and their one-line refusals."""

import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY, command, train
from PIL import Image


def write_pngs(folder, images_uint8: torch.Tensor) -> None:
    """(N, C, H, W) uint8 as 00000.png, 00001.png, ...: the folder reads them back in this order."""
    folder.mkdir(parents=True)
    for k, image in enumerate(images_uint8):
        array = image.permute(1, 2, 0).numpy()
        Image.fromarray(array[..., 0] if array.shape[2] == 1 else array).save(folder / f"{k:05d}.png")


def eval_cli(*args: str) -> subprocess.CompletedProcess:
    return command("gantrain.eval_cli", *args, cwd=Path(tempfile.gettempdir()))


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """60 random 28x28 grey "digits" in ten class subfolders: MNIST-like, so the classifier judge
    applies, trained on this very folder both when it is a run's data and when it is --real."""
    root = tmp_path_factory.mktemp("digits") / "digits"
    images = np.random.default_rng(0).integers(0, 256, (60, 28, 28), dtype=np.uint8)
    for k, image in enumerate(images):
        (root / str(k % 10)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(root / str(k % 10) / f"{k:05d}.png")
    return root


@pytest.fixture(scope="module")
def folder_run(digits):
    run_dir = digits.parent / "run"
    data = ["data=folder", f"data.path={digits}", "data.image_size=28", "data.channels=1", "data.num_workers=0"]
    train(run_dir, [*TINY, *data, "trainer.steps=4"])
    return run_dir


@pytest.mark.slow
def test_folder_against_folder_equals_the_run_based_numbers(folder_run, digits, tmp_path, monkeypatch):
    """A run's real folder, and its N samples written out in order, score as the run does."""
    from omegaconf import OmegaConf

    import gantrain.metrics.folders as folders
    import gantrain.metrics.score as score
    from gantrain.build import generator_info
    from gantrain.eval_cli import parse, run_eval
    from gantrain.metrics.evaluate import generate
    from gantrain.metrics.inception import to_uint8
    from gantrain.trained import load_generator

    seen = []  # the (real, fake) images each report was computed from

    def spy(real, fake, *args, **kwargs):
        seen.append((real, fake))
        return original(real, fake, *args, **kwargs)

    original = score.score
    monkeypatch.setattr(score, "score", spy)
    monkeypatch.setattr(folders, "score", spy)
    n, seed = 8, 3
    common = ["--num-samples", str(n), "--device", "cpu", "--seed", str(seed), "--cache-dir", str(tmp_path / "c")]
    run_report = run_eval(parse([str(folder_run), *common]))
    assert run_report["protocol"]["families"] == ["classifier"]

    G, export = load_generator(folder_run)
    z_dim = generator_info(OmegaConf.create(export["config"]).model, export["data_spec"]).z_dim
    # The samples the run's evaluation drew: noise seeded with seed + 1, as evaluate.evaluate draws it.
    fake, _ = generate(lambda z, y: G(z), z_dim, 0, n, seed + 1, 250, "cpu")
    write_pngs(tmp_path / "fake", to_uint8(fake))
    out = tmp_path / "report.json"
    folder_report = run_eval(
        parse(["--real", str(digits), "--fake", str(tmp_path / "fake"), *common, "--out", str(out)])
    )

    (run_real, run_fake), (folder_real, folder_fake) = seen
    assert torch.equal(run_real, folder_real)  # the same 2N real images, in the same order
    # What Inception sees (uint8 by rounding) is identical, so FID/KID/IS/PRDC there are too.
    assert torch.equal(to_uint8(run_fake), to_uint8(folder_fake))
    assert set(folder_report["metrics"]) == set(run_report["metrics"]) >= {"classifier_fid", "classifier_precision"}
    assert folder_report["floor"] == run_report["floor"]  # the same judge on the same real images
    # The judge reads the samples as floats: the folder's are rounded to uint8 (|error| <= 1/255).
    assert folder_report["metrics"]["classifier_fid"] == pytest.approx(run_report["metrics"]["classifier_fid"], 0.02)
    assert json.loads(out.read_text())["metrics"] == folder_report["metrics"]

    # The run's generator against the same real folder: exactly its own evaluation's numbers,
    # and the run's own report is left alone.
    (saved,) = (folder_run / "eval").glob("step_*.json")
    before = saved.read_text()
    against = run_eval(parse([str(folder_run), "--real", str(digits), *common]))
    assert against["metrics"] == run_report["metrics"] and against["floor"] == run_report["floor"]
    assert saved.read_text() == before


def test_refusals_are_one_line(tmp_path, capsys):
    grey = torch.randint(0, 256, (6, 1, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    write_pngs(tmp_path / "grey", grey)
    write_pngs(tmp_path / "rgb", grey.expand(-1, 3, -1, -1).contiguous())
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    g, r, e = (str(tmp_path / name) for name in ("grey", "rgb", "empty"))
    cases = [
        (["--real", e, "--fake", g], "--real"),
        (["--real", g, "--fake", e], "--fake"),
        (["--real", g, "--fake", str(tmp_path / "missing")], "--fake"),
        (["--real", g, "--fake", r, "--num-samples", "2"], "grey images and the fake folder holds RGB"),
        (["--real", g, "--fake", g, "--num-samples", "4"], "--num-samples=4 needs 8 real images"),
        (["--real", r, "--fake", r, "--num-samples", "1"], "--num-samples"),
        (["--fake", g], "needs --real"),
        ([str(tmp_path), "--fake", g, "--real", g], "not both"),
        ([], "give a run directory"),
    ]
    from gantrain.eval_cli import main

    for args, fragment in cases:  # in-process: main prints what the command prints
        with pytest.raises(SystemExit) as exit:
            main([*args, "--device", "cpu", "--cache-dir", str(tmp_path / "cache")])
        err = capsys.readouterr().err
        assert exit.value.code == 2, (args, err)
        assert fragment in err and len(err.strip().splitlines()) == 1, (args, err)
    result = eval_cli("--real", e, "--fake", g)  # and once through a real process
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1


def test_fewer_generated_images_than_num_samples(tmp_path):
    from gantrain.errors import UserError
    from gantrain.eval_cli import parse, run_eval

    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (12, 1, 16, 16), dtype=np.uint8))
    write_pngs(tmp_path / "real", images)
    write_pngs(tmp_path / "fake", images[:3])
    with pytest.raises(UserError, match="--num-samples=6 needs 6 generated images; fake holds 3"):
        run_eval(parse(["--real", str(tmp_path / "real"), "--fake", str(tmp_path / "fake"), "--num-samples", "6"]))


def test_a_run_against_a_folder_of_other_channels_is_refused(folder_run, tmp_path):
    rgb = torch.zeros(20, 3, 28, 28, dtype=torch.uint8)
    write_pngs(tmp_path / "rgb", rgb)
    result = eval_cli(str(folder_run), "--real", str(tmp_path / "rgb"), "--num-samples", "4", "--device", "cpu")
    assert result.returncode == 2 and "the generator makes grey" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_an_exported_generator_is_scored_against_a_folder_and_alone_is_one_line(folder_run, digits, tmp_path, capsys):
    from gantrain.eval_cli import main, parse, run_eval
    from gantrain.export import cli as export_cli

    exported = tmp_path / "export"
    export_cli.main([str(folder_run), "--format", "safetensors", "--out", str(exported)])
    with pytest.raises(SystemExit) as exit_info:
        main([str(exported), "--num-samples", "10", "--cache-dir", str(tmp_path / "cache")])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1 and "add --real DIR" in err, err
    args = ["--real", str(digits), "--num-samples", "10", "--cache-dir", str(tmp_path / "cache")]
    report = run_eval(parse([str(exported), *args]))
    assert report["metrics"]["classifier_fid"] >= 0 and "classifier_coverage" in report["metrics"]
