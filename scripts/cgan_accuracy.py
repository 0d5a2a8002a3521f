"""Does the conditional GAN draw the digit it is asked for?

1. Train gantrain's conditional DCGAN (``model=cgan``) on the bundled MNIST sample's
   ``train`` split (400 real digits per class), through the same code as the CLI.
2. Train a small CNN on the ``holdout`` split (the other 100 per class, never seen by
   the GAN), and report its accuracy on the 4,000 real ``train`` digits as a sanity
   check of the judge.
3. Generate ``--per-class`` digits of every class from the exported generator and
   report how often the classifier labels them as the class asked for (chance: 10%).

    python scripts/cgan_accuracy.py                     # the numbers in the issue note
    python scripts/cgan_accuracy.py --steps 300 --width 16
    python scripts/cgan_accuracy.py --model acgan       # AC-GAN: D predicts the class instead
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import _checkout  # noqa: E402,F401  (the installed gantrain, else this checkout's)
import torch

from gantrain.build import run  # noqa: E402
from gantrain.config import compose_config  # noqa: E402
from gantrain.data.mnist import mnist_sample  # noqa: E402
from gantrain.data.spec import to_unit_range  # noqa: E402
from gantrain.metrics.classifier import accuracy, conditional_accuracy, fit_classifier  # noqa: E402
from gantrain.trained import load_generator  # noqa: E402


def train_cgan(
    run_dir: Path,
    steps: int,
    width: int,
    batch_size: int,
    seed: int,
    device: str,
    extra: list[str],
    model: str = "cgan",
) -> float:
    overrides = [
        f"model={model}",
        "data.split=train",
        f"data.batch_size={batch_size}",
        f"model.generator.width={width}",
        f"model.discriminator.width={width}",
        f"trainer.steps={steps}",
        "trainer.progress=false",
        f"trainer.log_every={max(1, steps // 10)}",
        f"trainer.sample_every={steps}",
        f"trainer.checkpoint_every={steps}",
        f"seed={seed}",
        f"device={device}",
        *extra,
    ]
    start = time.perf_counter()
    run(compose_config(overrides), run_dir, overrides)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cgan", choices=["cgan", "acgan"], help="the conditional model")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--run-dir", type=Path, help="keep the GAN's run here (default: a temporary folder)")
    parser.add_argument("overrides", nargs="*", help="extra gantrain overrides, e.g. trainer.ema_decay=0.99")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = args.run_dir or Path(tmp) / "run"
        seconds = train_cgan(
            run_dir, args.steps, args.width, args.batch_size, args.seed, args.device, args.overrides, args.model
        )
        holdout, train = mnist_sample(split="holdout"), mnist_sample(split="train")
        judge = fit_classifier(to_unit_range(holdout.images), holdout.labels, 10, seed=args.seed)
        real = accuracy(judge, to_unit_range(train.images), train.labels)
        G, _ = load_generator(run_dir)
        per_class = conditional_accuracy(G, judge, 10, args.per_class, seed=args.seed + 1)
    print(
        f"{args.model}: {args.steps} steps, batch {args.batch_size}, width {args.width}, "
        f"{seconds / 60:.1f} min on {args.device} ({torch.get_num_threads()} threads)"
    )
    print(f"classifier accuracy on the 4,000 real train-split digits it never saw: {real:.1%}")
    print(
        f"generated digits recognised as the asked-for class: {per_class.mean():.1%} "
        f"(chance 10%); per class: " + " ".join(f"{k}:{a:.0%}" for k, a in enumerate(per_class.tolist()))
    )


if __name__ == "__main__":
    main()
