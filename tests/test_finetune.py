"""Fine-tuning (``init_from``, gantrain/init_from.py) and Freeze-D (``model.discriminator.freeze``,
gantrain/nets/freeze.py): a new run starts from another run's G, D and EMA weights and
nothing else; a source that does not fit is one line; a resumed fine-tuning run never
reads its source again; frozen blocks of every kind of D get no update."""

import json

import pytest
import torch
from conftest import TINY, checkpoint, compose_config, gantrain, train
from fixtures import write_paired, write_unpaired

from gantrain.build import build_trainer
from gantrain.errors import UserError
from gantrain.nets.freeze import blocks_of

QUIET = ["trainer.sample_every=1000", "trainer.log_every=1000", "trainer.checkpoint_every=1000"]
TRANSLATION = [
    "model.generator.width=8",
    "model.discriminator.width=8",
    "device=cpu",
    "trainer=smoke",
    "data.image_size=32",
    "data.load_size=36",
    "data.num_workers=0",
    "trainer.num_samples=2",
]


def built(run_dir, overrides):
    """The trainer a run of ``overrides`` starts with, before its first step."""
    return build_trainer(compose_config(overrides), run_dir, overrides)


def net_state(prefix: str, model_state: dict) -> dict:
    return {k[len(prefix) :]: v for k, v in model_state.items() if k.startswith(prefix)}


def assert_same(state: dict, expected: dict) -> None:
    assert state.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(state[key], value), key


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A tiny DCGAN with an EMA, trained 4 steps: the run to fine-tune from."""
    run_dir = tmp_path_factory.mktemp("source") / "run"
    train(run_dir, [*TINY, "trainer.ema_decay=0.9"])
    return run_dir


def test_init_from_loads_every_weight_and_nothing_else(tmp_path, source):
    saved = checkpoint(source)
    run_dir = tmp_path / "run"
    trainer = built(run_dir, [*TINY, "trainer.ema_decay=0.9", f"init_from={source}"])
    try:
        assert_same(trainer.model.G.state_dict(), net_state("G.", saved["model"]))  # BatchNorm statistics too
        assert_same(trainer.model.D.state_dict(), net_state("D.", saved["model"]))
        assert_same(trainer.ema.shadow.state_dict(), saved["ema"]["module"])  # the source's EMA, not its G
        assert trainer.ema.updates == 0  # its warm-up starts again
        assert trainer.step == trainer.images_seen == 0 and trainer.best is None
        assert not trainer.opt_g.state and not trainer.opt_d.state  # no moments
        assert [s.last_epoch for s in trainer.schedulers] == [0, 0]
        assert trainer.stream.state_dict() != saved["stream"]
    finally:
        trainer.logger.close()
    record = json.loads((run_dir / "init_from.json").read_text())
    assert record["checkpoint"] == str((source / "checkpoints" / "last.pt").resolve())
    assert record["step"] == saved["step"] == 4 and record["init_from"] == str(source)
    assert record["config"]["model"]["generator"]["width"] == 8
    assert record["loaded"] == ["G", "D", "EMA (from the source's EMA)"]


def test_init_from_a_checkpoint_file_without_an_ema_takes_g_for_the_ema(tmp_path, source):
    plain = tmp_path / "plain"
    train(plain, TINY)  # no EMA
    saved = checkpoint(plain)
    trainer = built(tmp_path / "run", [*TINY, "trainer.ema_decay=0.9", f"init_from={plain}/checkpoints/last.pt"])
    try:
        assert_same(trainer.ema.shadow.state_dict(), net_state("G.", saved["model"]))
        assert_same(trainer.model.D.state_dict(), net_state("D.", saved["model"]))
    finally:
        trainer.logger.close()
    # A run without an EMA takes G and D from a source that has one.
    trainer = built(tmp_path / "run2", [*TINY, f"init_from={source}"])
    try:
        assert trainer.ema is None
        assert_same(trainer.model.G.state_dict(), net_state("G.", checkpoint(source)["model"]))
    finally:
        trainer.logger.close()
    assert json.loads((tmp_path / "run2" / "init_from.json").read_text())["loaded"] == ["G", "D"]


def test_an_exported_generator_is_refused_in_one_line(tmp_path, source):
    with pytest.raises(UserError, match=r"init_from=.*generator\.pt is an exported generator \(G alone\)"):
        built(tmp_path / "run", [*TINY, f"init_from={source}/checkpoints/generator.pt"])
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_cyclegan_pools_are_not_loaded(tmp_path):
    write_unpaired(tmp_path / "h2z", {"trainA": 5, "trainB": 4, "testA": 2, "testB": 2}, size=(40, 40))
    args = ["model=cyclegan", "loss=lsgan", "data=unpaired_folder", f"data.path={tmp_path / 'h2z'}", *TRANSLATION]
    args += ["model.pool_size=3"]
    train(tmp_path / "source", args)
    saved = checkpoint(tmp_path / "source")
    assert int(saved["model"]["pools.A.count"]) == 3  # the source's pools hold fakes
    trainer = built(tmp_path / "run", [*args, f"init_from={tmp_path / 'source'}"])
    try:
        state = trainer.model.state_dict()
        assert_same(net_state("G.", state), net_state("G.", saved["model"]))
        assert_same(net_state("D.", state), net_state("D.", saved["model"]))
        assert int(state["pools.A.count"]) == int(state["pools.B.count"]) == 0
        assert not state["pools.A.images"].any()
    finally:
        trainer.logger.close()


def test_augmentation_state_is_not_loaded(tmp_path):
    train(tmp_path / "source", [*TINY, "augment=ada"])
    saved = checkpoint(tmp_path / "source")
    saved["model"]["augment.p"] = torch.tensor(0.5)  # an adapted p, which must not carry over
    torch.save(saved, tmp_path / "adapted.pt")
    trainer = built(tmp_path / "run", [*TINY, "augment=ada", f"init_from={tmp_path / 'adapted.pt'}"])
    try:
        assert float(trainer.model.augment.p) == 0.0  # augment.initial_p
        assert_same(trainer.model.D.state_dict(), net_state("D.", saved["model"]))
    finally:
        trainer.logger.close()


def test_a_source_of_another_width_is_one_line_and_leaves_no_run_dir(tmp_path, source):
    run_dir = tmp_path / "run"
    out = gantrain(*TINY, "model.generator.width=16", f"init_from={source}", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert lines[0].startswith(f"gantrain: error: init_from={source}: ")
    assert "G.net.0.weight has shape [64, 32, 3, 3] in the source and [64, 64, 3, 3] here" in lines[0]
    assert "model.generator.width=16 (source: 8)" in lines[0]
    assert not run_dir.exists()


def test_a_missing_source_is_one_line_before_any_run_dir(tmp_path):
    run_dir = tmp_path / "run"
    out = gantrain(*TINY, f"init_from={tmp_path / 'nowhere'}", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip() == (
        f"gantrain: error: init_from={tmp_path / 'nowhere'}: no such file or directory: point init_from at a "
        f"run directory or at a checkpoint file (its checkpoints/last.pt or best.pt)"
    )
    assert not run_dir.exists()


@pytest.mark.slow
def test_resuming_a_fine_tuning_run_does_not_read_the_source_again(tmp_path, source):
    copy = tmp_path / "source"  # a source that can be deleted
    train(copy, TINY)
    run_dir = tmp_path / "run"
    train(run_dir, [*TINY, f"init_from={copy}", "model.discriminator.freeze=2", "trainer.steps=2"])
    first = checkpoint(run_dir)
    for path in (copy / "checkpoints").iterdir():
        path.unlink()  # reading the source now would fail
    out = gantrain(f"resume={run_dir}", "trainer.steps=4", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    resumed = checkpoint(run_dir)
    assert resumed["step"] == 4 and "init_from=" in " ".join(resumed["overrides"])
    # The parameters of the two frozen blocks (BatchNorm's running statistics are no parameters).
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    frozen = [
        k for k in first["model"] if k.startswith(("D.net.0.", "D.net.2.", "D.net.3.")) and not k.endswith(buffers)
    ]
    assert frozen and all(torch.equal(first["model"][k], resumed["model"][k]) for k in frozen)
    assert json.loads((run_dir / "init_from.json").read_text())["checkpoint"].startswith(str(copy.resolve()))


# -- Freeze-D -------------------------------------------------------------------------------


def gan(tmp_path):
    return ["model=gan", "model.generator.hidden=16", "model.discriminator.hidden=16", *TINY[2:]]


def dcgan(tmp_path):
    return TINY


def acgan(tmp_path):
    return ["model=acgan", *TINY]


def pix2pix(tmp_path):
    write_paired(tmp_path / "data" / "facades", {"train": 6, "val": 3}, size=(80, 40))
    return ["model=pix2pix", "data=facades", f"data.root={tmp_path / 'data'}", *TRANSLATION]


def cyclegan(tmp_path):
    write_unpaired(tmp_path / "h2z", {"trainA": 5, "trainB": 4, "testA": 2, "testB": 2}, size=(40, 40))
    return ["model=cyclegan", "loss=lsgan", "data=unpaired_folder", f"data.path={tmp_path / 'h2z'}", *TRANSLATION]


def leaf_discriminators(D):
    return list(D.values()) if isinstance(D, torch.nn.ModuleDict) else [D]


def stack(D):
    return D.body.net if hasattr(D, "body") else D.net  # AC-GAN's D: the DCGAN stack and two heads


@pytest.mark.parametrize("setup", [gan, dcgan, acgan, pix2pix, cyclegan])
def test_frozen_blocks_get_no_update(tmp_path, setup):
    """freeze=2 freezes exactly the first two blocks of every D (CycleGAN's two): their
    weights are bit-identical after training steps, and every other weight of D moved."""
    trainer = built(tmp_path / "run", [*setup(tmp_path), *QUIET, "trainer.steps=3", "model.discriminator.freeze=2"])
    before = {k: v.clone() for k, v in trainer.model.D.named_parameters()}
    trainer.fit()
    trainer.logger.close()
    for D in leaf_discriminators(trainer.model.D):
        blocks = blocks_of(stack(D))
        frozen = {id(p) for block in blocks[:2] for layer in block for p in layer.parameters()}
        assert frozen and {id(p) for p in D.parameters() if not p.requires_grad} == frozen
    for name, p in trainer.model.D.named_parameters():
        if p.requires_grad:
            assert not torch.equal(p, before[name]), f"{name} was not trained"
        else:
            assert torch.equal(p, before[name]), f"{name} is frozen and changed"
    assert {id(p) for group in trainer.opt_d.param_groups for p in group["params"]} == {
        id(p) for p in trainer.model.D.parameters() if p.requires_grad
    }


def test_freezing_every_block_names_the_key_and_the_maximum(tmp_path):
    out = gantrain(*TINY, "model.discriminator.freeze=4", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "gantrain: error: model.discriminator.freeze=4 covers all 4 blocks of this discriminator, its output "
        "layer included, and leaves nothing to train: set model.discriminator.freeze to at most 3"
    )
    assert not (tmp_path / "run").exists()
