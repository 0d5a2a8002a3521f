"""Training throughput: gantrain against plain hand-written PyTorch loops, per workload.

Workloads (gantrain runs the named experiment, with random data in place of the files):

* ``dcgan-28``: ``experiment=dcgan_mnist`` (DCGAN, BCE, 28x28x1, z 64, width 64,
  Adam(2e-4, (0.5, 0.999))): the shape of the default job (``gantrain`` alone).
* ``gan-28``: ``experiment=gan_mnist`` (the MLP GAN: hidden 128, 4 G blocks with
  BatchNorm, 3 D blocks; z 64; G's update on fresh noise, as Algorithm 1).
* ``dcgan-64``: ``experiment=dcgan_celeba`` (DCGAN, BCE, 64x64x3, z 100, width 64,
  Adam(2e-4, (0.5, 0.999))).
* ``wgan_gp-64``: ``experiment=wgan_gp_celeba`` (the same nets with a layer-normalised
  critic, Wasserstein loss + gradient penalty 10, Adam(1e-4, (0, 0.9)), 5 critic steps
  per G step). Images/s count the real images consumed, 5 batches per G step, as
  gantrain's ``images_seen`` does.
* ``pix2pix-256``: ``experiment=pix2pix_facades`` (U-Net G, 70x70 PatchGAN D, BCE + 100
  L1, Adam(2e-4, (0.5, 0.999))). The paper trains with batch 1; here the batch is
  ``--pix2pix-batch-size`` (default: ``--batch-size`` on CUDA, 1 on the CPU).

Data. gantrain reads the 64px workloads from ``data=synthetic`` (random uint8 images
held in memory, converted to [-1, 1] per batch on the device: its real in-memory path).
For pix2pix there is no in-memory paired source, so the script writes A|B pairs in the
layout of ``data=paired_folder`` to a temporary folder and gantrain reads them through
its real path (DataLoader workers, PIL, per-batch conversion on the device). To keep
the decode cost least, the files are uncompressed BMPs at exactly 2S x S (so
``data.load_size`` = ``data.image_size``: no resize and no crop; the flip stays), one
file hard-linked under as many names as the timed run consumes, so a run is one epoch
(no refill of the workers' prefetch queue at an epoch boundary falls into the timed
steps) and the reads come from the page cache. The plain loops get their data already
normalised, in memory on the device: they pay nothing for input.

The plain loops are written the way the references write their training steps, fp32
eager (no compile, no AMP; PyTorch's default precision flags, plus
``cudnn.benchmark = True`` as pytorch/examples sets it), with the same batch and
optimizers:

* dcgan-64: pytorch/examples' ``dcgan/main.py``: D on real, D on detached fakes, G on
  the same fakes, BCE on logits; D is not frozen in G's step, so its weight gradients
  are computed there too (gantrain skips them).
* wgan_gp-64: the loop of the usual PyTorch WGAN-GP ports of Gulrajani et al.: 5 critic
  iterations (fresh real batch and noise each, penalty on random interpolates through
  ``autograd.grad(create_graph=True)``), then D frozen and G's step. G's step reuses the
  last critic iteration's fakes, as pytorch/examples (and gantrain) do, so both sides
  run the same passes.
* pix2pix-256: the training step of the pix2pix reference (``optimize_parameters``):
  G(A), D on (A, G(A)) detached and on (A, B), loss halved, then D frozen and G on
  BCE + 100 L1.

Nets: the plain loops instantiate gantrain's own net classes (DCGANGenerator /
DCGANDiscriminator, UNetGenerator / PatchDiscriminator) and write only the training
step by hand. pytorch/examples' nn.Sequential DCGAN differs from gantrain's in three
biases, and the U-Net's skips are no Sequential at all, so hand-copied nets would be
fragile and prove nothing about the loop; the parameter counts of the trainer's nets
(built from the config) are asserted equal to the plain loop's anyway.

Timing. gantrain is measured through its own trainer (``build_trainer`` + ``fit``): the
script reads ``perf/images_per_sec`` from the run's TensorBoard events, the value of the
last log point, which covers only the timed steps after a warm-up (on CUDA at least 30
steps, so that torch.compile's compilation and cuDNN's autotuning fall in it). The
plain loop runs the same warm-up and timed steps. Rounds alternate plain and gantrain;
the table shows medians, and the ratio is the median of the per-round ratios. gantrain's
speed switches are those ``speed=auto`` picks for a long run on the device: on the CPU
that includes ``torch.compile``, which auto leaves off for runs too short to pay for it
(these timed runs are short, and stand for the steps of a long one). With
``--eager-too`` each round also times gantrain with every switch off (``gantrain eager``).

FLOPs. ``torch.utils.flop_counter.FlopCounterMode`` counts one whole step of the plain
loop (D and G, forward and backward, the penalty's double backward included), divided
by the images the step consumes. Both TFLOP/s columns use this one count (model FLOPs,
as MFU does), so they differ exactly as images/s do. On CUDA the last column is the
fraction of the device's dense bf16 tensor-core peak.

    python scripts/bench.py                              # CPU, and the GPU when there is one
    python scripts/bench.py --device cuda --batch-size 512 --pix2pix-batch-size 64
    python scripts/bench.py --device cpu --steps 3 --rounds 1 --batch-size 8 --image-scale 0.5
    python scripts/bench.py --device cpu --eager-too --markdown        # README's CPU rows
    python scripts/bench.py --device cuda --override speed.compile=false   # an ablation
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import _checkout  # noqa: E402,F401  (the installed gantrain, else this checkout's)
import torch
from torch import nn

from gantrain.config import compose_config  # noqa: E402
from gantrain.nets.dcgan import DCGANDiscriminator, DCGANGenerator  # noqa: E402
from gantrain.nets.mlp import MLPDiscriminator, MLPGenerator  # noqa: E402
from gantrain.nets.patchgan import PatchDiscriminator  # noqa: E402
from gantrain.nets.unet import UNetGenerator  # noqa: E402

Z_DIM = 100  # dcgan_celeba and wgan_gp_celeba
COMPILE_WARMUP = 30  # warm-up steps at least, on CUDA

# Dense (no sparsity) BF16 tensor-core peaks in TFLOP/s, first match on the device name
# wins. The vendor datasheets quote these with 2:4 sparsity, twice the dense figure:
# NVIDIA H100 Tensor Core GPU datasheet (SXM 1,979*, PCIe 1,513*, NVL 1,671* TFLOPS),
# NVIDIA H200 datasheet (SXM 1,979*, NVL 1,671*), NVIDIA A100 datasheet (312, 624*),
# NVIDIA L4 datasheet (242*), NVIDIA Ada Lovelace architecture whitepaper, appendix
# (GeForce RTX 4090: 165.2 BF16 with FP32 accumulate, 330.4*).
BF16_PEAK_TFLOPS = [
    (r"H100.*PCIe", 756.0),
    (r"H100.*NVL", 835.0),
    (r"H100", 989.0),  # SXM5 ("NVIDIA H100 80GB HBM3")
    (r"H200.*NVL", 835.0),
    (r"H200", 989.0),  # SXM (and GH200)
    (r"A100", 312.0),
    (r"\bL4\b", 121.0),
    (r"RTX 4090", 165.0),
]


def bf16_peak_tflops(device_name: str) -> float | None:
    for pattern, peak in BF16_PEAK_TFLOPS:
        if re.search(pattern, device_name):
            return peak
    return None


@dataclass(frozen=True)
class Workload:
    name: str
    kind: str  # dcgan, wgan_gp, pix2pix
    experiment: str
    image_size: int
    lr: float
    betas: tuple[float, float]
    d_steps: int = 1
    channels: int = 3
    z_dim: int = Z_DIM
    cpu_batch: int = 64  # the batch cpu_fast_path.py times it at (the experiment's, or the default job's)
    width: int = 64  # the experiment's base width (dcgan, pix2pix); the MLP's nets have their own

    def size(self, scale: float) -> int:
        return int(round(self.image_size * scale))

    def label(self, scale: float) -> str:
        return f"{self.kind}-{self.size(scale)}"


WORKLOADS = {
    w.name: w
    for w in [
        # The default job's shape (gantrain with no overrides: DCGAN, z 64, 28x28 grey, batch 64).
        Workload("dcgan-28", "dcgan", "dcgan_mnist", 28, 2e-4, (0.5, 0.999), channels=1, z_dim=64),
        Workload("gan-28", "gan", "gan_mnist", 28, 2e-4, (0.5, 0.999), channels=1, z_dim=64),
        Workload("dcgan-64", "dcgan", "dcgan_celeba", 64, 2e-4, (0.5, 0.999)),
        Workload("wgan_gp-64", "wgan_gp", "wgan_gp_celeba", 64, 1e-4, (0.0, 0.9), d_steps=5),
        Workload("pix2pix-256", "pix2pix", "pix2pix_facades", 256, 2e-4, (0.5, 0.999), cpu_batch=1),
    ]
}


def build_nets(workload: Workload, size: int, width: int) -> tuple[nn.Module, nn.Module]:
    """G and D of the workload, gantrain's classes with the experiment's settings."""
    if workload.kind == "pix2pix":
        return (UNetGenerator(3, 3, size, width=width), PatchDiscriminator(6, width=width, layers=3, image_size=size))
    channels, z_dim = workload.channels, workload.z_dim
    if workload.kind == "gan":  # conf/model/gan.yaml's hidden 128, 4 G blocks, 3 D blocks (no width)
        return MLPGenerator(z_dim, channels, size), MLPDiscriminator(channels, size)
    norm = "layer" if workload.kind == "wgan_gp" else "batch"
    return (
        DCGANGenerator(z_dim, channels, size, width=width),
        DCGANDiscriminator(channels, size, width=width, norm=norm),
    )


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


# -- the plain loops --------------------------------------------------------------


class InMemoryImages:
    """Already-normalised images on the device (one tensor, or pix2pix's A and B), handed
    out in shuffled batches."""

    def __init__(self, tensors: tuple[torch.Tensor, ...], batch_size: int) -> None:
        self.tensors, self.batch_size = tensors, batch_size
        self.count, self.device = len(tensors[0]), tensors[0].device
        self.per_epoch = self.count // batch_size
        self.k = 0
        self.order = torch.randperm(self.count, device=self.device)

    def next(self) -> tuple[torch.Tensor, ...]:
        if self.k == self.per_epoch:
            self.order = torch.randperm(self.count, device=self.device)
            self.k = 0
        index = self.order[self.k * self.batch_size : (self.k + 1) * self.batch_size]
        self.k += 1
        return tuple(tensor[index] for tensor in self.tensors)


class PlainLoop:
    images_per_step: int

    def __init__(
        self, workload: Workload, device: torch.device, batch_size: int, width: int, scale: float = 1.0, seed: int = 0
    ) -> None:
        torch.manual_seed(seed)
        self.device, self.batch_size = device, batch_size
        size = workload.size(scale)
        G, D = build_nets(workload, size, width)
        self.G, self.D = G.to(device), D.to(device)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=workload.lr, betas=workload.betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=workload.lr, betas=workload.betas)
        self.images_per_step = batch_size * workload.d_steps
        pix2pix = workload.kind == "pix2pix"
        count = max(8, 2 * batch_size) if pix2pix else max(512, 2 * batch_size)
        self.z_dim, channels = workload.z_dim, workload.channels
        self.data = InMemoryImages(
            tuple(
                torch.rand(count, channels, size, size, device=device).mul_(2).sub_(1)
                for _ in range(2 if pix2pix else 1)
            ),
            batch_size,
        )

    def step(self) -> None:
        raise NotImplementedError


class PlainDCGAN64(PlainLoop):
    """pytorch/examples' dcgan/main.py step (BCE on logits in place of Sigmoid + BCELoss)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.criterion = nn.BCEWithLogitsLoss()
        self.real_label = torch.ones(self.batch_size, device=self.device)
        self.fake_label = torch.zeros(self.batch_size, device=self.device)

    def step(self) -> None:
        G, D, criterion = self.G, self.D, self.criterion
        (real,) = self.data.next()
        D.zero_grad()
        err_d_real = criterion(D(real), self.real_label)
        err_d_real.backward()
        noise = torch.randn(self.batch_size, self.z_dim, device=self.device)
        fake = G(noise)
        err_d_fake = criterion(D(fake.detach()), self.fake_label)
        err_d_fake.backward()
        self.opt_d.step()
        G.zero_grad()
        err_g = criterion(D(fake), self.real_label)
        err_g.backward()
        self.opt_g.step()


class PlainWGANGP64(PlainLoop):
    """WGAN-GP as the common PyTorch ports of Gulrajani et al. write it."""

    critic_iters = 5
    gp_weight = 10.0

    def gradient_penalty(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        alpha = torch.rand(real.shape[0], 1, 1, 1, device=self.device)
        interpolates = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
        scores = self.D(interpolates)
        (gradients,) = torch.autograd.grad(
            scores, interpolates, grad_outputs=torch.ones_like(scores), create_graph=True, retain_graph=True
        )
        return ((gradients.view(gradients.shape[0], -1).norm(2, dim=1) - 1) ** 2).mean()

    def step(self) -> None:
        G, D = self.G, self.D
        for p in D.parameters():
            p.requires_grad_(True)
        for _ in range(self.critic_iters):
            (real,) = self.data.next()
            D.zero_grad()
            fake = G(torch.randn(self.batch_size, self.z_dim, device=self.device))
            d_loss = D(fake.detach()).mean() - D(real).mean()
            if self.gp_weight:
                d_loss = d_loss + self.gp_weight * self.gradient_penalty(real, fake.detach())
            d_loss.backward()
            self.opt_d.step()
        for p in D.parameters():  # to avoid computation
            p.requires_grad_(False)
        G.zero_grad()
        g_loss = -D(fake).mean()
        g_loss.backward()
        self.opt_g.step()


class PlainPix2Pix256(PlainLoop):
    """The pix2pix reference's ``optimize_parameters`` with its vanilla GANLoss."""

    l1_weight = 100.0

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.criterion_gan = nn.BCEWithLogitsLoss()
        self.criterion_l1 = nn.L1Loss()
        self.real_label = torch.tensor(1.0, device=self.device)
        self.fake_label = torch.tensor(0.0, device=self.device)

    def gan_loss(self, prediction: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        target = self.real_label if target_is_real else self.fake_label
        return self.criterion_gan(prediction, target.expand_as(prediction))

    def step(self) -> None:
        G, D = self.G, self.D
        real_a, real_b = self.data.next()
        fake_b = G(real_a)
        for p in D.parameters():
            p.requires_grad_(True)
        self.opt_d.zero_grad()
        loss_d_fake = self.gan_loss(D(torch.cat((real_a, fake_b), 1).detach()), False)
        loss_d_real = self.gan_loss(D(torch.cat((real_a, real_b), 1)), True)
        loss_d = (loss_d_fake + loss_d_real) * 0.5
        loss_d.backward()
        self.opt_d.step()
        for p in D.parameters():
            p.requires_grad_(False)
        self.opt_g.zero_grad()
        loss_g_gan = self.gan_loss(D(torch.cat((real_a, fake_b), 1)), True)
        loss_g_l1 = self.criterion_l1(fake_b, real_b) * self.l1_weight
        loss_g = loss_g_gan + loss_g_l1
        loss_g.backward()
        self.opt_g.step()


class PlainMLPGAN(PlainDCGAN64):
    """Goodfellow et al.'s Algorithm 1 with the non-saturating G loss, as gan_mnist runs it:
    D's step on real and detached fakes, then G's step on a fresh minibatch of noise."""

    def step(self) -> None:
        G, D, criterion = self.G, self.D, self.criterion
        (real,) = self.data.next()
        self.opt_d.zero_grad()
        fake = G(torch.randn(self.batch_size, self.z_dim, device=self.device))
        err_d = criterion(D(real), self.real_label) + criterion(D(fake.detach()), self.fake_label)
        err_d.backward()
        self.opt_d.step()
        for p in D.parameters():
            p.requires_grad_(False)
        self.opt_g.zero_grad()
        err_g = criterion(D(G(torch.randn(self.batch_size, self.z_dim, device=self.device))), self.real_label)
        err_g.backward()
        self.opt_g.step()
        for p in D.parameters():
            p.requires_grad_(True)


PLAIN_LOOPS = {"dcgan": PlainDCGAN64, "gan": PlainMLPGAN, "wgan_gp": PlainWGANGP64, "pix2pix": PlainPix2Pix256}


def make_plain(workload: Workload, device: torch.device, batch_size: int, width: int, scale: float = 1.0) -> PlainLoop:
    return PLAIN_LOOPS[workload.kind](workload, device, batch_size, width, scale)


class _GlobalOnly:
    """Stands in for FlopCounterMode's ModuleTracker: its backward hooks refuse
    ``autograd.grad`` with respect to a leaf (the gradient penalty's interpolates,
    "A leaf node was passed to _will_engine_execute_node"), and only the total is wanted."""

    parents = {"Global"}

    def __enter__(self) -> _GlobalOnly:
        return self

    def __exit__(self, *exc) -> None:
        return None


def flops_per_image(loop: PlainLoop) -> float:
    """FLOPs of one whole training step of the loop, per image it consumes."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _GlobalOnly()
    try:
        with counter:
            loop.step()
    except Exception as exc:  # FlopCounterMode's internals differ between torch releases
        print(
            f"  FLOPs not counted on torch {torch.__version__} ({type(exc).__name__}: {exc}); the FLOP columns say n/a",
            flush=True,
        )
        return math.nan
    return counter.get_total_flops() / loop.images_per_step


def plain_throughput(loop: PlainLoop, warmup: int, steps: int, count_flops: bool = False) -> tuple[float, float | None]:
    """Images/s over ``steps`` after ``warmup`` steps; with ``count_flops`` one more step
    runs first, under the FLOP counter, and its count per image comes back too."""
    flops = flops_per_image(loop) if count_flops else None
    for _ in range(warmup):
        loop.step()
    _sync(loop.device)
    start = time.perf_counter()
    for _ in range(steps):
        loop.step()
    _sync(loop.device)
    return steps * loop.images_per_step / (time.perf_counter() - start), flops


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# PyTorch's process-wide precision and cuDNN flags. gantrain sets them for its runs (its
# speed settings); the plain loop gets PyTorch's defaults back, plus cudnn.benchmark.
# Read and set through the legacy API, as gantrain's speed.py sets them (mixing it with
# torch 2.9's fp32_precision makes the legacy getters raise).
_FLAG_PATHS = [
    (torch.backends.cudnn, "benchmark"),
    (torch.backends.cudnn, "deterministic"),
    (torch.backends.cudnn, "allow_tf32"),
]


def backend_flags() -> dict:
    flags = {"float32_matmul_precision": torch.get_float32_matmul_precision()}
    for owner, name in _FLAG_PATHS:
        try:
            flags[(owner, name)] = getattr(owner, name)
        except (AttributeError, RuntimeError):
            pass
    return flags


def restore_backend_flags(flags: dict) -> None:
    torch.set_float32_matmul_precision(flags["float32_matmul_precision"])
    for key, value in flags.items():
        if isinstance(key, tuple):
            try:
                setattr(key[0], key[1], value)
            except (AttributeError, RuntimeError, ValueError):
                pass


# -- gantrain ---------------------------------------------------------------------


def write_pairs(root: Path, size: int, count: int) -> Path:
    """``root/train/`` with ``count`` names for one random A|B pair (2S x S BMP) and
    ``root/val/`` with one, the layout ``data=paired_folder`` reads."""
    from PIL import Image

    generator = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (size, 2 * size, 3), generator=generator, dtype=torch.uint8)
    (root / "train").mkdir(parents=True)
    (root / "val").mkdir()
    source = root / "val" / "000000.bmp"
    Image.fromarray(pixels.numpy()).save(source)
    for k in range(count):
        target = root / "train" / f"{k:07d}.bmp"
        try:
            os.link(source, target)
        except OSError:  # a file system without hard links
            target.write_bytes(source.read_bytes())
    return root


def gantrain_overrides(
    workload: Workload,
    device: torch.device,
    batch_size: int,
    width: int,
    scale: float,
    warmup: int,
    steps: int,
    data_dir: Path | None,
    workers: int,
) -> list[str]:
    size = workload.size(scale)
    if workload.kind == "pix2pix":
        data = [
            "data=paired_folder",
            f"data.path={data_dir}",
            f"data.image_size={size}",
            f"data.load_size={size}",
            f"data.num_workers={workers}",
        ]
    else:
        data = [
            "data=synthetic",
            f"data.image_size={size}",
            f"data.channels={workload.channels}",
            f"data.size={max(512, 2 * batch_size)}",
        ]
    widths = [] if workload.kind == "gan" else [f"model.generator.width={width}", f"model.discriminator.width={width}"]
    # Log points at the end of the warm-up and every `steps` after it: the last one
    # times the last `steps` steps only.
    return [
        f"experiment={workload.experiment}",
        *data,
        f"device={device}",
        f"data.batch_size={batch_size}",
        *widths,
        f"trainer.steps={warmup + steps}",
        f"trainer.log_every={steps}",
        "trainer.progress=false",
        f"trainer.sample_every={10**9}",
        f"trainer.checkpoint_every={10**9}",
        "trainer.num_samples=1",
    ]


EAGER = [
    f"speed.{name}=false" for name in ("amp", "channels_last", "compile", "fused_optim", "cudnn_benchmark", "tf32")
]


def long_run_speed(device: torch.device, workload: Workload) -> list[str]:
    """The switches ``speed=auto`` picks on ``device`` for the workload's nets in a run long
    enough to compile (on the CPU it compiles only runs of ``CPU_COMPILE_MIN_STEPS``; the
    timed runs here are shorter, and measure the steps of a long run), as overrides."""
    from gantrain.engine.speed import SpeedConfig

    chosen = SpeedConfig().resolve(device, steps=None, convolutional=workload.kind != "gan")
    names = ("amp", "channels_last", "compile", "fused_optim", "cudnn_benchmark", "tf32")
    return [f"speed.{name}={str(getattr(chosen, name)).lower()}" for name in names]


# gantrain's training config with the given overrides, as the CLI composes it (the name
# sync_check.py and ema_bench.py import from here).
compose_train = compose_config


def gantrain_throughput(
    workload: Workload,
    device: torch.device,
    batch_size: int,
    width: int,
    scale: float,
    warmup: int,
    steps: int,
    data_dir: Path | None = None,
    workers: int = 0,
    extra: list[str] = (),
) -> float:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from gantrain.build import build_trainer

    overrides = gantrain_overrides(workload, device, batch_size, width, scale, warmup, steps, data_dir, workers)
    overrides += list(extra)
    cfg = compose_train(overrides)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = build_trainer(cfg, run_dir, overrides)
        check_same_setup(trainer, workload, width, scale)
        trainer.fit()
        trainer.logger.close()
        if trainer.speed.compile and not trainer.compiled:  # the loop fell back to eager, with a warning
            print(
                f"  {workload.name} {device.type}: torch.compile failed, so gantrain's row is eager "
                f"(the warning above says why)",
                flush=True,
            )
        del trainer
        events = EventAccumulator(str(Path(run_dir) / "tb"))
        events.Reload()
        value = events.Scalars("perf/images_per_sec")[-1].value
    _release(device)
    return value


def check_same_setup(trainer, workload: Workload, width: int, scale: float) -> None:
    """The trainer's nets, optimizers and critic steps are the plain loop's."""
    G, D = build_nets(workload, workload.size(scale), width)
    model = trainer.model
    counts = (count_parameters(model.G), count_parameters(model.D))
    assert counts == (count_parameters(G), count_parameters(D)), (
        f"{workload.name}: gantrain's nets have {counts} parameters, the plain loop's "
        f"{(count_parameters(G), count_parameters(D))}"
    )
    assert trainer.cfg.d_steps == workload.d_steps, f"{workload.name}: d_steps {trainer.cfg.d_steps}"
    for optimizer in (trainer.opt_g, trainer.opt_d):
        group = optimizer.param_groups[0]
        assert math.isclose(group["lr"], workload.lr) and tuple(group["betas"]) == workload.betas, (
            f"{workload.name}: optimizer {group['lr']}, {group['betas']}"
        )


def _release(device: torch.device) -> None:
    if "torch._dynamo" in sys.modules:  # every run compiles afresh, as a new training run would
        torch._dynamo.reset()  # first: its caches hold compiled code and the memory that goes with it
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


# -- report -----------------------------------------------------------------------


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_name()} ({torch.get_num_threads()} threads)"


def _number(x: float) -> str:
    """Three significant digits, never in exponent notation."""
    if math.isnan(x):
        return "n/a"
    if x <= 0:
        return "0"
    x = float(f"{x:.3g}")
    return f"{x:.{max(0, 2 - math.floor(math.log10(x)))}f}"


@dataclass
class Row:
    workload: str
    device: str  # cpu / cuda
    device_name: str
    batch: int
    gflop_per_image: float
    plain: float  # images/s, medians
    gantrain: float
    ratio: float
    rounds: list[tuple[float, float, float]]  # plain, gantrain, gantrain eager (NaN: not timed)
    eager: float = math.nan  # gantrain with every speed switch off (--eager-too), images/s

    def tflops(self, images_per_sec: float) -> float:
        return self.gflop_per_image * 1e9 * images_per_sec / 1e12

    def peak_fraction(self, images_per_sec: float) -> str:
        if self.device != "cuda":
            return "n/a"
        peak = bf16_peak_tflops(self.device_name)
        if peak is None:
            return "peak unknown"
        tflops = self.tflops(images_per_sec)
        return "n/a" if math.isnan(tflops) else f"{100 * tflops / peak:.1f}%"

    def cells(self) -> list[str]:
        return [
            self.workload,
            self.device,
            str(self.batch),
            _number(self.gflop_per_image),
            _number(self.plain),
            _number(self.gantrain),
            f"{self.ratio:.2f}x",
            _number(self.eager),
            _number(self.tflops(self.plain)),
            _number(self.tflops(self.gantrain)),
            f"{self.peak_fraction(self.plain)} / {self.peak_fraction(self.gantrain)}",
        ]


HEADERS = [
    "workload",
    "device",
    "batch",
    "GFLOP/img",
    "plain img/s",
    "gantrain img/s",
    "speed-up",
    "gantrain eager img/s",
    "plain TFLOP/s",
    "gantrain TFLOP/s",
    "bf16 peak (plain / gantrain)",
]


def format_table(rows: list[Row]) -> str:
    table = [HEADERS] + [row.cells() for row in rows]
    widths = [max(len(line[k]) for line in table) for k in range(len(HEADERS))]
    return "\n".join(
        "  ".join(cell.rjust(w) if k else cell.ljust(w) for k, (cell, w) in enumerate(zip(line, widths)))
        for line in table
    )


def format_markdown(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "|".join(["---"] + ["---:"] * (len(HEADERS) - 1)) + "|"]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)


def measure(workload: Workload, device: torch.device, batch_size: int, args, data_root: Path) -> Row:
    scale, width = args.image_scale, args.width
    warmup = max(args.warmup if args.warmup is not None else args.steps, COMPILE_WARMUP if device.type == "cuda" else 1)
    warmup = args.steps * math.ceil(warmup / args.steps)  # a log point at the warm-up's end
    data_dir, workers = None, 0
    if workload.kind == "pix2pix":
        workers = (
            args.pix2pix_workers
            if args.pix2pix_workers >= 0
            else (min(8, os.cpu_count() or 1) if device.type == "cuda" else 0)
        )
        data_dir = data_root / f"pairs-{workload.size(scale)}-{batch_size * (warmup + args.steps + 1)}"
        if not data_dir.exists():  # one epoch covers the whole run
            write_pairs(data_dir, workload.size(scale), batch_size * (warmup + args.steps + 1))
    defaults = backend_flags()
    rounds, flops = [], None
    try:  # the next workload's plain loop gets PyTorch's flags back also after an out-of-memory
        for k in range(args.rounds):
            restore_backend_flags(defaults)
            torch.backends.cudnn.benchmark = True  # pytorch/examples' dcgan sets it
            loop = make_plain(workload, device, batch_size, width, scale)
            plain, counted = plain_throughput(loop, warmup, args.steps, count_flops=k == 0)
            flops = counted if counted is not None else flops
            del loop
            _release(device)
            timed = (workload, device, batch_size, width, scale, warmup, args.steps, data_dir, workers)
            chosen = {override.split("=")[0] for override in args.override}  # --override wins
            speed = [o for o in long_run_speed(device, workload) if o.split("=")[0] not in chosen]
            ours = gantrain_throughput(*timed, speed + args.override)
            eager = gantrain_throughput(*timed, EAGER + args.override) if args.eager_too else math.nan
            rounds.append((plain, ours, eager))
            print(
                f"  {workload.label(scale)} {device.type} round {k + 1}: plain {plain:.1f} img/s, "
                f"gantrain {ours:.1f} img/s" + (f", gantrain eager {eager:.1f} img/s" if args.eager_too else ""),
                flush=True,
            )
    finally:
        restore_backend_flags(defaults)
    # Rounds alternate, so slow spells of a shared machine hit both sides.
    return Row(
        workload.label(scale),
        device.type,
        device_name(device),
        batch_size,
        flops / 1e9,
        statistics.median(p for p, _, _ in rounds),
        statistics.median(g for _, g, _ in rounds),
        statistics.median(g / p for p, g, _ in rounds),
        rounds,
        statistics.median(e for _, _, e in rounds),
    )


def default_steps(workload: Workload, device: torch.device) -> int:
    """Timed G steps when --steps is not given: 100 on CUDA; 10 on the CPU, 1 for
    wgan_gp (5 batches each, and the penalty's double backward is slow on CPUs)."""
    if device.type == "cuda":
        return 100
    return 1 if workload.kind == "wgan_gp" else 10


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="auto: the CPU, then the GPU too when there is one",
    )
    parser.add_argument("--workloads", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--pix2pix-batch-size", type=int, default=None, help="default: --batch-size on CUDA, 1 (the paper's) on the CPU"
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="timed G steps per round; default 100 on CUDA, 10 on the CPU (wgan_gp: 1)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="warm-up steps before them (default: as many; on CUDA at least "
        f"{COMPILE_WARMUP}, for torch.compile); rounded up to a multiple of --steps",
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians are reported")
    parser.add_argument("--width", type=int, default=64, help="base width of G and D (the experiments': 64)")
    parser.add_argument(
        "--image-scale",
        type=float,
        default=1.0,
        help="scale the image sides (0.5: dcgan-32, pix2pix-128), for quick runs",
    )
    parser.add_argument(
        "--pix2pix-workers",
        type=int,
        default=-1,
        help="gantrain's DataLoader workers for pix2pix (default: 8 on CUDA, 0 on the CPU)",
    )
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        help="an extra gantrain override, e.g. speed.compile=false (repeatable)",
    )
    parser.add_argument(
        "--eager-too",
        action="store_true",
        help="also time gantrain with every speed switch off (the gantrain eager column)",
    )
    parser.add_argument("--markdown", action="store_true", help="also print the table as Markdown (README)")
    args = parser.parse_args(argv)
    for name in ("batch_size", "pix2pix_batch_size", "steps", "warmup", "rounds", "width"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda, but no CUDA GPU is visible")
    devices = ["cpu", "cuda"] if args.device == "auto" else [args.device]
    devices = [d for d in devices if d == "cpu" or torch.cuda.is_available()]

    names = " | ".join(f"{d}: {device_name(torch.device(d))}" for d in devices)
    print(f"torch {torch.__version__}; {names}")
    print(
        f"width {args.width}, image scale {args.image_scale:g}, {args.rounds} round(s); "
        f"gantrain: its experiment configs, speed as auto picks it for a long run"
        + (f" + {' '.join(args.override)}" if args.override else ""),
        flush=True,
    )
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="gantrain-bench-") as data_root:
        for name in devices:
            device = torch.device(name)
            for workload in (WORKLOADS[w] for w in args.workloads):
                steps = args.steps or default_steps(workload, device)
                batch = args.batch_size
                if workload.kind == "pix2pix":
                    batch = args.pix2pix_batch_size or (args.batch_size if device.type == "cuda" else 1)
                run_args = argparse.Namespace(**{**vars(args), "steps": steps})
                try:
                    rows.append(measure(workload, device, batch, run_args, Path(data_root)))
                except torch.OutOfMemoryError:
                    _release(device)
                    print(
                        f"  {workload.label(args.image_scale)} {device.type}: out of memory at batch {batch}: "
                        f"not measured (a smaller --batch-size or --pix2pix-batch-size fits)",
                        flush=True,
                    )
    print()
    print(format_table(rows))
    for row in rows:
        if row.workload == "dcgan-64" and row.device == "cuda" and row.batch == 64 and args.width == 64:
            print(
                f"target: dcgan-64 on the GPU at batch 64 at 3x the plain loop or more: {row.ratio:.2f}x, "
                f"{'met' if row.ratio >= 3 else 'not met'}"
            )
    if not torch.cuda.is_available():
        print("no CUDA GPU here: GPU rows not measured")
    if args.markdown:
        print()
        print(f"torch {torch.__version__}; {names}")
        print()
        print(format_markdown(rows))
    return rows


if __name__ == "__main__":
    main()
