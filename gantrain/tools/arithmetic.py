"""``gantrain-arithmetic RUN --a ... --b ... --c ...``: vector arithmetic on averaged z.

Radford et al. (2016, DCGAN, section 6.3) found that single z vectors give unstable
arithmetic but the mean z of a few samples that share a concept does not:
mean(smiling woman) - mean(neutral woman) + mean(neutral man) gives smiling men.
Each group is chosen by the user, in one of three ways:

* ``seeds:1,4,7`` (or just ``1,4,7``): samples the user picked from a
  ``gantrain-generate`` folder, by seed;
* ``z:0,3``: rows of a saved file of vectors (``--z``, e.g. gantrain-invert's ``z.pt``);
* ``data:class=7`` or ``data:Smiling=1,Male=0``: real images of the run's dataset with
  that label or those CelebA attributes, inverted into z (gantrain-invert's optimiser).

The result ``a - b + c`` is shown with ``--variations`` neighbours (the result plus
N(0, 0.25^2) noise, as in the paper's figure). Writes ``RUN/arithmetic/<name>/``:
``grid.png`` (rows: a's members and mean | b | c | result and variations; also on the
run's TensorBoard) and ``vectors.pt`` (the three means and the result).
"""

from __future__ import annotations

import argparse

import torch

from gantrain.errors import UserError
from gantrain.tools.inputs import in_batches, parse_seeds, seeded_z
from gantrain.tools.latent import load_vectors
from gantrain.tools.run import WEIGHTS, ToolOutput, check_class, open_run, tool_main

PROG = "gantrain-arithmetic"
GROUPS = ("a", "b", "c")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a gantrain run directory, or a checkpoint file in it")
    for group in GROUPS:
        parser.add_argument(
            f"--{group}", required=True, help="seeds:1,4,7 | z:0,3 | data:class=7 | data:Smiling=1,Male=0"
        )
    parser.add_argument("--z", help="the file of latent vectors that z: groups index")
    parser.add_argument("--per-group", type=int, default=4, help="real images per data: group (default 4)")
    parser.add_argument("--invert-steps", type=int, default=300, help="optimiser steps per data: group")
    parser.add_argument("--variations", type=int, default=7, help="noisy neighbours of the result to show")
    parser.add_argument("--noise", type=float, default=0.25, help="std of the variations' noise")
    parser.add_argument("--class", dest="label", type=int, help="conditional models: the class to render")
    parser.add_argument("--seed", type=int, default=0, help="picks the real images and the variations")
    parser.add_argument("--weights", choices=WEIGHTS, default="auto")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--name", help="output folder name under RUN/arithmetic (default: the time)")
    return parser.parse_args(argv)


def parse_conditions(text: str) -> dict[str, int]:
    """``class=7`` or ``Smiling=1,Male=0`` -> {name: value}."""
    conditions = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        if not sep or not name.strip() or value.strip() not in {str(k) for k in range(1000)}:
            raise UserError(f"data:{text}: write name=value pairs, e.g. data:class=7 or data:Smiling=1,Male=0")
        conditions[name.strip()] = int(value)
    return conditions


def matching(source, conditions: dict[str, int]) -> torch.Tensor:
    """Indices of the dataset's images that meet every condition."""
    keep = torch.ones(source.spec.size, dtype=torch.bool)
    for name, value in conditions.items():
        if name in ("class", "label"):
            labels = source.class_labels()
            if labels is None:
                raise UserError(
                    f"data:{name}={value}: {source.spec.name} has no class labels; pick the group by seeds: instead"
                )
            keep &= labels == value
        elif name in source.spec.attribute_names:
            table = source.dataset.attribute_table()
            keep &= table[:, source.spec.attribute_names.index(name)] == value
        else:
            known = ", ".join(("class",) + tuple(source.spec.attribute_names))
            raise UserError(f"data:{name}=...: {source.spec.name} has no {name!r}; use one of {known}")
    return keep.nonzero().flatten()


def real_group(source, conditions: dict[str, int], n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``n`` real images (in [-1, 1]) meeting the conditions, a seeded choice, and their labels."""
    from gantrain.metrics.evaluate import images_at

    index = matching(source, conditions)
    if len(index) < n:
        raise UserError(
            f"only {len(index)} images of {source.spec.name} have {conditions}: lower --per-group or loosen the group"
        )
    return images_at(source, index[torch.randperm(len(index), generator=torch.Generator().manual_seed(seed))[:n]])


def group_vectors(run, spec: str, args: argparse.Namespace, seed: int) -> torch.Tensor:
    """The z of one group's members, (n, z_dim)."""
    kind, sep, rest = spec.partition(":")
    if not sep:  # a bare list of seeds
        kind, rest = "seeds", spec
    if kind == "seeds":
        return seeded_z(parse_seeds(rest), run.z_dim)
    if kind == "z":
        if args.z is None:
            raise UserError(f"group {spec!r} indexes saved vectors: add --z FILE (e.g. gantrain-invert's z.pt)")
        return load_vectors(args.z, run.z_dim, parse_seeds(rest, "z:"))
    if kind == "data":
        from gantrain.build import build_source
        from gantrain.tools.inversion import invert

        source = build_source(run.config)
        images, labels = real_group(source, parse_conditions(rest), args.per_group, seed)
        y = labels if run.num_classes else None
        result = invert(
            run.G, images.to(run.device), None if y is None else y.to(run.device), steps=args.invert_steps, seed=seed
        )
        return result.z.cpu()
    raise UserError(f"group {spec!r}: start it with seeds:, z: or data: (e.g. seeds:1,4,7)")


def combine(means: dict[str, torch.Tensor]) -> torch.Tensor:
    return means["a"] - means["b"] + means["c"]


def _row(images: torch.Tensor, width: int) -> torch.Tensor:
    """Pad a row of images with blank (mid-grey) tiles to ``width``."""
    pad = torch.zeros((width - len(images), *images.shape[1:]))
    return torch.cat([images[:width], pad])


def run_arithmetic(args: argparse.Namespace) -> ToolOutput:
    from gantrain.engine.runtime import select_device

    for option, value in (("--per-group", args.per_group), ("--invert-steps", args.invert_steps)):
        if value < 1:
            raise UserError(f"{option} {value}: use a positive number")
    if args.variations < 0 or args.noise < 0:
        raise UserError("--variations and --noise cannot be negative")
    run = open_run(args.run, select_device(args.device), args.weights)
    run.require_noise(PROG)
    if run.num_classes and args.label is None:
        raise UserError(
            f"{run.run_dir} is conditional: give the class to render with --class K (0..{run.num_classes - 1})"
        )
    check_class(run, args.label, PROG)
    members = {g: group_vectors(run, getattr(args, g), args, args.seed + k) for k, g in enumerate(GROUPS)}
    means = {g: z.mean(0) for g, z in members.items()}
    result = combine(means)
    noise = torch.randn(args.variations, run.z_dim, generator=torch.Generator().manual_seed(args.seed))
    shown = {g: torch.cat([z, means[g][None]]) for g, z in members.items()}
    shown["result"] = torch.cat([result[None], result + args.noise * noise])
    width = max(len(z) for z in shown.values())
    rows = []
    for z in shown.values():
        y = None if args.label is None else torch.full((len(z),), args.label)
        rows.append(_row(in_batches(run.G, [z, y], 64, run.device), width))
    out = ToolOutput(run, "arithmetic", args.name)
    out.grid("grid", torch.cat(rows), nrow=width)
    out.tensor("vectors", {"means": means, "result": result, "groups": {g: getattr(args, g) for g in GROUPS}})
    print("rows: a (members, then their mean) | b | c | a - b + c (then its noisy neighbours)")
    return out


def main(argv: list[str] | None = None) -> None:
    tool_main(PROG, parse, run_arithmetic, argv)


if __name__ == "__main__":
    main()
