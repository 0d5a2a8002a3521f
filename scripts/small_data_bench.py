"""Small data: what augmentation and fine-tuning buy, measured on real digits.

Two tables, every number the Fréchet distance in the offline judge's feature space
(``classifier_fid``, lower is better; ``gantrain.metrics.judge``) of N samples against N
real images of the FULL bundled MNIST sample (5,000 digits), whatever subset the run
trained on, so that a generator that memorised its few images does not score well:

1. DCGAN trained on ``data.max_images`` = each of ``--sizes`` images (a seeded subset),
   for the same number of steps, with ``augment=none``, ``augment=diffaugment`` and
   ``augment=ada``, over ``--seeds`` (each seed draws its own subset and its own init).
2. Fine-tuning: a source run trained on the 4,000 images of ``split=train``; then, on
   ``--finetune-size`` images of ``split=holdout`` (images the source never saw), runs of
   ``--finetune-steps`` steps started from the source (``init_from``), with and without
   Freeze-D, against training from scratch for the same steps.

    python scripts/small_data_bench.py                     # the README's table (about an hour on 2 cores)
    python scripts/small_data_bench.py --sizes 100 --seeds 0 --steps 300   # a quick look

``--ada-kimg``: ADA's speed (``augment.kimg``; the paper's 500 suits runs of millions of
images: over this benchmark's ~130k images p could rise to 0.26 at most, so the short
runs use a faster one, and the table says which).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _checkout  # noqa: E402,F401  (the installed gantrain, else this checkout's)

from gantrain.build import run  # noqa: E402
from gantrain.config import compose_config  # noqa: E402
from gantrain.data.mnist import mnist_sample  # noqa: E402
from gantrain.metrics.evaluate import EvalConfig, GeneratorEvaluator  # noqa: E402
from gantrain.trained import load_generator  # noqa: E402


def train(run_dir: Path, overrides: list[str], args) -> Path:
    common = [
        f"model.generator.width={args.width}",
        f"model.discriminator.width={args.width}",
        "trainer.progress=false",
        f"device={args.device}",
        "trainer.checkpoint_every=100000",
        "trainer.sample_every=100000",
    ]
    every = [*common, *overrides]
    run(compose_config(every), run_dir, every)
    return run_dir


FLOOR: list[float] = []  # the real-vs-real distance at the same N, from the evaluations


def score(evaluator: GeneratorEvaluator, run_dir: Path, device: str) -> float:
    report = evaluator(load_generator(run_dir, device)[0])
    FLOOR.append(report["floor"]["classifier_fid"])
    return report["metrics"]["classifier_fid"]


def ada_overrides(args) -> list[str]:
    return [f"augment.kimg={args.ada_kimg}"] + [f"augment.pipeline.{op}=0" for op in args.ada_off]


def augmentation_table(evaluator, tmp: Path, args) -> list[tuple[int, str, list[float]]]:
    rows = []
    for size in args.sizes:
        for augment in args.augments:
            extra = [f"augment={augment}"] + (ada_overrides(args) if augment == "ada" else [])
            values = []
            for seed in args.seeds:
                start = time.perf_counter()
                run_dir = train(
                    tmp / f"n{size}_{augment}_s{seed}",
                    [f"data.max_images={size}", f"seed={seed}", f"trainer.steps={args.steps}", *extra],
                    args,
                )
                values.append(score(evaluator, run_dir, args.device))
                print(
                    f"  N={size} augment={augment} seed={seed}: FD {values[-1]:.2f} "
                    f"({(time.perf_counter() - start) / 60:.1f} min)",
                    flush=True,
                )
            rows.append((size, augment, values))
    return rows


def finetune_table(evaluator, tmp: Path, args) -> list[tuple[str, list[float]]]:
    source = train(tmp / "source", ["data.split=train", f"trainer.steps={args.source_steps}"], args)
    print(f"  source (split=train, {args.source_steps} steps): FD {score(evaluator, source, args.device):.2f}")
    target = ["data.split=holdout", f"data.max_images={args.finetune_size}", f"trainer.steps={args.finetune_steps}"]
    ways = {
        "from scratch": [],
        "init_from the source": [f"init_from={source}"],
        "init_from + freeze=1 (Freeze-D)": [f"init_from={source}", "model.discriminator.freeze=1"],
    }
    rows = []
    for name, extra in ways.items():
        values = []
        for seed in args.seeds:
            run_dir = train(tmp / f"ft_{len(rows)}_s{seed}", [*target, f"seed={seed}", *extra], args)
            values.append(score(evaluator, run_dir, args.device))
            print(f"  {name} seed={seed}: FD {values[-1]:.2f}", flush=True)
        rows.append((name, values))
    return rows


def cell(values: list[float]) -> str:
    mean = statistics.fmean(values)
    spread = f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else ""
    return f"{mean:.2f}{spread} ({', '.join(f'{v:.2f}' for v in values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 1000], help="data.max_images of each row")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--steps", type=int, default=2000, help="G steps of every augmentation run")
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--augments", nargs="+", default=["none", "diffaugment", "ada"])
    parser.add_argument("--ada-kimg", type=float, default=500.0, help="augment.kimg (the paper's 500)")
    parser.add_argument(
        "--ada-off",
        nargs="*",
        default=["xflip", "rotate90"],
        help="ADA ops switched off (mirrored digits are no digits)",
    )
    parser.add_argument("--source-steps", type=int, default=2000)
    parser.add_argument("--finetune-size", type=int, default=200)
    parser.add_argument("--finetune-steps", type=int, default=500)
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--skip-finetune", action="store_true")
    parser.add_argument("--skip-augment", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "gantrain"))
    args = parser.parse_args()

    evaluator = GeneratorEvaluator(
        EvalConfig(num_samples=args.num_samples, metrics=["classifier"], cache_dir=args.cache_dir),
        mnist_sample(),  # all 5,000 digits: the reference whatever the run trained on
        64,
        0,
        args.device,
    )
    with tempfile.TemporaryDirectory() as tmp:
        augment_rows = [] if args.skip_augment else augmentation_table(evaluator, Path(tmp), args)
        finetune_rows = [] if args.skip_finetune else finetune_table(evaluator, Path(tmp), args)

    seeds = ", ".join(map(str, args.seeds))
    print(
        f"\nDCGAN width {args.width}, {args.steps} G steps, batch 64, {args.device}; FD by the judge, "
        f"N = {args.num_samples} against the full 5,000; mean ± sd over seeds {seeds} (each value)"
    )
    off = f" without {', '.join(args.ada_off)}" if args.ada_off else ""
    print(f"ADA: augment.kimg={args.ada_kimg:g}, target 0.6, interval 4, the bgc pipeline{off}\n")
    print("| images | augment=none | augment=diffaugment | augment=ada |")
    print("|---:|---|---|---|")
    for size in args.sizes if augment_rows else []:
        by_augment = {augment: values for s, augment, values in augment_rows if s == size}
        cells = [cell(by_augment[a]) if a in by_augment else "" for a in ("none", "diffaugment", "ada")]
        print(f"| {size} | {' | '.join(cells)} |")
    if finetune_rows:
        print(
            f"\nFine-tuning: source {args.source_steps} steps on split=train (4,000 images); then "
            f"{args.finetune_steps} steps on {args.finetune_size} images of split=holdout\n"
        )
        print("| start | FD |")
        print("|---|---|")
        for name, values in finetune_rows:
            print(f"| {name} | {cell(values)} |")
    print(f"\nreal vs real at the same N (the floor): {statistics.fmean(FLOOR):.2f}")


if __name__ == "__main__":
    main()
