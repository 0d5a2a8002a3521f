"""``gantrain-generate RUN``: images from a trained generator, or translations of a folder.

Noise generators (gan, dcgan, cgan, wgan-gp): image k comes from seed k (``--seeds``,
or ``--num N`` for seeds 0..N-1), so any single image can be drawn again alone, and
walked from with ``gantrain-walk``. Conditional generators take ``--class K`` (every
image of class K) or draw the classes in turn. The run's EMA weights are used when it
kept them (``--weights raw`` for the trained G). ``--truncation T`` applies the
truncation trick. pix2pix and CycleGAN translate every image of ``--inputs FOLDER``.

Writes ``RUN/generate/<name>/``: one PNG per image and/or ``grid.png`` (also logged to
the run's TensorBoard), and ``images.csv`` saying which seed and class made each file.
"""

from __future__ import annotations

import argparse

import torch

from gantrain.errors import UserError
from gantrain.tools.inputs import class_labels, in_batches, parse_seeds, read_image_folder, seeded_z
from gantrain.tools.run import WEIGHTS, ToolOutput, check_class, open_run, tool_main

PROG = "gantrain-generate"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a gantrain run directory, or a checkpoint file in it")
    parser.add_argument("--num", type=int, default=64, help="images from seeds 0..N-1 (default 64)")
    parser.add_argument("--seeds", help="explicit seeds, e.g. 0-15 or 3,5,9 (instead of --num)")
    parser.add_argument("--class", dest="label", type=int, help="conditional models: the class of every image")
    parser.add_argument("--truncation", type=float, help="redraw z values beyond +-T (e.g. 0.7); off by default")
    parser.add_argument(
        "--output",
        choices=["png", "grid", "both"],
        default="both",
        help="one PNG per image, one grid, or both (default)",
    )
    parser.add_argument("--nrow", type=int, help="images per grid row (default: the class count, or 8)")
    parser.add_argument("--inputs", help="pix2pix/CycleGAN: a folder of images to translate")
    parser.add_argument("--direction", choices=["AB", "BA"], default="AB", help="CycleGAN: which generator")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--weights",
        choices=WEIGHTS,
        default="auto",
        help="ema: the averaged G, raw: the trained G, auto: EMA when the run kept one",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--name", help="output folder name under RUN/generate (default: the time)")
    return parser.parse_args(argv)


def generate_images(
    run, seeds: list[int], label: int | None = None, truncation: float | None = None, batch_size: int = 64
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """G's images (in [-1, 1], on the CPU) for these seeds, and their classes."""
    z = seeded_z(seeds, run.z_dim, truncation)
    y = class_labels(run.num_classes, len(seeds), label)
    return in_batches(run.G, [z, y], batch_size, run.device), y


def translate_folder(run, folder: str, direction: str, batch_size: int, seed: int = 0):
    """pix2pix's G, or CycleGAN's G_AB / G_BA, over every image in ``folder`` (``seed``:
    the dropout masks of the paper's test mode, so that a second call gives the same)."""
    spec = run.spec
    images, files = read_image_folder(folder, spec["channels"], spec["image_size"])
    # As the run's model.test_mode says (gantrain/test_time.py); older runs: the paper's.
    return images, run.translator(direction, seed)(images, batch_size, run.device), files


def check_args(args: argparse.Namespace) -> None:
    for option, value in (("--num", args.num), ("--batch-size", args.batch_size), ("--nrow", args.nrow)):
        if value is not None and value < 1:
            raise UserError(f"{option} {value}: use a positive number")


def run_generate(args: argparse.Namespace) -> ToolOutput:
    from gantrain.engine.runtime import select_device

    check_args(args)
    run = open_run(args.run, select_device(args.device), args.weights)
    if args.inputs is not None:
        run.require_translation(PROG)
        out = ToolOutput(run, "generate", args.name)
        inputs, outputs, files = translate_folder(run, args.inputs, args.direction, args.batch_size)
        names = [f"{k:05d}_{f.stem}" for k, f in enumerate(files)]
        if args.output in ("png", "both"):
            out.images(outputs, names)
        if args.output in ("grid", "both"):  # input | output pairs
            out.grid("grid", torch.stack([inputs, outputs], 1).flatten(0, 1), nrow=2 * (args.nrow or 4))
        out.table("images", [{"file": f"{n}.png", "input": str(f)} for n, f in zip(names, files)])
        print(f"translated {len(files)} images from {args.inputs}")
        return out
    run.require_noise(PROG)
    check_class(run, args.label, PROG)
    seeds = parse_seeds(args.seeds) if args.seeds else list(range(args.num))
    out = ToolOutput(run, "generate", args.name)
    images, labels = generate_images(run, seeds, args.label, args.truncation, args.batch_size)
    classes = [None] * len(seeds) if labels is None else labels.tolist()
    names = [f"seed{s:06d}" + ("" if y is None else f"_class{y}") for s, y in zip(seeds, classes)]
    if args.output in ("png", "both"):
        out.images(images, names)
    if args.output in ("grid", "both"):
        nrow = args.nrow or (run.num_classes if run.num_classes and args.label is None else 8)
        out.grid("grid", images, nrow=nrow)
    out.table(
        "images",
        [{"file": f"{n}.png", "seed": s, "class": "" if y is None else y} for n, s, y in zip(names, seeds, classes)],
    )
    out.json(
        "settings",
        {"seeds": seeds, "class": args.label, "truncation": args.truncation, "weights": run.weights, "step": run.step},
    )
    print(f"{len(seeds)} images from {run.weights} weights at step {run.step}")
    return out


def main(argv: list[str] | None = None) -> None:
    tool_main(PROG, parse, run_generate, argv)


if __name__ == "__main__":
    main()
