"""End-to-end training in-process: every model x data pair, TensorBoard contents,
repeatability, and resume equivalence."""

import pytest
import torch
from conftest import TINY, TINY_MLP, checkpoint, events, on_device, train
from fixtures import write_celeba, write_folder, write_mnist

SCALARS = {"loss/d", "loss/g", "d/real", "d/fake", "lr/g", "lr/d", "perf/images_per_sec"}


def data_overrides(name, tmp_path):
    root = tmp_path / "data"
    if name == "mnist":
        write_mnist(root)
        return ["data=mnist", f"data.root={root}", "data.download=false"]
    if name == "fashion_mnist":
        write_mnist(root, folder="FashionMNIST")
        return ["data=fashion_mnist", f"data.root={root}", "data.download=false"]
    if name == "celeba":
        write_celeba(root, n=12)
        return ["data=celeba", f"data.root={root}", "data.num_workers=0", "data.image_size=32"]
    if name == "folder":
        write_folder(root, {"": 10}, size=(20, 20))
        return ["data=folder", f"data.path={root}", "data.num_workers=0", "data.image_size=16"]
    if name == "synthetic":
        return ["data=synthetic", "data.size=32", "data.image_size=16"]
    return [f"data={name}"]


@pytest.mark.parametrize("model", ["dcgan", "gan"])
@pytest.mark.parametrize("data", ["mnist_sample", "mnist", "fashion_mnist", "celeba", "folder", "synthetic"])
@pytest.mark.device
def test_two_steps_of_every_model_on_every_dataset(tmp_path, model, data, device):
    base = TINY if model == "dcgan" else TINY_MLP
    run_dir = tmp_path / "run"
    assert train(run_dir, on_device([*base, *data_overrides(data, tmp_path), "trainer.steps=2"], device)) == "finished"
    state = checkpoint(run_dir)
    assert state["step"] == 2 and state["images_seen"] == 16
    assert (run_dir / "samples" / "samples_00000002.png").is_file()


@pytest.mark.device
def test_conditional_dcgan_on_labelled_data(tmp_path, device):
    run_dir = tmp_path / "run"
    train(run_dir, on_device([*TINY, "model.conditional=true", "trainer.num_samples=20"], device))
    state = checkpoint(run_dir)
    assert state["fixed"]["y"].tolist() == [k for k in range(10) for _ in range(2)]  # a row per class


@pytest.mark.device
def test_tensorboard_holds_scalars_grids_config_and_environment(tmp_path, device):
    run_dir = tmp_path / "run"
    train(run_dir, on_device([*TINY, "trainer.steps=4", "trainer.log_every=2", "trainer.sample_every=2"], device))
    ea = events(run_dir)
    tags = ea.Tags()
    assert SCALARS <= set(tags["scalars"])
    assert [e.step for e in ea.Scalars("loss/d")] == [2, 4]
    assert [e.step for e in ea.Images("samples")] == [2, 4]
    text = {t.split("/")[0] for t in tags["tensors"]}
    assert {"config", "environment"} <= text
    config = ea.Tensors("config/text_summary")[0]
    assert config.step == 0 and b"DCGANGenerator" in config.tensor_proto.string_val[0]
    env = ea.Tensors("environment/text_summary")[0].tensor_proto.string_val[0]
    assert b"git revision" in env and b"torch" in env and b"device" in env
    lr = ea.Scalars("lr/g")[0].value
    assert lr == pytest.approx(2e-4)


@pytest.mark.slow
def test_same_seed_same_losses_other_seed_other_losses(tmp_path):
    def losses(name, seed):
        run_dir = tmp_path / name
        train(run_dir, [*TINY, "trainer.steps=6", "trainer.log_every=1", f"seed={seed}"])
        return [e.value for e in events(run_dir).Scalars("loss/g")]

    first = losses("a", 1)
    assert losses("b", 1) == first
    assert losses("c", 2) != first


WGAN_GP_EMA = ["loss=wgan_gp", "model.discriminator.norm=layer", "trainer.d_steps=2", "trainer.ema_decay=0.9"]


@pytest.mark.parametrize(
    "model,cut,extra",
    [
        ("dcgan", 6, []),
        ("gan", 6, []),
        ("dcgan", 5, []),  # 5: an epoch boundary
        ("dcgan", 6, WGAN_GP_EMA),
    ],
    ids=["dcgan", "gan", "epoch", "wgan_gp_ema"],
)
@pytest.mark.slow
def test_resume_gives_the_same_weights_as_one_long_run(tmp_path, model, cut, extra):
    base = TINY if model == "dcgan" else TINY_MLP
    base = [*base, "trainer.checkpoint_every=100", "data=synthetic", "data.size=40", "data.image_size=16", *extra]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(straight, [*base, "trainer.steps=12"])  # 12 steps of batch 8 = 2.4 epochs of 5 batches
    train(resumed, [*base, f"trainer.steps={cut}"])
    assert checkpoint(resumed)["step"] == cut
    train(resumed, [*base, "trainer.steps=12", f"resume={resumed}"])
    a, b = checkpoint(straight), checkpoint(resumed)
    assert b["step"] == 12 and b["images_seen"] == a["images_seen"]
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert ("ema" in a) == bool(extra)
    for key, value in a.get("ema", {}).get("module", {}).items():
        assert torch.equal(value, b["ema"]["module"][key]), key
    for side in ("g", "d"):
        for k, state in a["optim"][side]["state"].items():
            assert torch.equal(state["exp_avg"], b["optim"][side]["state"][k]["exp_avg"])
    assert a["stream"] == b["stream"]


def test_betas_typed_as_integers_on_the_command_line_are_accepted(tmp_path):
    # `optim.d.betas=[0,0.9]` arrives as [int, float]; torch's Adam wants two floats.
    run_dir = tmp_path / "run"
    assert train(run_dir, [*TINY, "optim.g.betas=[0,0.9]", "optim.d.betas=[0,0]", "trainer.steps=1"]) == "finished"
    assert checkpoint(run_dir)["optim"]["d"]["param_groups"][0]["betas"] == (0.0, 0.0)
