"""Training throughput: gantrain's DCGAN against a plain hand-written PyTorch loop.

The plain loop is written the way pytorch/examples' ``dcgan/main.py`` writes it
(nn.Sequential nets, BCE, D on real then on detached fakes, G on the same fakes), with
the same architecture (checked: equal parameter counts), batch size, optimizer, and
data: the bundled MNIST sample, already normalised in memory, so the plain loop pays
nothing for its input. gantrain is measured through its own ``perf/images_per_sec``
(what TensorBoard shows), between log points, after a warm-up.

    python scripts/bench.py                  # CPU, and the GPU when there is one
    python scripts/bench.py --device cpu --steps 100 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from gantrain.build import build_trainer  # noqa: E402
from gantrain.data.mnist import mnist_sample  # noqa: E402


def plain_nets(z_dim: int, width: int) -> tuple[nn.Module, nn.Module]:
    """DCGAN for 28x28, pytorch/examples style: 1 -> 3 -> 6 -> 13 -> 28 and back."""
    w = width
    G = nn.Sequential(
        nn.ConvTranspose2d(z_dim, w * 4, 3, 2, 0, bias=False), nn.BatchNorm2d(w * 4), nn.ReLU(True),
        nn.ConvTranspose2d(w * 4, w * 2, 4, 1, 0, bias=False), nn.BatchNorm2d(w * 2), nn.ReLU(True),
        nn.ConvTranspose2d(w * 2, w, 3, 2, 0, bias=False), nn.BatchNorm2d(w), nn.ReLU(True),
        nn.ConvTranspose2d(w, 1, 4, 2, 0), nn.Tanh())
    D = nn.Sequential(
        nn.Conv2d(1, w, 4, 2, 0), nn.LeakyReLU(0.2, True),  # no norm follows: a bias, as gantrain
        nn.Conv2d(w, w * 2, 3, 2, 0, bias=False), nn.BatchNorm2d(w * 2), nn.LeakyReLU(0.2, True),
        nn.Conv2d(w * 2, w * 4, 4, 1, 0, bias=False), nn.BatchNorm2d(w * 4), nn.LeakyReLU(0.2, True),
        nn.Conv2d(w * 4, 1, 3, 2, 0))
    G.apply(weights_init)
    D.apply(weights_init)
    return G, D


def weights_init(m: nn.Module) -> None:
    """pytorch/examples' DCGAN init: conv weights from N(0, 0.02), BatchNorm from N(1, 0.02)."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def assert_same_architecture(G: nn.Module, D: nn.Module, z_dim: int, width: int) -> None:
    from gantrain.nets.dcgan import DCGANDiscriminator, DCGANGenerator

    def count(net: nn.Module) -> int:
        return sum(p.numel() for p in net.parameters())

    ours_g = DCGANGenerator(z_dim, channels=1, image_size=28, width=width)
    ours_d = DCGANDiscriminator(channels=1, image_size=28, width=width)
    assert count(G) == count(ours_g) and count(D) == count(ours_d), "the plain nets differ from gantrain's"


class PlainDCGAN:
    """pytorch/examples' DCGAN training step on the in-memory sample: D on real, D on
    detached fakes, G on the same fakes, BCE-with-logits, Adam(2e-4, (0.5, 0.999))."""

    def __init__(self, device: torch.device, batch_size: int, z_dim: int, width: int, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.device, self.batch_size, self.z_dim = device, batch_size, z_dim
        self.images = mnist_sample().images.to(device).float().div(127.5).sub(1)  # normalised up front
        G, D = plain_nets(z_dim, width)
        self.G, self.D = G.to(device), D.to(device)
        assert_same_architecture(self.G, self.D, z_dim, width)
        self.criterion = nn.BCEWithLogitsLoss()
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.ones = torch.ones(batch_size, device=device)
        self.zeros = torch.zeros(batch_size, device=device)
        self.order = torch.randperm(len(self.images), device=device)
        self.per_epoch = len(self.images) // batch_size

    def step(self, i: int) -> None:
        G, D, criterion, batch_size = self.G, self.D, self.criterion, self.batch_size
        if i % self.per_epoch == 0:
            self.order.copy_(torch.randperm(len(self.images), device=self.device))
        k = i % self.per_epoch
        real = self.images[self.order[k * batch_size:(k + 1) * batch_size]]
        D.zero_grad()
        err_real = criterion(D(real).view(-1), self.ones)
        err_real.backward()
        fake = G(torch.randn(batch_size, self.z_dim, 1, 1, device=self.device))
        err_fake = criterion(D(fake.detach()).view(-1), self.zeros)
        err_fake.backward()
        self.opt_d.step()
        G.zero_grad()
        err_g = criterion(D(fake).view(-1), self.ones)
        err_g.backward()
        self.opt_g.step()


def plain_loop(device: torch.device, batch_size: int, steps: int, z_dim: int, width: int) -> float:
    warmup = steps  # as many as gantrain's warm-up
    plain = PlainDCGAN(device, batch_size, z_dim, width)
    for i in range(warmup):
        plain.step(i)
    _sync(device)
    start = time.perf_counter()
    for i in range(warmup, warmup + steps):
        plain.step(i)
    _sync(device)
    return steps * batch_size / (time.perf_counter() - start)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                        help="auto: the CPU, then the GPU too when there is one")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=100, help="warm-up steps, then as many timed steps, per round")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds; medians are reported")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--z-dim", type=int, default=64)
    args = parser.parse_args()
    devices = [args.device] if args.device != "auto" else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; DCGAN 28x28, width {args.width}, "
          f"z {args.z_dim}, batch {args.batch_size}, {args.steps} timed steps x {args.rounds} rounds")
    print(f"{'device':<28} {'plain img/s':>12} {'gantrain img/s':>15} {'ratio':>7}")
    for name in devices:
        device = torch.device(name)
        plain, ours = [], []
        for _ in range(args.rounds):
            plain.append(plain_loop(device, args.batch_size, args.steps, args.z_dim, args.width))
            ours.append(gantrain_throughput(device, args.batch_size, args.steps, args.z_dim, args.width))
        # Rounds alternate, so slow spells of a shared machine hit both; the ratio is the
        # median of the per-round ratios.
        p, g = statistics.median(plain), statistics.median(ours)
        ratio = statistics.median(b / a for a, b in zip(plain, ours))
        label = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        print(f"{label:<28} {p:>12.0f} {g:>15.0f} {ratio:>7.2f}   rounds: " +
              ", ".join(f"{a:.0f}/{b:.0f}" for a, b in zip(plain, ours)))
    if not torch.cuda.is_available():
        print("no CUDA GPU here: GPU rows not measured")


def gantrain_throughput(device: torch.device, batch_size: int, steps: int, z_dim: int, width: int) -> float:
    from hydra import compose, initialize_config_dir

    from gantrain.cli import CONF_DIR

    # Log points at the end of the warm-up and at the end: the last one times the timed steps.
    overrides = [f"device={device.type}", f"data.batch_size={batch_size}", f"model.z_dim={z_dim}",
                 f"model.generator.width={width}", f"model.discriminator.width={width}",
                 f"trainer.steps={2 * steps}", f"trainer.log_every={steps}", "trainer.progress=false",
                 f"trainer.sample_every={10 ** 9}", f"trainer.checkpoint_every={10 ** 9}"]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3", job_name="bench"):
        cfg = compose("train", overrides=overrides)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = build_trainer(cfg, run_dir, overrides)
        trainer.fit()
        trainer.logger.close()
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        events = EventAccumulator(str(Path(run_dir) / "tb"))
        events.Reload()
        # The last log point covers the timed steps only (after the warm-up's log point).
        return events.Scalars("perf/images_per_sec")[-1].value


if __name__ == "__main__":
    main()
