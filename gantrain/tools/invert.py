"""``gantrain-invert RUN``: find the z whose G(z) reproduces an image, and use the
generator as an image prior for inpainting, colorization, super-resolution, denoising.

The optimiser is ``inversion.py`` (several random starts per image, the best kept; an
encoder's guess as one start with ``--encoder``); the degradations are ``degrade.py``.
This module reads the images, runs it, and writes the pictures, z and PSNRs.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from gantrain.errors import UserError
from gantrain.tools.degrade import SCALES, TASKS, Inpaint, Reconstruct, make_degradation
from gantrain.tools.inputs import in_batches, read_image_folder, seeded_z
from gantrain.tools.inversion import InversionResult, invert
from gantrain.tools.run import ToolOutput, check_class, open_run, tool_main

PROG = "gantrain-invert"
ENCODER_STEPS = 500


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Find the z whose G(z) reproduces each image "
        "(GAN inversion), and use G as an image prior to restore degraded images.",
    )
    parser.add_argument("run", type=Path, help="a gantrain run directory, or one of its checkpoints")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", type=Path, metavar="FOLDER", help="invert the images in FOLDER")
    source.add_argument("--from-data", type=int, metavar="N", help="N images of the run's own dataset")
    source.add_argument(
        "--from-generator", type=int, metavar="N", help="N generator samples (seeds SEED..SEED+N-1): a known truth"
    )
    parser.add_argument(
        "--class",
        dest="label",
        type=int,
        metavar="K",
        help="the class of --images (or of --from-generator) for a conditional G",
    )
    parser.add_argument("--task", choices=TASKS, default="reconstruct")
    parser.add_argument("--mask", help="inpaint: center (default), random, or a PNG with white = known pixel")
    parser.add_argument("--scale", type=int, choices=SCALES, help="superres: the downscaling factor (default 2)")
    parser.add_argument("--noise-std", type=float, help="denoise: std of the added noise (default 0.2)")
    parser.add_argument("--steps", type=int, default=300, help="Adam steps (default 300)")
    parser.add_argument("--starts", type=int, default=4, help="random starts per image (default 4)")
    parser.add_argument("--lr", type=float, default=0.05, help="Adam's learning rate on z (default 0.05)")
    parser.add_argument(
        "--feature-weight",
        type=float,
        default=0.0,
        help="weight of the distance between D's features (default 0: pixels only)",
    )
    parser.add_argument("--z-reg", type=float, help="weight of mean(z^2) (default 0; 0.01 for denoise)")
    parser.add_argument("--encoder", action="store_true", help="start from a learned encoder's guess too")
    parser.add_argument("--encoder-steps", type=int, help="training steps of the encoder (default 500)")
    parser.add_argument("--seed", type=int, default=0, help="picks the images, the starts, masks and noise")
    parser.add_argument("--weights", default="auto", help="auto (EMA when kept), ema or raw")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--name", help="the output folder RUN/invert/NAME (default: a timestamp)")
    parser.add_argument("--batch-size", type=int, default=64, help="images optimised together (default 64)")
    return parser.parse_args(argv)


def check_args(args: argparse.Namespace) -> None:
    """Every number and option combination, before any work."""
    limits = [
        ("--steps", args.steps, 1),
        ("--starts", args.starts, 1),
        ("--batch-size", args.batch_size, 1),
        ("--encoder-steps", args.encoder_steps, 1),
        ("--from-data", args.from_data, 1),
        ("--from-generator", args.from_generator, 1),
    ]
    for flag, value, low in limits:
        if value is not None and value < low:
            raise UserError(f"{flag} {value}: use a whole number of at least {low}")
    for flag, value, positive in [
        ("--lr", args.lr, True),
        ("--noise-std", args.noise_std, True),
        ("--feature-weight", args.feature_weight, False),
        ("--z-reg", args.z_reg, False),
    ]:
        if value is not None and not (math.isfinite(value) and (value > 0 if positive else value >= 0)):
            raise UserError(f"{flag} {value}: use a {'positive' if positive else 'non-negative'} number")
    for flag, value, task in [
        ("--mask", args.mask, "inpaint"),
        ("--scale", args.scale, "superres"),
        ("--noise-std", args.noise_std, "denoise"),
    ]:
        if value is not None and args.task != task:
            raise UserError(f"{flag} applies to --task {task}, not --task {args.task}: leave it out")
    if args.encoder_steps is not None and not args.encoder:
        raise UserError("--encoder-steps applies with --encoder: add --encoder or leave it out")
    if args.label is not None and args.from_data is not None:
        raise UserError(
            "--class applies to --images and --from-generator; --from-data images keep their "
            "own labels: leave out --class"
        )


def _folder_images(folder: Path, channels: int, image_size: int) -> tuple[torch.Tensor, list[str]]:
    """The image files under ``folder`` (others skipped) as the run's channels and size."""
    images, files = read_image_folder(folder, channels, image_size, option="--images")
    return images, [str(f.relative_to(folder.expanduser())) for f in files]


def _data_images(run, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    from gantrain.build import build_source
    from gantrain.metrics.evaluate import real_images

    source = build_source(run.config)
    if n > source.spec.size:
        raise UserError(f"--from-data {n} is more than the {source.spec.size} images of {source.spec.name}: lower N")
    truth, labels = real_images(source, n, seed)
    if run.num_classes and labels is None:
        raise UserError(
            f"{source.spec.name} has no labels for the conditional generator of {run.run_dir}: "
            f"use --images with --class K, or --from-generator"
        )
    return truth, labels if run.num_classes else None


def load_targets(run, args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor | None, dict]:
    """The clean images (N, C, H, W) in [-1, 1], their labels for a conditional G, and
    where they came from (``what`` for the summary, the rest for z.pt)."""

    spec, classes = run.spec, run.num_classes
    if args.images is not None:
        if classes and args.label is None:
            raise UserError(
                f"{run.run_dir} holds a conditional generator: give the class of the --images "
                f"with --class K (0..{classes - 1})"
            )
        truth, files = _folder_images(args.images, spec["channels"], spec["image_size"])
        labels = torch.full((len(truth),), args.label) if classes else None
        return truth, labels, {"what": f"{len(truth)} images from {args.images}", "files": files}
    if args.from_data is not None:
        truth, labels = _data_images(run, args.from_data, args.seed)
        return truth, labels, {"what": f"{len(truth)} images of {spec['name']} (seed {args.seed})"}
    n = args.from_generator
    seeds = list(range(args.seed, args.seed + n))
    z = seeded_z(seeds, run.z_dim)  # the images gantrain-generate --seeds makes
    labels = None
    if classes:
        labels = torch.full((n,), args.label) if args.label is not None else torch.arange(n) % classes
    truth = in_batches(run.G, [z, labels], args.batch_size, run.device)
    return truth, labels, {"what": f"{n} generator samples (seeds {seeds[0]}-{seeds[-1]})", "z_truth": z}


def encoder_guess(
    run, args: argparse.Namespace, degradation: Reconstruct, targets: torch.Tensor, labels: torch.Tensor | None
) -> tuple[torch.Tensor | None, str]:
    """The encoder's z for what the user holds (the input image, as shown), and whether
    the encoder was ``off``, ``trained`` now or ``cached``."""
    from gantrain.tools.encoder import load_or_train_encoder

    if not args.encoder:
        return None, "off"
    E, cached = load_or_train_encoder(run, args.encoder_steps or ENCODER_STEPS, run.device)
    seen = degradation.show(degradation.apply(targets))
    with torch.no_grad():
        guess = [
            E(
                seen[k : k + args.batch_size].to(run.device),
                None if labels is None else labels[k : k + args.batch_size].to(run.device),
            ).cpu()
            for k in range(0, len(seen), args.batch_size)
        ]
    return torch.cat(guess), "cached" if cached else "trained"


def _psnr(out: torch.Tensor, target: torch.Tensor) -> list[float]:
    from gantrain.metrics.paired import paired_sums

    return [paired_sums(out[k : k + 1], target[k : k + 1])["psnr"] for k in range(len(out))]


def _masked_psnr(out: torch.Tensor, target: torch.Tensor, unknown: torch.Tensor) -> list[float]:
    """PSNR over the unknown pixels only (images mapped to [0, 1], as in paired.py)."""
    from torchmetrics.functional.image import peak_signal_noise_ratio

    out, target = (out.clamp(-1, 1) + 1) / 2, (target + 1) / 2
    return [
        peak_signal_noise_ratio(o[m], t[m], data_range=1.0).item()
        for o, t, m in zip(out, target, unknown.expand_as(out))
    ]


def scores(truth: torch.Tensor, seen: torch.Tensor, result: InversionResult, degradation: Reconstruct) -> list[dict]:
    """One row per image. The input's PSNR is left empty for plain reconstruction, where
    the input is the truth."""
    columns = {
        "psnr_input": None if degradation.task == "reconstruct" else _psnr(seen, truth),
        "psnr_reconstruction": _psnr(result.images, truth),
    }
    if isinstance(degradation, Inpaint):
        unknown = degradation.unknown
        columns["psnr_masked_input"] = _masked_psnr(seen, truth, unknown)
        columns["psnr_masked_reconstruction"] = _masked_psnr(result.images, truth, unknown)
    rows = []
    for k in range(len(truth)):
        row = {"index": k, **{key: "" if value is None else round(value[k], 4) for key, value in columns.items()}}
        rows.append({**row, "start": int(result.start[k]), "loss": float(f"{float(result.loss[k]):.6g}")})
    return rows


def _mean(rows: list[dict], key: str) -> float | None:
    values = [row[key] for row in rows if row[key] != ""]
    mean = sum(values) / len(values) if values else math.nan
    return round(mean, 4) if math.isfinite(mean) else None  # JSON has no inf


def report(
    output,
    args: argparse.Namespace,
    truth: torch.Tensor,
    targets: torch.Tensor,
    labels: torch.Tensor | None,
    degradation: Reconstruct,
    result: InversionResult,
    origin: dict,
    settings: dict,
    init_z: torch.Tensor | None,
) -> None:
    """The pictures, z.pt, scores.csv and summary.json; a two-line summary on stdout."""
    seen = degradation.show(degradation.apply(targets)).cpu()  # what the loss saw, at full size
    n = len(truth)
    output.grid("truth", truth, min(n, 8))
    output.grid("input", seen, min(n, 8))
    output.grid("reconstruction", result.images, min(n, 8))
    output.grid("comparison", torch.cat([truth, seen, result.images]), n)  # rows: truth, input, reconstruction
    plain_args = {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()}
    extras = {key: value for key, value in origin.items() if key != "what"}
    output.tensor(
        "z",
        {
            "z": result.z,
            "labels": labels,
            "start": result.start,
            "loss": result.loss,
            "encoder_z": init_z,
            "args": plain_args,
            **extras,
        },
    )
    rows = scores(truth, seen, result, degradation)
    if "files" in origin:  # which file each row is
        rows = [{"index": row["index"], "file": name, **row} for row, name in zip(rows, origin["files"])]
    output.table("scores", rows)
    means = {key: _mean(rows, key) for key in rows[0] if key.startswith("psnr") or key == "loss"}
    run = output.run
    output.json(
        "summary",
        {
            "task": args.task,
            "images": origin["what"],
            "n": n,
            "run": str(run.run_dir),
            "weights": run.weights,
            "step": run.step,
            "mean": means,
            "wins": torch.bincount(result.start, minlength=args.starts).tolist(),
            "settings": {
                "steps": args.steps,
                "starts": args.starts,
                "lr": args.lr,
                "seed": args.seed,
                "feature_weight": args.feature_weight,
                **settings,
            },
        },
    )
    print(
        f"{PROG}: {args.task} of {origin['what']}: {args.steps} steps x {args.starts} starts"
        + (f", encoder {settings['encoder']}" if init_z is not None else "")
    )
    line = f"  mean PSNR: reconstruction {_db(means['psnr_reconstruction'])}"
    if means.get("psnr_input") is not None:
        line += f" (input {_db(means['psnr_input'])})"
    if "psnr_masked_reconstruction" in means:
        line += f"; unknown region {_db(means['psnr_masked_reconstruction'])} (input {_db(means['psnr_masked_input'])})"
    print(line)


def _db(value: float | None) -> str:
    return "inf (exact)" if value is None else f"{value:.2f} dB"


def run_invert(args: argparse.Namespace):
    from gantrain.engine.runtime import select_device

    check_args(args)
    run = open_run(args.run, select_device(args.device), args.weights)
    run.require_noise(PROG)
    check_class(run, args.label, PROG)
    output = ToolOutput(run, "invert", args.name)  # checks --name; the folder comes with the first file
    truth, labels, origin = load_targets(run, args)
    spec = run.spec
    degradation = make_degradation(
        args.task, spec["channels"], spec["image_size"], len(truth), args.seed, args.mask, args.scale, args.noise_std
    )
    z_reg = args.z_reg if args.z_reg is not None else (0.01 if args.task == "denoise" else 0.0)
    D = run.discriminator() if args.feature_weight > 0 else None
    targets = degradation.corrupt(truth)
    init_z, encoder_state = encoder_guess(run, args, degradation, targets, labels)
    result = invert(
        run.G,
        targets,
        labels,
        steps=args.steps,
        starts=args.starts,
        lr=args.lr,
        feature_weight=args.feature_weight,
        D=D,
        z_reg=z_reg,
        degradation=degradation,
        init_z=init_z,
        seed=args.seed,
        batch_size=args.batch_size,
    )
    settings = {"z_reg": z_reg, "encoder": encoder_state, **degradation.settings()}
    if args.encoder:
        settings["encoder_steps"] = args.encoder_steps or ENCODER_STEPS
    report(output, args, truth, targets, labels, degradation, result, origin, settings, init_z)
    return output


def main(argv: list[str] | None = None) -> None:
    tool_main(PROG, parse, run_invert, argv)


if __name__ == "__main__":
    main()
