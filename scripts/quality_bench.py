"""Sample quality for a fixed training budget: gantrain's DCGAN and WGAN-GP beside the
plain pytorch/examples-style DCGAN loop of ``bench.py``, all on the bundled MNIST
sample, all scored by the same offline judge (``gantrain.metrics.judge``): Fréchet
distance in the judge's feature space (lower is better) and the classifier score
(higher is better), with the real-vs-real floor at the same N.

    python scripts/quality_bench.py                   # 1000 G steps each, width 32, N = 1000
    python scripts/quality_bench.py --steps 3000 --width 64 --device cuda
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _checkout  # noqa: E402,F401  (the installed gantrain, else this checkout's)

from gantrain.build import run  # noqa: E402
from gantrain.config import compose_config  # noqa: E402
from gantrain.data.mnist import mnist_sample  # noqa: E402
from gantrain.metrics.evaluate import EvalConfig, GeneratorEvaluator  # noqa: E402
from gantrain.nets.dcgan import DCGANDiscriminator, DCGANGenerator  # noqa: E402
from gantrain.trained import load_generator  # noqa: E402

# -- the plain reference: a 28x28 pytorch/examples-style DCGAN loop (nn.Sequential nets,
# G taking (N, z, 1, 1)), trained on the bundled sample and scored beside gantrain's.


def _count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def plain_nets(z_dim: int, width: int) -> tuple[nn.Module, nn.Module]:
    """DCGAN for 28x28, pytorch/examples style: 1 -> 3 -> 6 -> 13 -> 28 and back."""
    w = width
    G = nn.Sequential(
        nn.ConvTranspose2d(z_dim, w * 4, 3, 2, 0, bias=False),
        nn.BatchNorm2d(w * 4),
        nn.ReLU(True),
        nn.ConvTranspose2d(w * 4, w * 2, 4, 1, 0, bias=False),
        nn.BatchNorm2d(w * 2),
        nn.ReLU(True),
        nn.ConvTranspose2d(w * 2, w, 3, 2, 0, bias=False),
        nn.BatchNorm2d(w),
        nn.ReLU(True),
        nn.ConvTranspose2d(w, 1, 4, 2, 0),
        nn.Tanh(),
    )
    D = nn.Sequential(
        nn.Conv2d(1, w, 4, 2, 0),
        nn.LeakyReLU(0.2, True),  # no norm follows: a bias, as gantrain
        nn.Conv2d(w, w * 2, 3, 2, 0, bias=False),
        nn.BatchNorm2d(w * 2),
        nn.LeakyReLU(0.2, True),
        nn.Conv2d(w * 2, w * 4, 4, 1, 0, bias=False),
        nn.BatchNorm2d(w * 4),
        nn.LeakyReLU(0.2, True),
        nn.Conv2d(w * 4, 1, 3, 2, 0),
    )
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
    ours_g = DCGANGenerator(z_dim, channels=1, image_size=28, width=width)
    ours_d = DCGANDiscriminator(channels=1, image_size=28, width=width)
    assert _count(G) == _count(ours_g) and _count(D) == _count(ours_d), "the plain nets differ from gantrain's"


class PlainDCGAN:
    """pytorch/examples' DCGAN training step on the bundled MNIST sample: D on real, D on
    detached fakes, G on the same fakes, BCE-with-logits, Adam(2e-4, (0.5, 0.999))."""

    def __init__(self, device: torch.device, batch_size: int, z_dim: int, width: int, seed: int = 0) -> None:
        from gantrain.data.mnist import mnist_sample

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
        real = self.images[self.order[k * batch_size : (k + 1) * batch_size]]
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


RECIPES = {
    "gantrain dcgan": [],
    "gantrain wgan_gp": [
        "loss=wgan_gp",
        "model.discriminator.norm=layer",
        "trainer.d_steps=5",
        "optim.g.lr=1e-4",
        "optim.d.lr=1e-4",
        "optim.g.betas=[0.0,0.9]",
        "optim.d.betas=[0.0,0.9]",
    ],
}


def train_gantrain(run_dir: Path, extra: list[str], args) -> torch.nn.Module:
    overrides = [
        f"trainer.steps={args.steps}",
        f"model.generator.width={args.width}",
        f"model.discriminator.width={args.width}",
        "model.z_dim=64",
        "trainer.progress=false",
        f"trainer.sample_every={args.steps}",
        f"trainer.checkpoint_every={args.steps}",
        f"device={args.device}",
        *extra,
    ]
    run(compose_config(overrides), run_dir, overrides)
    return load_generator(run_dir, args.device)[0]


def train_plain(args) -> torch.nn.Module:
    plain = PlainDCGAN(torch.device(args.device), 64, 64, args.width)
    for i in range(args.steps):
        plain.step(i)

    class Unflatten(torch.nn.Module):  # the plain G wants (N, z, 1, 1)
        def __init__(self, G):
            super().__init__()
            self.G = G

        def forward(self, z):
            return self.G(z[:, :, None, None])

    return Unflatten(plain.G)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000, help="generator updates per model")
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "gantrain"))
    args = parser.parse_args()
    source = mnist_sample()
    evaluator = GeneratorEvaluator(
        EvalConfig(num_samples=args.num_samples, metrics=["classifier"], cache_dir=args.cache_dir),
        source,
        64,
        0,
        args.device,
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in ["plain pytorch/examples DCGAN", *RECIPES]:
            start = time.perf_counter()
            if name in RECIPES:
                G = train_gantrain(Path(tmp) / name.replace(" ", "_"), RECIPES[name], args)
            else:
                G = train_plain(args)
            minutes = (time.perf_counter() - start) / 60
            report = evaluator(G)
            rows.append((name, minutes, report["metrics"]))
    floor = report["floor"]
    print(f"MNIST sample, {args.steps} G steps, width {args.width}, N = {args.num_samples}, {args.device}")
    print(f"{'model':<30} {'minutes':>8} {'classifier_fid':>15} {'classifier_score':>17}")
    for name, minutes, metrics in rows:
        print(f"{name:<30} {minutes:8.1f} {metrics['classifier_fid']:15.2f} {metrics['classifier_score']:17.2f}")
    print(f"{'real vs real (floor)':<30} {'':>8} {floor['classifier_fid']:15.2f} {floor['classifier_score']:17.2f}")


if __name__ == "__main__":
    main()
