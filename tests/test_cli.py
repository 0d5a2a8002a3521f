"""The real ``gantrain`` command: errors are one line with no traceback and leave no
run directory; resume and Ctrl-C work from the command line."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import TINY, checkpoint, gantrain
from fixtures import write_mnist

SMOKE = [*TINY, "data=synthetic", "data.size=32", "data.image_size=16"]


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("gantrain: error: ") and "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def no_run_left(cwd: Path) -> bool:
    return not (cwd / "outputs").exists()


@pytest.mark.parametrize(
    "args,fragments",
    [
        (["trainer.stpes=10"], ["unknown option trainer.stpes", "gantrain --cfg job"]),
        (["trainer.steps=abc"], ["trainer.steps='abc' is not an integer"]),
        (["optim.g.lr=fast"], ["optim.g.lr='fast'"]),
        (["optim.d.lr=-1e-3"], ["optim.d.lr=-0.001 must be greater than 0"]),
        (["trainer.d_steps=0"], ["trainer.d_steps=0 must be at least 1"]),
        (["model=stylegan9"], ["model/stylegan9", "dcgan", "gan"]),
        (["loss.variant=wrong"], ["loss.variant='wrong'"]),
        (["+model.generator.depth=3"], ["unknown option model.generator.depth", "width"]),
        (["data=folder"], ["data.path is required"]),
        (["model.generator.width=0"], ["model.generator.width=0 must be at least 1"]),
        (["model.z_dim=-3"], ["model.z_dim=-3 must be at least 1"]),
        (["data.image_size=0"], ["data.image_size=0 must be at least 1"]),
        (["optim.g.lr=nan"], ["optim.g.lr=nan is not a finite number"]),
        (["loss.gp_weight=inf"], ["loss.gp_weight=inf is not a finite number"]),
        (["trainer.ema_decay=-inf"], ["trainer.ema_decay=-inf is not a finite number"]),
        (["optim.d.betas=[2,0.9]"], ["optim.d was refused by torch.optim.Adam", "beta"]),
        (["eval.metrics=[fid]"], ["eval.metrics", "fid unknown"]),
        (["eval.best=fdi", "eval.every=2"], ["eval.best='fdi' is not a metric", "classifier_fid"]),
        (["eval.best=fid"], ["eval.best=fid", "set eval.every=N"]),
        (["+baz=3"], ["unknown option baz"]),
        (["+trainer.foo=1"], ["unknown option trainer.foo"]),
        (["+model.bar=2"], ["unknown option model.bar"]),
        (["model.discriminator=0"], ["model.discriminator=0 is not a config node"]),
        (["~seed"], ["seed is required"]),
        (["data=[1,2]"], ["does not compose"]),
        (["hydra.run.dir=/proc/gantrain/run"], ["/proc/gantrain/run cannot be created or written"]),
        (["model.generator.width=100000"], ["needs at least", "GiB", "model.generator.width=100000"]),
        (["data=synthetic", "data.batch_size=10000000"], ["needs at least", "data.batch_size=10000000"]),
    ],
)
@pytest.mark.slow
def test_config_mistakes_are_one_line_before_any_run_dir(tmp_path, args, fragments):
    result = gantrain(*args, cwd=tmp_path)
    assert_one_line_error(result, *fragments)
    assert no_run_left(tmp_path)


def test_missing_dataset_says_where_files_go_and_leaves_nothing(tmp_path):
    result = gantrain("data=mnist", f"data.root={tmp_path / 'nothing'}", "data.download=false", cwd=tmp_path)
    assert_one_line_error(result, "MNIST not found", f"{tmp_path / 'nothing'}/MNIST/raw/")
    assert no_run_left(tmp_path)


def test_image_size_the_generator_cannot_make(tmp_path):
    result = gantrain(*SMOKE, "data.image_size=48", cwd=tmp_path)
    assert_one_line_error(result, "48x48", "data.image_size")
    assert no_run_left(tmp_path)


def test_conditional_model_on_unlabelled_data(tmp_path):
    result = gantrain(*SMOKE, "model.conditional=true", cwd=tmp_path)
    assert_one_line_error(result, "model.conditional=true needs class labels")
    assert no_run_left(tmp_path)


@pytest.mark.parametrize(
    "args,fragments",
    [
        (["loss=wgan_gp"], ["needs a discriminator without BatchNorm", "model.discriminator.norm=layer"]),
        (["loss=bce", "loss.gp_weight=1"], ["without BatchNorm"]),
        (["loss=wgan", "loss.clip=null"], ["Lipschitz", "loss=wgan_gp"]),
        (["model.discriminator.norm=group"], ["model.discriminator.norm='group'"]),
        (["model=cgan"], ["needs class labels"]),
        (["trainer.ema_decay=1"], ["trainer.ema_decay=1"]),
        (["data.batch_size=6000"], ["data.batch_size=6000 is larger than the dataset (32 images)"]),
        (["trainer.checkpoint_every=0"], ["trainer.checkpoint_every=0 must be at least 1"]),
        (["trainer.on_nonfinite=ignore"], ["trainer.on_nonfinite"]),
        (["+optim.d.eps=-1"], ["optim.d was refused by torch.optim.Adam", "epsilon"]),
    ],
)
@pytest.mark.slow
def test_model_and_loss_mismatches_are_one_line(tmp_path, args, fragments):
    assert_one_line_error(gantrain(*SMOKE, *args, cwd=tmp_path), *fragments)
    assert no_run_left(tmp_path)


def test_resume_needs_a_checkpoint(tmp_path):
    (tmp_path / "empty_run").mkdir()
    assert_one_line_error(gantrain(f"resume={tmp_path / 'empty_run'}", cwd=tmp_path), "no checkpoint at")
    assert_one_line_error(gantrain(f"resume={tmp_path / 'absent'}", cwd=tmp_path), "no such directory")


def test_existing_run_directory_is_never_reused(tmp_path):
    run_dir = tmp_path / "mine"
    run_dir.mkdir()
    (run_dir / "precious.txt").write_text("keep me")
    result = gantrain(*SMOKE, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert_one_line_error(result, "already exists")
    assert sorted(p.name for p in run_dir.iterdir()) == ["precious.txt"]


@pytest.mark.slow
def test_train_then_resume_from_the_command_line(tmp_path):
    run_dir = tmp_path / "outputs" / "run"
    first = gantrain(*SMOKE, "trainer.steps=4", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    original_config = (run_dir / ".hydra" / "config.yaml").read_text()

    finished = gantrain(f"resume={run_dir}", cwd=tmp_path)
    assert_one_line_error(finished, "already finished at step 4", "trainer.steps=N")

    more = gantrain(f"resume={run_dir}", "trainer.steps=6", cwd=tmp_path)
    assert more.returncode == 0, more.stderr
    state = checkpoint(run_dir)
    assert state["step"] == 6
    # The run's own overrides came back (synthetic data, tiny nets), plus the new one.
    assert "data=synthetic" in state["overrides"] and "trainer.steps=6" in state["overrides"]
    assert (run_dir / ".hydra" / "config.yaml").read_text() == original_config  # history kept
    resumed_cfg = yaml.safe_load(next((run_dir / ".hydra").glob("resume_*/config.yaml")).read_text())
    assert resumed_cfg["trainer"]["steps"] == 6 and resumed_cfg["data"]["image_size"] == 16


@pytest.mark.slow
def test_ctrl_c_writes_a_checkpoint_and_resume_continues(tmp_path):
    run_dir = tmp_path / "run"
    # speed.compile=false: the long run only keeps it training until the signal, and auto would
    # compile it first (a conv net for 10000+ steps), half a minute that this test is not about.
    args = [*SMOKE, "trainer.steps=100000", "trainer.checkpoint_every=100000", "speed.compile=false"]
    args.append(f"hydra.run.dir={run_dir}")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gantrain.cli", *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while not list((run_dir / "tb").glob("events*")) and time.time() < deadline:
        time.sleep(0.2)  # the event file appears once training is about to start
    time.sleep(2.0)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert f"gantrain resume={run_dir}" in stderr
    step = checkpoint(run_dir)["step"]
    assert 0 < step < 100000
    more = gantrain(f"resume={run_dir}", f"trainer.steps={step + 2}", cwd=tmp_path)
    assert more.returncode == 0, more.stderr
    assert checkpoint(run_dir)["step"] == step + 2


def test_a_bad_checkpoint_is_refused_in_one_line(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.pt").write_bytes(b"not a checkpoint")
    assert_one_line_error(gantrain(f"resume={run_dir}", cwd=tmp_path), "cannot read checkpoint")


def test_mnist_from_the_command_line_with_data_root(tmp_path):
    write_mnist(tmp_path / "data")
    result = gantrain(
        *TINY,
        "data=mnist",
        "data.download=false",
        "trainer.steps=2",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
        env={"GANTRAIN_DATA": str(tmp_path / "data")},
    )
    assert result.returncode == 0, result.stderr
    assert checkpoint(tmp_path / "run")["data_spec"]["name"] == "mnist"


@pytest.mark.slow
def test_multirun_sweep_makes_one_run_per_value(tmp_path):
    result = gantrain("-m", *SMOKE, "trainer.steps=2", "seed=0,1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    runs = sorted((tmp_path / "outputs" / "multirun").glob("*/*/*/checkpoints/last.pt"))
    assert len(runs) == 2
    assert [checkpoint(p.parents[1])["step"] for p in runs] == [2, 2]
