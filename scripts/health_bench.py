"""Calibration of the health diagnoses: runs made to fail on purpose, and healthy ones.

Every run trains on the bundled MNIST sample (no download) through the ``gantrain`` CLI,
with ``trainer.on_unhealthy=warn`` (the default), and is then examined the way
``gantrain-doctor`` examines it (``gantrain.doctor.examine``: its events and config).
Each failing run is made with one known cause; the healthy runs are gantrain's default
job and every MNIST experiment, on the bundled data, shortened to ``--steps``:

* ``divergence``: the default DCGAN with both learning rates 250x too high (0.05).
* ``d_won``: a D far stronger than G (G width 8 against D's 64, D's rate 5x, two D
  steps per G step).
* ``d_won`` (minimax): the same strong D with the original minimax G loss
  (``loss.variant=minimax``), whose gradient vanishes once D wins (Goodfellow et al.,
  2014, section 3).
* ``d_overfits``: 64 training images (``data.max_images=64``), batch 32, so D sees each
  image hundreds of times.

It prints, per run, the cause made, the causes named (every episode's cause, the first
named first) and the verdict, then the confusion table (cause made x cause named first:
a run that fails one way often goes on to fail others, as a D that overfits then wins)
and the false-alarm count (healthy runs whose verdict is unhealthy). ``--examine DIR``
re-examines the runs an earlier ``--keep DIR`` kept, training nothing (the diagnoses are
computed from the events, so changed rules can be tried on the same runs). The
thresholds are ``gantrain/health/thresholds.py``'s.

    python scripts/health_bench.py                          # the README's table (about 40 minutes on 2 cores)
    python scripts/health_bench.py --only divergence dcgan --steps 600   # a quick look

Run it alone on a small machine: the runs take their time, not their results, from it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _checkout  # noqa: E402,F401  (the installed gantrain, else this checkout's)

from gantrain.doctor import examine  # noqa: E402

HEALTHY = "healthy"
STRONG_D = ["model.generator.width=8", "optim.d.lr=1e-3", "trainer.d_steps=2"]
# name -> (cause made, overrides, steps as a multiple of --steps)
CASES: dict[str, tuple[str, list[str], float]] = {
    "divergence": ("divergence", ["optim.g.lr=0.05", "optim.d.lr=0.05"], 1.0),
    "strong_d": ("d_won", STRONG_D, 1.0),
    "minimax_strong_d": ("d_won", [*STRONG_D, "loss.variant=minimax"], 1.0),
    "tiny_data": ("d_overfits", ["data.max_images=64", "data.batch_size=32"], 2.0),
    "dcgan": (HEALTHY, [], 1.0),
    "lsgan": (HEALTHY, ["loss=lsgan"], 1.0),
    "gan": (HEALTHY, ["experiment=gan_mnist", "data=mnist_sample"], 1.0),
    "dcgan_mnist": (HEALTHY, ["experiment=dcgan_mnist", "data=mnist_sample"], 1.0),
    "cgan": (HEALTHY, ["experiment=cgan_mnist", "data=mnist_sample"], 1.0),
    "acgan": (HEALTHY, ["experiment=acgan_mnist", "data=mnist_sample"], 1.0),
    "sngan": (HEALTHY, ["experiment=sngan_mnist", "data=mnist_sample"], 1.0),
    "wgan_gp": (HEALTHY, ["experiment=wgan_gp_mnist", "data=mnist_sample"], 0.4),
    "wgan": (HEALTHY, ["experiment=wgan_mnist", "data=mnist_sample"], 0.4),
}
CAUSE_ORDER = ("d_won", "mode_collapse", "divergence", "d_overfits", "no_progress")


def train_and_examine(name: str, overrides: list[str], steps: int, root: Path, device: str) -> dict:
    """Train through the real CLI (its own process: the run directory is Hydra's, with its
    .hydra/config.yaml), then examine the run as gantrain-doctor does."""
    run_dir = root / name
    every = [
        *overrides,
        f"trainer.steps={steps}",
        "trainer.progress=false",
        "trainer.sample_every=100000",
        "trainer.checkpoint_every=100000",
        f"device={device}",
        f"hydra.run.dir={run_dir}",
    ]
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "gantrain.cli", *every], capture_output=True, text=True)
    # A non-zero exit: e.g. a NaN the guard stopped at; the doctor judges what was logged.
    stopped = done.stderr.strip().splitlines()[-1] if done.returncode else None
    result = examine(run_dir)
    result["seconds"] = time.perf_counter() - start
    result["stopped"] = stopped
    return result


def named_causes(result: dict) -> list[str]:
    """Every cause an episode named, the first named first (ties: CAUSE_ORDER): a run that
    fails one way often goes on to fail others (a D that overfits then wins)."""
    first = {}
    for episode in result["episodes"]:
        first.setdefault(episode["cause"], episode["start"])
    return sorted(first, key=lambda cause: (first[cause], CAUSE_ORDER.index(cause)))


def confusion(rows: list[tuple[str, str, list[str], bool]]) -> str:
    """Markdown: one row per cause made, one column per cause named first (and 'none')."""
    made_order = ["divergence", "d_won", "d_overfits", HEALTHY]
    columns = [*CAUSE_ORDER, "none"]
    lines = [
        "| made \\ named | " + " | ".join(columns) + " | runs |",
        "|---|" + "---:|" * (len(columns) + 1),
    ]
    for made in made_order:
        mine = [r for r in rows if r[1] == made]
        if not mine:
            continue
        counts = [sum(named[:1] == [cause] for _, _, named, _ in mine) for cause in CAUSE_ORDER]
        counts.append(sum(not named for _, _, named, _ in mine))
        lines.append(f"| {made} | " + " | ".join(str(c) for c in counts) + f" | {len(mine)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1200, help="G steps of a run (scaled per case)")
    parser.add_argument("--only", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--keep", type=Path, default=None, help="keep the runs under this folder")
    parser.add_argument(
        "--examine", type=Path, default=None, help="train nothing: examine the runs an earlier --keep kept there"
    )
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="gantrain-health-") as scratch:
        root = args.keep or Path(scratch)
        for name in args.only:
            made, overrides, scale = CASES[name]
            if args.examine:
                result = {**examine(args.examine / name), "seconds": 0.0, "stopped": None}
            else:
                result = train_and_examine(name, overrides, max(1, round(args.steps * scale)), root, args.device)
            named = named_causes(result)
            rows.append((name, made, named, result["healthy"]))
            print(
                f"{name:18s} made {made:11s} named {', '.join(named) or 'none':24s} verdict {result['verdict']} "
                f"({result['seconds']:.0f} s{'; stopped: ' + result['stopped'] if result['stopped'] else ''})",
                flush=True,
            )
            for episode in result["episodes"]:
                end = "end" if episode["end"] is None else episode["end"]
                print(f"    {episode['start']}-{end} {episode['cause']}: {episode['explanation']}", flush=True)
            if args.keep:
                (root / name / "bench_result.json").write_text(json.dumps(result, indent=1))
    print()
    print(confusion(rows))
    failing = [r for r in rows if r[1] != HEALTHY]
    healthy = [r for r in rows if r[1] == HEALTHY]
    right = sum(named[:1] == [made] for _, made, named, _ in failing)
    false_alarms = sum(not ok for _, _, _, ok in healthy)
    print()
    print(f"failing runs whose first diagnosis is the cause made: {right} of {len(failing)}")
    print(f"false alarms (healthy runs with an unhealthy verdict): {false_alarms} of {len(healthy)}")


if __name__ == "__main__":
    main()
