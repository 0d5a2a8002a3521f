"""``gantrain-dissect RUN``: the units of a generator layer, GAN-Dissection style.

After Bau et al., "GAN Dissection: Visualizing and Understanding Generative Adversarial
Networks" (ICLR 2019): each channel ("unit") of one layer of G is upsampled to the image
size and thresholded at its top quantile over a batch of samples (where it fires), and
switched off one at a time on the same z to rank units by their effect on the image, on
D's score and (digit data) on the class a judge classifier sees. ``--ablate``/``--boost``
instead generate ``--seeds`` with chosen units switched off or amplified. The library
part (layers, hooks, masks, ranking) is ``gantrain.tools.units``.
"""

from __future__ import annotations

import argparse
import time

import torch

from gantrain.errors import UserError
from gantrain.tools.dissect_pictures import COLUMNS, ablation_picture, unit_map_picture
from gantrain.tools.inputs import class_labels, parse_seeds, seeded_z
from gantrain.tools.run import GeneratorRun, ToolOutput, check_class, open_run, tool_main
from gantrain.tools.units import (
    Layer,
    ablation_effects,
    activations,
    candidate_layers,
    check_units,
    default_layer,
    generate,
    intervene,
    ranking_rows,
    unit_thresholds,
)

PROG = "gantrain-dissect"
DIGIT_DATA = ("mnist", "mnist_sample", "fashion_mnist")
RANKING_ONLY = ("num_samples", "seed", "quantile", "top")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a gantrain run directory, or a checkpoint in it")
    parser.add_argument("--layer", help="the layer to dissect, by module name (default: the middle ReLU)")
    parser.add_argument("--list-layers", action="store_true", help="list the candidate layers and stop")
    parser.add_argument("--num-samples", type=int, help="samples the ranking and the masks use (default 64)")
    parser.add_argument("--quantile", type=float, help="each unit's mask threshold, 0<q<1 (default 0.99: top 1%%)")
    parser.add_argument("--top", type=int, help="units shown in the pictures (default 8)")
    parser.add_argument("--seed", type=int, help="the ranking's samples are seeds SEED.. (default 0)")
    parser.add_argument("--seeds", help="with --ablate/--boost: the samples, e.g. 0-15 (default) or 3,5,9")
    parser.add_argument("--ablate", help="units to switch off, e.g. 3,7 or 0-3")
    parser.add_argument("--boost", help="units to amplify, unit:factor, e.g. 5:3.0,9:2")
    parser.add_argument("--class", dest="label", type=int, metavar="K", help="the class to draw (conditional runs)")
    parser.add_argument("--no-classifier", action="store_true", help="skip the judge's class flip rate")
    parser.add_argument("--cache-dir", help="where judge classifiers are cached (default: the run's eval.cache_dir)")
    parser.add_argument("--weights", default="auto", help="auto (EMA when kept), ema or raw")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--name", help="output folder RUN/dissect/NAME (default: the date and time)")
    parser.add_argument("--batch-size", type=int, default=256, help="images per forward pass (default 256)")
    return parser.parse_args(argv)


# --- options -----------------------------------------------------------------------


def parse_units(text: str, option: str) -> list[int]:
    """``"3,7"`` or ``"0-3,9"`` -> unit indices."""
    try:
        return parse_seeds(text)
    except UserError:
        raise UserError(f"{option} {text!r}: write unit numbers and ranges, e.g. 3,7 or 0-3") from None


def parse_boost(text: str) -> dict[int, float]:
    """``"5:3.0,9:2"`` -> {5: 3.0, 9: 2.0}."""
    boost: dict[int, float] = {}
    for part in text.split(","):
        unit, sep, factor = part.partition(":")
        try:
            if not sep or int(unit) < 0:
                raise ValueError
            boost[int(unit)] = float(factor)
        except ValueError:
            raise UserError(f"--boost {text!r}: write unit:factor pairs, e.g. 5:3.0,9:2") from None
    return boost


def check_options(args: argparse.Namespace) -> None:
    """Everything that needs no run: refused before anything is opened or written."""
    intervening = args.ablate is not None or args.boost is not None
    if intervening:
        given = [f"--{name.replace('_', '-')}" for name in RANKING_ONLY if getattr(args, name) is not None]
        if given:
            raise UserError(
                f"{', '.join(given)}: only for the ranking; with --ablate/--boost pick the samples with --seeds"
            )
    elif args.seeds is not None:
        raise UserError(
            "--seeds picks the samples of --ablate/--boost; the ranking draws --num-samples samples from --seed"
        )
    if args.quantile is not None and not 0 < args.quantile < 1:
        raise UserError(f"--quantile {args.quantile}: use a number between 0 and 1, e.g. 0.99 (each unit's top 1%)")
    for option, value in (("--num-samples", args.num_samples), ("--top", args.top), ("--batch-size", args.batch_size)):
        if value is not None and value < 1:
            raise UserError(f"{option} {value}: use a positive number")


def pick_layer(layers: list[Layer], name: str | None) -> Layer:
    if name is None:
        return default_layer(layers)
    for layer in layers:
        if layer.name == name:
            return layer
    raise UserError(
        f"--layer {name}: not a layer with a feature map; use one of "
        f"{', '.join(layer.name for layer in layers)} (see --list-layers)"
    )


def labels(run: GeneratorRun, n: int, label: int | None) -> torch.Tensor | None:
    """A conditional G's classes, on its device: all ``--class``, else cycling through the classes."""
    y = class_labels(run.num_classes, n, label)
    return None if y is None else y.to(run.device)


def shape_text(layer: Layer) -> str:
    return "x".join(map(str, layer.shape))


# --- D and the judge -------------------------------------------------------------------


def discriminator(run: GeneratorRun):
    """D, or None when the run's checkpoint does not hold it (d_score_change is left blank)."""
    if run.full_state_path is None:
        return None
    try:
        return run.discriminator()
    except UserError:  # only generator.pt: no D to score with
        return None


def digit_data(spec: dict) -> bool:
    return spec.get("name") in DIGIT_DATA or (
        spec.get("num_classes") == 10 and spec.get("channels") == 1 and spec.get("image_size") == 28
    )


def judge(run: GeneratorRun, args: argparse.Namespace):
    """The cached digit classifier of ``gantrain-eval`` (trained on the run's own training
    data the first time), or None when it does not apply or ``--no-classifier``."""
    if args.no_classifier or not digit_data(run.spec):
        return None
    import os
    from pathlib import Path

    from omegaconf import OmegaConf

    from gantrain.build import build_source
    from gantrain.metrics.score import dataset_judge

    cache_dir = (
        args.cache_dir
        or OmegaConf.select(run.config, "eval.cache_dir", default=None)
        or os.environ.get("GANTRAIN_CACHE", str(Path.home() / ".cache" / "gantrain"))
    )
    try:
        source = build_source(run.config)
    except UserError as exc:
        raise UserError(f"{exc} (the judge classifier trains on the run's data; or pass --no-classifier)") from None
    labels = source.class_labels()
    if not source.in_memory or labels is None:
        return None  # not an in-memory labelled source: no judge
    _, _, model = dataset_judge(source, cache_dir)  # the judge `gantrain-eval` scores with
    return model.to(run.device).eval()


# --- the two modes ---------------------------------------------------------------------


@torch.no_grad()
def rank(run: GeneratorRun, layer: Layer, args: argparse.Namespace, output: ToolOutput) -> None:
    n, seed = args.num_samples or 64, args.seed or 0
    quantile, top = args.quantile or 0.99, args.top or 8
    z = seeded_z(list(range(seed, seed + n)), run.z_dim).to(run.device)
    y = labels(run, n, args.label)
    D, classifier = discriminator(run), judge(run, args)
    size = int(run.spec["image_size"])

    h = activations(run.G, layer.name, z, y)
    thresholds = unit_thresholds(h, size, quantile)
    started = time.perf_counter()
    effects = ablation_effects(run.G, layer.name, z, y, D, classifier, args.batch_size)
    seconds = time.perf_counter() - started
    rows = ranking_rows(h, effects)
    units = [row["unit"] for row in rows[:top]]

    images = generate(run.G, z, y)
    output.table("ranking", rows)
    output.grid("unit_maps", unit_map_picture(images, h, units, thresholds), nrow=min(COLUMNS, n))
    output.grid(
        "ablations",
        ablation_picture(run.G, layer, z, y, images, units, effects.output_change),
        nrow=2 * min(COLUMNS, n) + 1,
    )
    output.json(
        "summary",
        {
            **settings(run, layer, args),
            "mode": "ranking",
            "num_samples": n,
            "seed": seed,
            "quantile": quantile,
            "discriminator": D is not None,
            "classifier": classifier is not None,
            "ranking_seconds": round(seconds, 3),
            "top_units": [
                {**{k: None if v == "" else v for k, v in row.items()}, "threshold": float(thresholds[row["unit"]])}
                for row in rows[:top]
            ],
        },
    )
    print(
        f"layer {layer.name} ({layer.kind}, {shape_text(layer)}), {n} samples, ranked in {seconds:.1f}s; "
        f"top units by output change:"
    )
    for row in rows[:top]:
        extra = "" if row["d_score_change"] == "" else f"  D score change {row['d_score_change']:+.3g}"
        extra += "" if row["class_flip_rate"] == "" else f"  class flips {100 * row['class_flip_rate']:.0f}%"
        print(f"  unit {row['unit']:4d}  output change {row['output_change']:.3g}{extra}")


@torch.no_grad()
def edit(run: GeneratorRun, layer: Layer, args: argparse.Namespace, output: ToolOutput) -> None:
    ablate = parse_units(args.ablate, "--ablate") if args.ablate is not None else []
    boost = parse_boost(args.boost) if args.boost is not None else {}
    check_units(ablate, layer, "--ablate")
    check_units(list(boost), layer, "--boost")
    both = sorted(set(ablate) & set(boost))
    if both:
        raise UserError(f"unit {both[0]} is both ablated and boosted: give each unit once")
    seeds = parse_seeds(args.seeds or "0-15")
    z = seeded_z(seeds, run.z_dim).to(run.device)
    y = labels(run, len(seeds), args.label)
    before = generate(run.G, z, y)
    with intervene(run.G, layer.name, ablate=ablate, boost=boost):
        after = generate(run.G, z, y)
    columns = min(8, len(seeds))
    output.grid("before", before, nrow=columns)
    output.grid("after", after, nrow=columns)
    output.grid("before_after", torch.stack([before, after], 1).flatten(0, 1), nrow=2 * min(4, len(seeds)))
    change = float((after - before).abs().mean())
    output.json(
        "summary",
        {
            **settings(run, layer, args),
            "mode": "intervention",
            "seeds": seeds,
            "ablate": ablate,
            "boost": {str(k): v for k, v in boost.items()},
            "mean_output_change": change,
        },
    )
    print(
        f"layer {layer.name}: ablated {ablate or 'none'}, boosted {boost or 'none'}; "
        f"mean |after - before| {change:.3g} over {len(seeds)} samples"
    )


def settings(run: GeneratorRun, layer: Layer, args: argparse.Namespace) -> dict:
    return {
        "run": str(run.run_dir),
        "step": run.step,
        "weights": run.weights,
        "layer": layer.name,
        "layer_type": layer.kind,
        "shape": list(layer.shape),
        "class": args.label,
        "method": "GAN Dissection (Bau et al., ICLR 2019): top-quantile masks, unit ablation",
    }


def run_dissect(args: argparse.Namespace) -> ToolOutput | None:
    from gantrain.engine.runtime import select_device

    check_options(args)
    run = open_run(args.run, select_device(args.device), args.weights)
    run.require_noise(PROG)
    check_class(run, args.label, PROG)
    probe_y = labels(run, 1, args.label)
    layers = candidate_layers(run.G, seeded_z([0], run.z_dim).to(run.device), probe_y, int(run.spec["channels"]))
    if not layers:
        raise UserError(
            f"{PROG} needs a convolutional generator (model=dcgan or cgan): {run.run_dir} holds a "
            f"fully connected one ({type(run.G).__name__}), whose hidden units have no spatial map to "
            f"threshold"
        )
    if args.list_layers:
        for candidate in layers:
            mark = "  (default)" if candidate == default_layer(layers) else ""
            print(f"{candidate.name:16s} {candidate.kind:18s} {shape_text(candidate)}{mark}")
        return None
    layer = pick_layer(layers, args.layer)
    output = ToolOutput(run, "dissect", args.name)
    if args.ablate is not None or args.boost is not None:
        edit(run, layer, args, output)
    else:
        rank(run, layer, args, output)
    return output


def main(argv: list[str] | None = None) -> None:
    tool_main(PROG, parse, run_dissect, argv)


if __name__ == "__main__":
    main()
