"""gantrain-export (issue 19): every model in every format passes its parity check, the
folder holds what rebuilds G and a model card, a safetensors folder loads back with no
pickle at all (``gantrain.load_generator``, the tools, torch.hub), and each refusal is
one line. Tiny nets on the CPU; about a minute for the whole file on 2 cores."""

from __future__ import annotations

import builtins
import json
import pickle
import tempfile
from pathlib import Path

import pytest
import torch
from conftest import TINY, TINY_MLP, command, train, train_pix2pix
from fixtures import write_unpaired

import gantrain as package
from gantrain.export import cli
from gantrain.tools import generate, invert
from gantrain.trained import load_generator

REPO = Path(__file__).resolve().parent.parent


def _cyclegan(run_dir: Path, data: Path) -> None:
    write_unpaired(data, {"trainA": 3, "trainB": 3, "testA": 2, "testB": 2}, size=(32, 32))
    nets = ["model.generator.width=4", "model.generator.blocks=1", "model.discriminator.width=4"]
    sizes = ["data.image_size=32", "data.load_size=32", "data.num_workers=0", "model.pool_size=2"]
    train(run_dir, ["model=cyclegan", "loss=lsgan", "data=unpaired_folder", f"data.path={data}", *nets, *sizes,
                    "trainer=smoke", "trainer.steps=2", "device=cpu"])  # fmt: skip


@pytest.fixture(scope="module")
def runs(tmp_path_factory, dcgan_run, cgan_run) -> dict[str, Path]:
    """One tiny run of every model (conftest's DCGAN and cGAN with an EMA: four steps; the rest two)."""
    root = tmp_path_factory.mktemp("export_runs")
    two = "trainer.steps=2"
    train(root / "acgan", [*TINY, two, "model=acgan"])
    train(root / "gan", [*TINY_MLP, two])
    train_pix2pix(root / "pix2pix", root / "paired", two)
    _cyclegan(root / "cyclegan", root / "h2z")
    return {
        "dcgan": dcgan_run,
        "cgan": cgan_run,
        **{name: root / name for name in ("acgan", "gan", "pix2pix", "cyclegan")},
    }


def export(run: Path, fmt: str, out: Path, *extra: str) -> Path:
    cli.main([str(run), "--format", fmt, "--out", str(out), *extra])
    return out


def refused(capsys, main, argv: list[str]) -> str:
    """The one line a refused command prints (exit status 2)."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("fmt", ["safetensors", "onnx", "torchscript"])
@pytest.mark.parametrize("model", ["dcgan", "cgan", "acgan", "gan", "pix2pix", "cyclegan"])
@pytest.mark.slow
def test_every_model_exports_in_every_format_within_the_parity_tolerance(runs, tmp_path, model, fmt):
    out = export(runs[model], fmt, tmp_path / "out")
    config = json.loads((out / "config.json").read_text())
    parity = json.loads((out / "parity.json").read_text())
    card = (out / "README.md").read_text()
    assert config["format"] == fmt and config["value_range"] == [-1, 1]
    assert config["weights"] == ("ema" if model == "cgan" else "raw")
    assert config["model"]["_target_"].startswith("gantrain.models.")
    for file in config["files"].values():
        assert (out / file).is_file()
    assert parity["batches"] == [1, 5]
    for result in parity["checks"].values():
        assert result["max_abs_diff"] <= 1e-4
    assert f"Format**: {fmt}" in card and "Parity check" in card and f"Training steps**: {config['step']}" in card
    assert config["step"] == (4 if model in ("dcgan", "cgan") else 2)
    if model in ("pix2pix", "cyclegan"):
        assert config["kind"] == "translator" and config["test_mode"] == "train"
        assert "model.test_mode=train" in card and "Test-time behaviour" in card
        expected = ["AB", "BA"] if model == "cyclegan" else ["AB"]
        assert config["directions"] == expected
        if fmt != "safetensors":
            assert sorted(config["files"]) == expected
    else:
        assert config["kind"] == "noise" and config["z_dim"] > 0
        assert config["num_classes"] == (10 if model in ("cgan", "acgan") else 0)
        assert list(config["inputs"]) == (["z", "label"] if config["num_classes"] else ["z"])
    if model == "pix2pix" and fmt != "safetensors":  # the U-Net's dropout is on at test time, in the file
        result = parity["checks"][config["files"]["AB"]]
        assert result["dropout_live"] and "without dropout" in result["compared"]
        assert "dropout on" in card


@pytest.mark.slow
def test_onnx_runs_a_conditional_generator_on_any_batch_with_its_label_input(runs, tmp_path):
    import onnxruntime

    out = export(runs["cgan"], "onnx", tmp_path / "onnx")
    G, _ = load_generator(runs["cgan"])
    session = onnxruntime.InferenceSession(str(out / "generator.onnx"), providers=["CPUExecutionProvider"])
    assert [(i.name, i.type) for i in session.get_inputs()] == [("z", "tensor(float)"), ("label", "tensor(int64)")]
    z, y = torch.randn(7, 64), torch.tensor([9, 0, 3, 3, 1, 2, 8])
    (image,) = session.run(None, {"z": z.numpy(), "label": y.numpy()})
    with torch.no_grad():
        assert torch.allclose(torch.from_numpy(image), G(z, y), atol=1e-5)


def test_a_safetensors_folder_loads_back_with_no_pickle_at_all(runs, tmp_path, monkeypatch):
    out = export(runs["cgan"], "safetensors", tmp_path / "st")
    G_run, _ = load_generator(runs["cgan"])

    def forbidden(*args, **kwargs):
        raise AssertionError("unpickling while loading an export")

    for owner, name in [
        (torch, "load"),
        (pickle, "load"),
        (pickle, "loads"),
        (pickle, "Unpickler"),
        (torch.jit, "load"),
    ]:
        monkeypatch.setattr(owner, name, forbidden)
    G, record = package.load_generator(out)
    monkeypatch.undo()
    assert not G.training and record["step"] == 4 and record["ema"] and record["export"]["format"] == "safetensors"
    z, y = torch.randn(4, 64), torch.arange(4)
    with torch.no_grad():
        assert torch.equal(G(z, y), G_run(z, y))


def test_the_tools_take_an_exported_folder_where_they_take_a_run(runs, tmp_path, capsys):
    folder = export(runs["cgan"], "safetensors", tmp_path / "st")
    generate.main([str(folder), "--seeds", "0-3", "--class", "2", "--name", "g", "--device", "cpu"])
    assert len(list((folder / "generate" / "g").glob("seed*.png"))) == 4 and not (folder / "tb").exists()
    # The same images as from the run itself.
    generate.main([str(runs["cgan"]), "--seeds", "0-3", "--class", "2", "--name", "g", "--device", "cpu"])
    assert (folder / "generate/g/grid.png").read_bytes() == (runs["cgan"] / "generate/g/grid.png").read_bytes()
    capsys.readouterr()
    # What an export lacks: the data, D, the other copy of G; each one line naming the run.
    base = [str(folder), "--device", "cpu", "--steps", "1", "--starts", "1"]
    err = refused(capsys, invert.main, [*base, "--from-data", "2"])
    assert "training data" in err and str(runs["cgan"]) in err
    err = refused(capsys, invert.main, [*base, "--from-generator", "1", "--feature-weight", "1"])
    assert "discriminator" in err and str(runs["cgan"]) in err
    err = refused(capsys, generate.main, [str(folder), "--weights", "raw", "--num", "1"])
    assert "EMA weights only" in err and "--weights raw" in err
    assert not (folder / "invert").exists()


def test_a_translator_export_translates_a_folder_like_its_run(runs, tmp_path):
    folder = export(runs["pix2pix"], "safetensors", tmp_path / "st")
    inputs = next(p for p in (runs["pix2pix"].parent / "paired" / "facades").rglob("val") if p.is_dir())
    for where in (folder, runs["pix2pix"]):
        generate.main([str(where), "--inputs", str(inputs), "--name", "t", "--device", "cpu", "--output", "png"])
    made = sorted(p.name for p in (folder / "generate" / "t").glob("*.png"))
    assert made and made == sorted(p.name for p in (runs["pix2pix"] / "generate" / "t").glob("*.png"))
    for name in made:  # test mode train, the same dropout seed: the same pictures
        assert (folder / "generate/t" / name).read_bytes() == (runs["pix2pix"] / "generate/t" / name).read_bytes()


def test_torch_hub_loads_an_export_or_a_run_from_a_local_checkout(runs, tmp_path):
    folder = export(runs["dcgan"], "safetensors", tmp_path / "st")
    z = torch.randn(3, 64)
    with torch.no_grad():
        expected = load_generator(runs["dcgan"])[0](z)
        for path in (folder, runs["dcgan"]):
            G = torch.hub.load(str(REPO), "generator", source="local", path=str(path), trust_repo=True)
            assert torch.equal(G(z), expected)


@pytest.mark.slow
def test_refusals_are_one_line_and_leave_nothing_behind(runs, tmp_path, capsys, monkeypatch):
    run = str(runs["dcgan"])
    err = refused(capsys, cli.main, [run, "--format", "tflite", "--out", str(tmp_path / "x")])
    assert err == "gantrain-export: error: --format tflite is not known: use one of safetensors, onnx, torchscript"
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "mine.txt").write_text("keep")
    err = refused(capsys, cli.main, [run, "--format", "safetensors", "--out", str(taken)])
    assert "already exists" in err and (taken / "mine.txt").read_text() == "keep" and len(list(taken.iterdir())) == 1

    real_import = builtins.__import__

    def without_onnxruntime(name, *args, **kwargs):
        if name.split(".")[0] == "onnxruntime":
            raise ImportError("No module named 'onnxruntime'")
        return real_import(name, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(builtins, "__import__", without_onnxruntime)
        err = refused(capsys, cli.main, [run, "--format", "onnx", "--out", str(tmp_path / "o" / "onnx")])
    assert "onnxruntime" in err and "pip install 'gantrain[export]'" in err
    # A parity failure: one line with the number, and no folder (nor the parents it made).
    import gantrain.export.parity as parity

    real_reference = parity.reference
    monkeypatch.setattr(parity, "reference", lambda *args: real_reference(*args) + 0.5)
    err = refused(capsys, cli.main, [run, "--format", "torchscript", "--out", str(tmp_path / "p" / "ts")])
    assert "parity check failed" in err and "0.5" in err and "--tolerance 0.0001" in err
    assert not (tmp_path / "o").exists() and not (tmp_path / "p").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_the_command_exports_into_the_run_and_refuses_a_second_time(runs):
    run = runs["gan"]
    done = gantrain_export(run, "--format", "torchscript")
    assert done.returncode == 0, done.stderr
    assert f"wrote {run / 'export' / 'torchscript'}" in done.stdout and "parity of generator.pt" in done.stdout
    again = gantrain_export(run, "--format", "torchscript")
    assert again.returncode == 2 and again.stderr.strip().startswith("gantrain-export: error: ")
    assert "already exists" in again.stderr and len(again.stderr.strip().splitlines()) == 1


def gantrain_export(*args) -> object:
    return command("gantrain.export.cli", *args, cwd=Path(tempfile.gettempdir()))
