"""Every experiment in conf/experiment/ trains 2 steps on tiny data in its real layout,
then resumes for a third, with the experiment's own model, loss, optimizer and critic
steps (only widths and the batch size shrunk)."""

from pathlib import Path

import pytest
import torch
from conftest import checkpoint, compose_config, events, train
from fixtures import write_celeba, write_mnist, write_paired, write_unpaired

from gantrain.config import CONF_DIR

EXPERIMENTS = sorted(path.stem for path in (Path(CONF_DIR) / "experiment").glob("*.yaml"))


def tiny_overrides(experiment: str, root: Path) -> list[str]:
    cfg = compose_config([f"experiment={experiment}"])
    data = cfg.data._target_.rsplit(".", 1)[1]
    if data in ("mnist", "fashion_mnist"):
        write_mnist(root, folder={"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}[data])
        data_overrides = [f"data.root={root}", "data.download=false"]
    elif data == "celeba":
        write_celeba(root, n=12)
        data_overrides = [f"data.root={root}", "data.num_workers=0"]
    elif data == "facades":
        write_paired(root / "facades", {"train": 10, "val": 2}, size=(80, 40))
        data_overrides = [f"data.root={root}", "data.num_workers=0", "data.image_size=32", "data.load_size=36"]
    elif data == "unpaired_folder":
        write_unpaired(root, {"trainA": 10, "trainB": 10, "testA": 2, "testB": 2}, size=(40, 40))
        data_overrides = [f"data.path={root}", "data.num_workers=0", "data.image_size=32", "data.load_size=36"]
    else:
        raise AssertionError(f"no tiny data for {data}: add it here")
    if "mlp" in cfg.model.generator._target_:
        nets = ["model.generator.hidden=16", "model.discriminator.hidden=16"]
    else:
        nets = ["model.generator.width=8", "model.discriminator.width=8"]
    batch = 1 if cfg.data.batch_size == 1 else 8
    return [
        f"experiment={experiment}",
        *data_overrides,
        *nets,
        f"data.batch_size={batch}",
        "device=cpu",
        "trainer.progress=false",
        "trainer.log_every=1",
        "trainer.num_samples=8",
    ]


def test_the_promised_experiments_exist():
    assert set(EXPERIMENTS) >= {
        "gan_mnist",
        "dcgan_mnist",
        "dcgan_celeba",
        "wgan_gp_mnist",
        "wgan_gp_celeba",
        "cgan_mnist",
        "cgan_fashion_mnist",
        "cgan_celeba",
        "wgan_mnist",
        "pix2pix_facades",
        "cyclegan_horse2zebra",
    }


@pytest.mark.parametrize("experiment", EXPERIMENTS)
@pytest.mark.slow
def test_experiment_runs_two_steps_and_resumes(tmp_path, experiment):
    base = tiny_overrides(experiment, tmp_path / "data")
    run_dir = tmp_path / "run"
    assert train(run_dir, [*base, "trainer.steps=2"]) == "finished"
    first = checkpoint(run_dir)
    cfg = compose_config(base)
    assert first["step"] == 2 and first["images_seen"] == 2 * cfg.trainer.d_steps * cfg.data.batch_size
    assert train(run_dir, [*base, "trainer.steps=3", f"resume={run_dir}"]) == "finished"
    second = checkpoint(run_dir)
    assert second["step"] == 3
    assert any(not torch.equal(value, second["model"][key]) for key, value in first["model"].items())
    scalars = set(events(run_dir).Tags()["scalars"])
    assert {"loss/d", "loss/g"} <= scalars
    if cfg.loss.gp_weight:
        assert "penalty/gp" in scalars
