"""The fast path (config group ``speed``) on the CPU: each switch is reachable and does
what it says; bf16 autocast keeps the gradient penalty correct; a torch.compile that
fails at the first step falls back to eager training with one warning and the same
result as an eager run; ``auto`` on the CPU is the measured choice (``CPU_AUTO``), compiling
only long runs on machines with a C++ compiler; the CPU fast path trains like eager."""

import logging
import sys
from pathlib import Path

import pytest
import torch
from conftest import TINY, TINY_MLP, checkpoint, compose_config, on_device, train
from fixtures import write_folder, write_paired, write_unpaired
from torch import nn

import gantrain.engine.speed as speed_module
from gantrain.engine.speed import Speed, SpeedConfig
from gantrain.errors import UserError
from gantrain.losses.base import gradient_penalty

FAST = ["speed.amp=true", "speed.channels_last=true", "speed.fused_optim=true"]


def test_auto_on_the_cpu_turns_on_what_won_there_and_says_why_the_rest_stays_off(monkeypatch):
    monkeypatch.setattr(speed_module, "cpp_compiler", lambda: "/usr/bin/g++")
    cpu = torch.device("cpu")
    long_run = SpeedConfig().resolve(cpu, steps=speed_module.CPU_COMPILE_MIN_STEPS)
    assert (long_run.channels_last, long_run.compile, long_run.fused_optim, long_run.amp) == (True, True, True, False)
    assert not (long_run.cudnn_benchmark or long_run.tf32)  # CUDA-only switches
    assert long_run.reasons == ("amp off (slower on the CPU when measured)",)
    short_run = SpeedConfig().resolve(cpu, steps=speed_module.CPU_COMPILE_MIN_STEPS - 1)
    assert not short_run.compile and short_run.channels_last and short_run.fused_optim
    assert any("compile off (9999 steps: under 10000" in reason for reason in short_run.reasons)
    # Asked for, a switch is on whatever the run's length; refused, off whatever auto says.
    assert SpeedConfig(compile=True, amp=True).resolve(cpu, steps=10).compile is True
    assert SpeedConfig(channels_last=False).resolve(cpu, steps=10).channels_last is False
    monkeypatch.setattr(speed_module, "cpp_compiler", lambda: None)
    no_compiler = SpeedConfig().resolve(cpu, steps=10**6)
    assert not no_compiler.compile and "compile off (no C++ compiler for inductor: install g++" in "; ".join(
        no_compiler.reasons
    )
    assert Speed(device=torch.device("meta")) == SpeedConfig().resolve(torch.device("meta"))  # elsewhere: off
    mlp = SpeedConfig().resolve(cpu, steps=10**6, convolutional=False)  # measured: only the fused Adam wins there
    assert (mlp.channels_last, mlp.compile, mlp.fused_optim) == (False, False, True)


def test_an_mlp_run_on_the_cpu_gets_only_the_fused_optimizer(tmp_path):
    train(tmp_path / "run", [*TINY_MLP, "trainer.steps=2"])
    env = checkpoint(tmp_path / "run")["env"]
    assert env["fast path"] == "fused_optim"
    assert "channels_last off (no convolutions" in env["fast path: auto left off"]


def test_the_run_records_what_auto_chose_on_the_cpu_and_why(tmp_path):
    train(tmp_path / "run", [*TINY, "trainer.steps=2"])
    env = checkpoint(tmp_path / "run")["env"]
    assert env["fast path"] == "channels_last, fused_optim"
    assert "compile off (2 steps: under 10000, too few to pay for it)" in env["fast path: auto left off"]


def test_auto_is_on_for_cuda():
    cuda = SpeedConfig(amp=False).resolve(torch.device("cuda"))
    assert (cuda.channels_last, cuda.compile, cuda.fused_optim, cuda.cudnn_benchmark, cuda.tf32, cuda.amp) == (
        True,
        True,
        True,
        True,
        True,
        False,
    )


@pytest.mark.parametrize("native,expected", [(True, True), (False, False)], ids=["ampere", "volta"])
def test_auto_amp_is_on_only_for_gpus_that_compute_in_bf16(monkeypatch, native, expected):
    def is_bf16_supported(including_emulation: bool = True) -> bool:
        return including_emulation or native  # as torch answers on an A100 and on a V100

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    assert SpeedConfig().resolve(torch.device("cuda")).amp is expected
    assert SpeedConfig(amp=True).resolve(torch.device("cuda")).amp is True  # asked for: on regardless


@pytest.mark.parametrize("value", ["yes", 1, "bf16"])
def test_a_switch_that_is_not_auto_true_or_false_is_one_line(tmp_path, value):
    with pytest.raises(UserError, match=r"speed.amp=\S+ is not true or false or one of auto"):
        train(tmp_path / "run", [*TINY, f"speed.amp={value}"])
    assert not (tmp_path / "run").exists()


class SmallCritic(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 16, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(16, 32, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            nn.Linear(32 * 4 * 4, 1),
        )

    def forward(self, x, y=None):
        return self.net(x)


def test_the_gradient_penalty_under_bf16_autocast_matches_float32():
    torch.manual_seed(0)
    D = SmallCritic()
    real, fake = torch.randn(16, 3, 16, 16), torch.randn(16, 3, 16, 16).to(torch.bfloat16)
    with torch.random.fork_rng():
        exact = gradient_penalty(D, real, fake.float(), None)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = gradient_penalty(D, real, fake, None)
    assert mixed.dtype == torch.float32  # reduced at full precision
    assert exact.item() > 0.05  # a penalty worth comparing, not ~0
    assert mixed.item() == pytest.approx(exact.item(), rel=0.03)
    # And it still trains D: its gradient under autocast points the same way.
    grads = []
    for context in (
        torch.autocast("cpu", dtype=torch.bfloat16, enabled=False),
        torch.autocast("cpu", dtype=torch.bfloat16),
    ):
        D.zero_grad()
        with torch.random.fork_rng(), context:
            gradient_penalty(D, real, fake.float(), None).backward()
        # (the last bias gets no gradient from a penalty on input gradients)
        grads.append(torch.cat([p.grad.flatten() for p in D.parameters() if p.grad is not None]))
    assert torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0) > 0.98


@pytest.mark.parametrize(
    "extra",
    [
        [],
        ["loss=wgan_gp", "model.discriminator.norm=layer"],
        ["loss=bce", "loss.r1_weight=1", "model.discriminator.norm=layer"],
        TINY_MLP,
    ],
    ids=["dcgan", "wgan_gp", "r1", "mlp"],
)
@pytest.mark.device
def test_training_with_every_cpu_switch_on(tmp_path, extra, device):
    base = [] if extra is TINY_MLP else TINY
    train(tmp_path / "run", on_device([*base, *FAST, *extra, "trainer.steps=4", "trainer.log_every=2"], device))
    state = checkpoint(tmp_path / "run")
    assert state["step"] == 4 and "bf16 autocast" in state["env"]["fast path"]
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert state["optim"]["d"]["param_groups"][0]["fused"] is True


@pytest.mark.parametrize("setup", ["pix2pix", "cyclegan"])
@pytest.mark.device
def test_translation_models_train_under_autocast(tmp_path, setup, device):
    nets = [
        "model.generator.width=8",
        "model.discriminator.width=8",
        "device=cpu",
        "trainer.progress=false",
        "data.image_size=32",
        "data.load_size=36",
        "data.num_workers=0",
        "trainer.steps=2",
    ]
    if setup == "pix2pix":
        write_paired(tmp_path / "data" / "facades", {"train": 4, "val": 2}, size=(80, 40))
        data = ["model=pix2pix", "data=facades", f"data.root={tmp_path / 'data'}"]
    else:
        write_unpaired(tmp_path / "h2z", {"trainA": 3, "trainB": 3, "testA": 2, "testB": 2}, size=(40, 40))
        data = [
            "model=cyclegan",
            "loss=lsgan",
            "data=unpaired_folder",
            f"data.path={tmp_path / 'h2z'}",
            "model.pool_size=2",
        ]
    train(tmp_path / "run", on_device([*data, *nets, *FAST, "trainer.num_samples=2"], device))
    assert checkpoint(tmp_path / "run")["step"] == 2


def test_channels_last_reaches_the_nets_and_the_batches(tmp_path):
    from gantrain.build import build_trainer

    cfg = compose_config([*TINY, "speed.channels_last=true"])
    trainer = build_trainer(cfg, tmp_path / "run", [])
    conv = next(p for p in trainer.model.D.parameters() if p.dim() == 4 and p.shape[-1] > 1)
    assert conv.is_contiguous(memory_format=torch.channels_last)
    batch = trainer.speed.prepare_batch({"image": torch.zeros(2, 3, 8, 8), "label": torch.zeros(2)})
    assert batch["image"].is_contiguous(memory_format=torch.channels_last)
    trainer.logger.close()


@pytest.mark.slow
def test_compile_trains_and_keeps_checkpoint_keys(tmp_path, monkeypatch):
    monkeypatch.setattr(speed_module, "COMPILE_BACKEND", "eager")  # dynamo's tracing, no code generation
    train(tmp_path / "plain", [*TINY, "trainer.steps=3"])
    train(tmp_path / "compiled", [*TINY, "speed.compile=true", "trainer.steps=3"])
    plain, compiled = checkpoint(tmp_path / "plain"), checkpoint(tmp_path / "compiled")
    assert plain["model"].keys() == compiled["model"].keys()
    for key, value in plain["model"].items():
        assert torch.allclose(value.float(), compiled["model"][key].float(), atol=1e-5), key


@pytest.mark.slow
def test_a_failing_compile_falls_back_to_eager_with_the_eager_result(tmp_path, monkeypatch, caplog):
    def broken_backend(graph_module, example_inputs):
        raise RuntimeError("no C++ compiler on this machine")

    monkeypatch.setattr(speed_module, "COMPILE_BACKEND", broken_backend)
    train(tmp_path / "eager", [*TINY, "trainer.steps=3", "trainer.ema_decay=0.9"])
    with caplog.at_level(logging.WARNING, logger="gantrain"):
        train(tmp_path / "fallback", [*TINY, "speed.compile=true", "trainer.steps=3", "trainer.ema_decay=0.9"])
    warnings = [r.getMessage() for r in caplog.records if "torch.compile failed" in r.getMessage()]
    assert len(warnings) == 1 and "speed.compile=false" in warnings[0] and "C++ compiler" in warnings[0]
    eager, fallback = checkpoint(tmp_path / "eager"), checkpoint(tmp_path / "fallback")
    assert fallback["step"] == 3 and fallback["images_seen"] == eager["images_seen"]
    for key, value in eager["model"].items():  # restored to before the failed step: the same run
        assert torch.equal(value, fallback["model"][key]), key
    assert torch.equal(eager["rng"]["torch"], fallback["rng"]["torch"])


@pytest.mark.slow
def test_a_compile_failing_in_the_generator_update_falls_back_with_d_trainable(tmp_path, monkeypatch):
    """The late failure a GPU meets most: compiling D again for G's update (D frozen).
    The eager retry must find D trainable again and no checkpoint that was never written."""
    from gantrain.build import build_trainer
    from gantrain.engine.loop import Trainer

    trainers = []

    def fails_while_d_is_frozen(graph_module, example_inputs):
        if not any(p.requires_grad for p in trainers[0].model.D.parameters()):
            raise RuntimeError("cannot compile the frozen discriminator")
        return graph_module.forward

    after_fallback = []
    train_eagerly = Trainer._train_eagerly

    def record(self, failure):
        train_eagerly(self, failure)
        after_fallback.append((self.checkpoint_step, all(p.requires_grad for p in self.model.D.parameters())))

    monkeypatch.setattr(speed_module, "COMPILE_BACKEND", fails_while_d_is_frozen)
    monkeypatch.setattr(Trainer, "_train_eagerly", record)
    overrides = [*TINY, "speed.compile=true", "trainer.steps=3", "trainer.checkpoint_every=100"]
    train(tmp_path / "eager", [*TINY, "trainer.steps=3"])
    trainers.append(build_trainer(compose_config(overrides), tmp_path / "fallback", overrides))
    assert trainers[0].fit() == "finished"
    trainers[0].logger.close()
    assert after_fallback == [(None, True)]
    eager, fallback = checkpoint(tmp_path / "eager"), checkpoint(tmp_path / "fallback")
    for key, value in eager["model"].items():
        assert torch.equal(value, fallback["model"][key]), key


def test_a_penalised_discriminator_stays_eager(tmp_path, monkeypatch):
    monkeypatch.setattr(speed_module, "COMPILE_BACKEND", "eager")
    from gantrain.build import build_trainer

    cfg = compose_config([*TINY, "speed.compile=true", "loss=wgan_gp", "model.discriminator.norm=layer"])
    trainer = build_trainer(cfg, tmp_path / "run", [])
    assert trainer.model.G._compiled_call_impl is not None and trainer.model.D._compiled_call_impl is None
    trainer.logger.close()


# Reading a tensor's value on the host (these methods) makes the CPU wait for the GPU,
# which stalls the launch queue every step. On the CPU nothing waits, but the calls are
# the same, so they can be caught here: any of them from gantrain's code during a step is
# a sync on CUDA. (Reads at log steps, outside the step, are by design.)
HOST_READS = ("item", "__bool__", "__float__", "__int__", "tolist", "numpy", "cpu", "__index__")
GANTRAIN_DIR = str(Path(speed_module.__file__).resolve().parents[1])
HOST_SIDE = ("__getitem__", "_epoch_sampler", "item_seeds")


@pytest.mark.parametrize(
    "extra",
    [
        ["trainer.ema_decay=0.9", "trainer.lr_decay_start=1"],
        ["loss=wgan_gp", "model.discriminator.norm=layer", "trainer.d_steps=2"],
        ["loss=wgan"],
        ["loss=bce", "loss.r1_weight=1", "model.discriminator.norm=layer", *FAST],
        ["model.conditional=true"],
        "folder-hflip",
        "pix2pix",
        "cyclegan",
    ],
    ids=["dcgan-ema-decay", "wgan_gp", "wgan-clip", "r1-fast", "cgan", "folder-hflip", "pix2pix", "cyclegan"],
)
@pytest.mark.device
def test_a_training_step_never_reads_a_tensor_back_to_the_host(tmp_path, monkeypatch, extra, device):
    from gantrain.engine.loop import Trainer

    if extra == "folder-hflip":  # the DataLoader stream, with flips on the device
        write_folder(tmp_path / "pets", {"cats": 6, "dogs": 6}, size=(20, 20))
        extra = [
            "data=folder",
            f"data.path={tmp_path / 'pets'}",
            "data.image_size=16",
            "data.hflip=true",
            "data.num_workers=0",
            "data.batch_size=4",
        ]
    elif extra == "pix2pix":
        write_paired(tmp_path / "data" / "facades", {"train": 4, "val": 2}, size=(80, 40))
        extra = [
            "model=pix2pix",
            "data=facades",
            f"data.root={tmp_path / 'data'}",
            "data.image_size=32",
            "data.load_size=36",
            "data.num_workers=0",
            "data.batch_size=2",
        ]
    elif extra == "cyclegan":  # the pool fills in 2 steps, then swaps
        write_unpaired(tmp_path / "h2z", {"trainA": 3, "trainB": 3, "testA": 2, "testB": 2}, size=(40, 40))
        extra = [
            "model=cyclegan",
            "loss=lsgan",
            "data=unpaired_folder",
            f"data.path={tmp_path / 'h2z'}",
            "model.pool_size=2",
            "data.image_size=32",
            "data.load_size=36",
            "data.num_workers=0",
            "data.batch_size=1",
            "trainer.num_samples=2",
        ]
    reads, in_step = [], [False]

    def in_item(frame) -> bool:
        """Host work on tensors built on the host: a dataset's ``__getitem__`` (in the
        DataLoader's workers on a GPU machine, in this process here with num_workers=0),
        and the once-an-epoch order and flip seeds (the permutation is drawn on the CPU)."""
        while frame is not None:
            if frame.f_code.co_name in HOST_SIDE and "/data/" in frame.f_code.co_filename:
                return True
            frame = frame.f_back
        return False

    def trap(name, original):
        def read(tensor, *args, **kwargs):
            frame = sys._getframe(1)
            if in_step[0] and frame.f_code.co_filename.startswith(GANTRAIN_DIR) and not in_item(frame):
                reads.append(f"Tensor.{name} at {frame.f_code.co_filename}:{frame.f_lineno}")
            return original(tensor, *args, **kwargs)

        return read

    for name in HOST_READS:
        monkeypatch.setattr(torch.Tensor, name, trap(name, getattr(torch.Tensor, name)))
    update = Trainer._update

    def step(self, batches):
        in_step[0] = True
        try:
            return update(self, batches)
        finally:
            in_step[0] = False

    monkeypatch.setattr(Trainer, "_update", step)
    train(tmp_path / "run", on_device([*TINY, *extra, "trainer.steps=5", "trainer.log_every=5"], device))
    assert checkpoint(tmp_path / "run")["step"] == 5
    assert reads == []


@pytest.mark.parametrize(
    "name,local_rank,expected",
    [("cuda", None, "cuda:0"), ("auto", None, "cuda:0"), ("cuda:1", None, "cuda:1"), ("cuda", 1, "cuda:1")],
)
def test_the_gpu_chosen_is_one_torch_cuda_set_device_accepts(monkeypatch, name, local_rank, expected):
    """On a GPU machine, mimicked: torch.cuda.set_device takes a device only with its
    index (a bare "cuda" is a ValueError there), which every single-process run passes."""
    from torch.cuda._utils import _get_device_index

    from gantrain.engine.runtime import select_device

    chosen = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: chosen.append(_get_device_index(device)))
    assert select_device(name, local_rank) == torch.device(expected)
    assert chosen == [torch.device(expected).index]


@pytest.mark.parametrize("tf32", [True, False])
def test_precision_flags_stay_readable_through_every_torch_api(tf32):
    """Setting torch 2.9's fp32_precision makes the legacy getters raise, and inductor
    calls one of them (get_float32_matmul_precision) when it picks matmul kernels."""
    before = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark
    try:
        Speed(tf32=tf32).configure_backends()
        assert torch.get_float32_matmul_precision() == ("high" if tf32 else "highest")
        assert torch.backends.cuda.matmul.allow_tf32 is tf32 and torch.backends.cudnn.allow_tf32 is tf32
        if hasattr(torch.backends.cuda.matmul, "fp32_precision"):
            assert torch.backends.cuda.matmul.fp32_precision == ("tf32" if tf32 else "ieee")
    finally:
        torch.set_float32_matmul_precision(before[0])
        torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark = before[1], before[2]


CPU_FAST = ["speed.compile=true", "speed.channels_last=true", "speed.fused_optim=true"]
EAGER = ["speed.compile=false", "speed.channels_last=false", "speed.fused_optim=false"]
# Inductor's fused kernels and the fused Adam sum in other orders than eager PyTorch: the
# float32 rounding differs in the last bits and a GAN amplifies it a little each step.
# Over 6 steps of these tiny nets the losses stayed within 2.4e-7 of eager's when measured
# (torch 2.14.1, 2 Xeon cores); the bound leaves room for other CPUs' vector widths.
LOSS_TOLERANCE = 1e-4


@pytest.mark.slow
def test_the_cpu_fast_path_trains_like_eager_and_resumes_exactly(tmp_path):
    """With inductor itself (the compiler ``auto`` uses on a long CPU run): about 30 s here,
    most of it compiling G and D once; the resumed run reuses inductor's cache."""
    from conftest import events

    base = [*TINY, "trainer.log_every=1", "trainer.checkpoint_every=3"]
    train(tmp_path / "eager", [*base, *EAGER, "trainer.steps=6"])
    train(tmp_path / "fast", [*base, *CPU_FAST, "trainer.steps=6"])
    fast_state = checkpoint(tmp_path / "fast")
    assert fast_state["env"]["fast path"] == "channels_last, compile, fused_optim"
    for tag in ("loss/d", "loss/g"):
        eager = [e.value for e in events(tmp_path / "eager").Scalars(tag)]
        fast = [e.value for e in events(tmp_path / "fast").Scalars(tag)]
        assert len(fast) == len(eager) == 6
        assert max(abs(a - b) for a, b in zip(fast, eager)) < LOSS_TOLERANCE, (tag, fast, eager)

    resumed = tmp_path / "resumed"
    train(resumed, [*base, *CPU_FAST, "trainer.steps=3"])
    train(resumed, [*base, *CPU_FAST, "trainer.steps=6", f"resume={resumed}"])
    resumed_state = checkpoint(resumed)
    assert resumed_state["step"] == 6
    for key, value in fast_state["model"].items():
        assert torch.equal(value, resumed_state["model"][key]), key
    for net in ("g", "d"):
        for slot, state in fast_state["optim"][net]["state"].items():
            for name, value in state.items():
                assert torch.equal(value, resumed_state["optim"][net]["state"][slot][name]), (net, slot, name)
