"""``gantrain-walk RUN``: latent walks between seeds or saved vectors, or from class to class.

* ``--seeds 0,7,3``: from seed 0's z to seed 7's to seed 3's (``--loop`` back to 0);
* ``--z FILE --index 0,4``: between saved latent vectors (gantrain-invert's ``z.pt``);
* ``--classes 3,8 --seeds 0-7``: conditional models, each seed's z held fixed while the
  class vector moves from one class to the next.

Slerp by default (``--method lerp`` for straight lines). Writes ``RUN/walk/<name>/``:
``grid.png`` (a row per segment, or per seed for class walks; also logged to the run's
TensorBoard), ``walk.gif`` (the frames in order, looping) and ``path.pt`` (the z of
every frame).
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from gantrain.errors import UserError
from gantrain.tools.inputs import in_batches, parse_seeds, seeded_z
from gantrain.tools.latent import METHODS, join, load_vectors, save_gif, segments
from gantrain.tools.run import WEIGHTS, ToolOutput, check_class, open_run, tool_main

PROG = "gantrain-walk"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a gantrain run directory, or a checkpoint file in it")
    parser.add_argument("--seeds", help="end points (or, with --classes, the rows), e.g. 0,7,3 or 0-7")
    parser.add_argument("--z", help="a file of saved latent vectors (gantrain-invert's z.pt, or an (N, z_dim) tensor)")
    parser.add_argument("--index", help="which vectors of --z, e.g. 0,4 (default: all, in order)")
    parser.add_argument("--classes", help="conditional models: walk from class to class, e.g. 3,8")
    parser.add_argument("--class", dest="label", type=int, help="conditional models: the class of a z walk")
    parser.add_argument("--steps", type=int, default=8, help="frames per segment, both ends included (default 8)")
    parser.add_argument("--method", choices=METHODS, default="slerp")
    parser.add_argument("--loop", action="store_true", help="walk back to the first end point")
    parser.add_argument("--truncation", type=float, help="truncation threshold for the seeds' z")
    parser.add_argument("--fps", type=float, default=8.0, help="GIF frames per second")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--weights", choices=WEIGHTS, default="auto")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--name", help="output folder name under RUN/walk (default: the time)")
    return parser.parse_args(argv)


def class_path(classes: list[int], num_classes: int, steps: int, loop: bool) -> list[torch.Tensor]:
    """Class-weight rows (T, num_classes) blending each class into the next, one per segment."""
    corners = F.one_hot(torch.tensor(classes), num_classes).float()
    return segments(corners, steps, "lerp", loop)  # the weights must sum to 1: a straight line


def _end_points(run, args: argparse.Namespace) -> torch.Tensor:
    if args.z is not None:
        index = parse_seeds(args.index, "--index") if args.index else None
        return load_vectors(args.z, run.z_dim, index)
    if not args.seeds:
        raise UserError("give the walk's end points: --seeds 0,7 (or --z FILE), or --classes A,B with --seeds")
    return seeded_z(parse_seeds(args.seeds), run.z_dim, args.truncation)


def z_walk(run, args: argparse.Namespace) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """Frames of a walk through z at a fixed class; the grid has a row per segment."""
    if run.num_classes and args.label is None:
        raise UserError(
            f"{run.run_dir} is conditional: give the walk's class with --class K "
            f"(0..{run.num_classes - 1}), or walk across classes with --classes A,B"
        )
    check_class(run, args.label, PROG)
    parts = segments(_end_points(run, args), args.steps, args.method, args.loop)
    path = join(parts)
    y = None if args.label is None else torch.full((len(path),), args.label)
    images = in_batches(run.G, [path, y], args.batch_size, run.device)
    frames = [image[None] for image in images]
    # Grid rows: segment k is frames k*(steps-1) .. k*(steps-1)+steps-1 (joints repeated).
    rows = torch.cat([images[k * (args.steps - 1) : k * (args.steps - 1) + args.steps] for k in range(len(parts))])
    return frames, rows, path


def class_walk(run, args: argparse.Namespace) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """Frames of every seed's image as the class moves; the grid has a row per seed."""
    if not run.num_classes:
        raise UserError(
            f"--classes walks between classes of a conditional model; {run.run_dir} is "
            f"unconditional: walk between seeds with --seeds A,B"
        )
    classes = parse_seeds(args.classes, "--classes")
    for label in classes:
        check_class(run, label, PROG)
    weights = join(class_path(classes, run.num_classes, args.steps, args.loop))
    z = seeded_z(parse_seeds(args.seeds or "0-7"), run.z_dim, args.truncation)
    frames = [in_batches(run.G, [z, w.expand(len(z), -1)], args.batch_size, run.device) for w in weights]
    rows = torch.stack(frames, 1).flatten(0, 1)  # seed-major: one row per seed
    return frames, rows, weights


def run_walk(args: argparse.Namespace) -> ToolOutput:
    from gantrain.engine.runtime import select_device

    if args.steps < 2 or args.fps <= 0 or args.batch_size < 1:
        raise UserError("--steps must be at least 2, --fps and --batch-size positive")
    run = open_run(args.run, select_device(args.device), args.weights)
    run.require_noise(PROG)
    if args.classes:
        frames, rows, path = class_walk(run, args)
        ncol = len(frames)
        kind = "class"
    else:
        frames, rows, path = z_walk(run, args)
        ncol = args.steps
        kind = args.method
    out = ToolOutput(run, "walk", args.name)
    out.grid("grid", rows, nrow=ncol)
    save_gif(frames, out.file("walk.gif"), args.fps, nrow=len(frames[0]))
    out.tensor("path", {"kind": kind, "path": path, "seeds": args.seeds, "classes": args.classes})
    print(f"{kind} walk: {len(frames)} frames")
    return out


def main(argv: list[str] | None = None) -> None:
    tool_main(PROG, parse, run_walk, argv)


if __name__ == "__main__":
    main()
