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

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from bench import PlainDCGAN  # noqa: E402
from gantrain.build import load_generator, run  # noqa: E402
from gantrain.data.mnist import mnist_sample  # noqa: E402
from gantrain.metrics.evaluate import EvalConfig, GeneratorEvaluator  # noqa: E402

RECIPES = {
    "gantrain dcgan": [],
    "gantrain wgan_gp": ["loss=wgan_gp", "model.discriminator.norm=layer", "trainer.d_steps=5",
                         "optim.g.lr=1e-4", "optim.d.lr=1e-4", "optim.g.betas=[0.0,0.9]", "optim.d.betas=[0.0,0.9]"],
}


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose, initialize_config_dir

    from gantrain.cli import CONF_DIR
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3", job_name="train"):
        return hydra_compose("train", overrides=overrides)


def train_gantrain(run_dir: Path, extra: list[str], args) -> torch.nn.Module:
    overrides = [f"trainer.steps={args.steps}", f"model.generator.width={args.width}",
                 f"model.discriminator.width={args.width}", "model.z_dim=64", "trainer.progress=false",
                 f"trainer.sample_every={args.steps}", f"trainer.checkpoint_every={args.steps}",
                 f"device={args.device}", *extra]
    run(compose(overrides), run_dir, overrides)
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
    evaluator = GeneratorEvaluator(EvalConfig(num_samples=args.num_samples, metrics=["classifier"],
                                              cache_dir=args.cache_dir), source, 64, 0, args.device)
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
