"""Which parts of the fast path pay on this CPU: each ``speed`` switch alone, per workload.

For every workload of ``bench.py`` (gantrain's trainer on random data, the experiment's
nets and optimizers) this times gantrain with every switch off (``eager``), then with one
switch on at a time, then with what ``speed=auto`` picks for a long run (``auto``:
``CPU_AUTO`` in ``gantrain/engine/speed.py``), and prints images/s
and the ratio to eager. It also reports what a switch costs up front: the wall time of the
whole ``fit`` beyond what its steps take at the measured rate (for ``compile``: the
compilations, at the first step and where G first samples in eval mode), for the first
round (cold: inductor's on-disk cache may be empty) and the last (warm: the cache
filled by the rounds before).

    python scripts/cpu_fast_path.py                                  # all workloads, all switches
    python scripts/cpu_fast_path.py --workloads dcgan-28 --switches compile --rounds 2

Rounds alternate the configurations, so that slow spells of a shared machine hit all of
them; the table shows medians. Run it alone: two torch processes on a small machine slow
each other far more than any switch changes.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import _checkout  # noqa: F401  (the installed gantrain, else this checkout's)
import torch
from bench import (
    EAGER,
    WORKLOADS,
    _release,
    compose_train,
    default_steps,
    device_name,
    gantrain_overrides,
    long_run_speed,
    write_pairs,
)

SWITCHES = ("channels_last", "compile", "amp", "fused_optim")


def configurations(switches: tuple[str, ...], workload) -> dict[str, list[str]]:
    """Name -> speed overrides: eager, each switch alone, what ``auto`` picks for a long
    run (the timed runs are short; auto would not compile them), and that without compile."""
    configs = {"eager": EAGER}
    for name in switches:
        configs[name] = [o for o in EAGER if not o.startswith(f"speed.{name}=")] + [f"speed.{name}=true"]
    configs["auto"] = long_run_speed(torch.device("cpu"), workload)
    if "speed.compile=true" in configs["auto"]:  # what compiling adds to the rest of auto's choice
        configs["auto, no compile"] = [o for o in configs["auto"] if o != "speed.compile=true"] + [
            "speed.compile=false"
        ]
    return configs


def timed_run(overrides: list[str], warmup: int, steps: int) -> tuple[float, float, str]:
    """(images/s over the timed steps, the seconds ``fit`` took beyond its steps' time at
    that rate, the switches the run resolved to). The extra seconds are mostly compilation:
    in the first step, and again where G first runs in eval mode (the sample grid at the
    end, a new graph for dynamo)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from gantrain.build import build_trainer

    cfg = compose_train(overrides)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = build_trainer(cfg, run_dir, overrides)
        resolved = trainer.speed.summary()
        start = time.perf_counter()
        trainer.fit()
        fit_seconds = time.perf_counter() - start
        trainer.logger.close()
        if trainer.speed.compile and not trainer.compiled:
            resolved += " (compile FAILED: eager)"
        images_per_step = trainer.cfg.d_steps * cfg.data.batch_size
        del trainer
        events = EventAccumulator(str(Path(run_dir) / "tb"))
        events.Reload()
        rates = [s.value for s in events.Scalars("perf/images_per_sec")]
    _release(torch.device("cpu"))
    steady = rates[-1]
    return steady, fit_seconds - (warmup + steps) * images_per_step / steady, resolved


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS))
    parser.add_argument("--switches", nargs="*", choices=SWITCHES, default=list(SWITCHES))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: bench.py's CPU default x2)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up steps, compilation among them (default: 5)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the workload's bench batch")
    args = parser.parse_args(argv)
    device = torch.device("cpu")
    print(f"torch {torch.__version__}; {device_name(device)}", flush=True)
    lines = []
    with tempfile.TemporaryDirectory(prefix="gantrain-cpu-fast-path-") as data_root:
        for workload in (WORKLOADS[name] for name in args.workloads):
            steps = args.steps or 2 * default_steps(workload, device)
            warmup = args.warmup or 5
            batch = args.batch_size or workload.cpu_batch
            data_dir = None
            if workload.kind == "pix2pix":
                data_dir = Path(data_root) / f"pairs-{workload.image_size}"
                if not data_dir.exists():
                    write_pairs(data_dir, workload.image_size, batch * (warmup + steps + 1))
            configs = configurations(tuple(args.switches), workload)
            base = gantrain_overrides(workload, device, batch, workload.width, 1.0, warmup, steps, data_dir, 0)
            results: dict[str, list[tuple[float, float, str]]] = {name: [] for name in configs}
            for k in range(args.rounds):
                for name, speed in configs.items():
                    start = time.perf_counter()
                    result = timed_run(base + speed, warmup, steps)
                    results[name].append(result)
                    print(
                        f"  {workload.name} round {k + 1} {name:13s}: {result[0]:8.1f} img/s, "
                        f"overhead {result[1]:5.1f} s, run {time.perf_counter() - start:5.1f} s "
                        f"[{result[2]}]",
                        flush=True,
                    )
            eager = statistics.median(r[0] for r in results["eager"])
            for name, runs in results.items():
                rate = statistics.median(r[0] for r in runs)
                lines.append(
                    f"| {workload.name} | {batch} | {name} | {rate:.3g} | {rate / eager:.2f}x | "
                    f"{runs[0][1]:.1f} / {runs[-1][1]:.1f} | {runs[-1][2]} |"
                )
    print()
    print("| workload | batch | speed | img/s | vs eager | overhead s (first / last round) | resolved |")
    print("|---|---:|---|---:|---:|---:|---|")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
