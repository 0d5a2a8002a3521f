"""No host synchronisation inside a training step, checked on a CUDA GPU.

For each workload of ``bench.py`` (the same experiment configs and data), the script
builds gantrain's trainer on the GPU with its defaults (the fast path on) and trains.
The first ``--warmup`` steps run as usual: torch.compile compiles, cuDNN autotunes and
the loader starts. Then ``--steps`` steps run under
``torch.cuda.set_sync_debug_mode("warn")``, switched on only while a step runs: the
read-back at log steps, every ``trainer.log_every`` steps, is outside a step by design.
Each synchronising call is reported once, with the innermost Python frames that made
it. The exit status is 1 when there was one.

On the CPU nothing synchronises, so the script refuses to run there. The CPU stand-in
is ``tests/test_speed.py::test_a_training_step_never_reads_a_tensor_back_to_the_host``,
which traps gantrain's own host reads of tensors; this script also catches the ones
inside torch.

    python scripts/sync_check.py                      # dcgan-64, wgan_gp-64, pix2pix-256
    python scripts/sync_check.py --workloads dcgan-64 --override speed.compile=false
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import traceback
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _checkout  # noqa: E402,F401  (the installed gantrain, else this checkout's)
from bench import WORKLOADS, compose_train, gantrain_overrides, write_pairs  # noqa: E402

# torch's warning under set_sync_debug_mode("warn"): "called a synchronizing CUDA operation"
SYNC_WARNING = "synchronizing CUDA operation"
FRAMES = 4  # innermost frames shown per call site


class SyncRecorder:
    """While entered, collects torch's synchronisation warnings, each keyed by the Python
    stack that issued it (innermost ``FRAMES`` frames, this file's left out); other
    warnings go on to the usual handler."""

    def __init__(self) -> None:
        self.sites: Counter[str] = Counter()

    def __enter__(self) -> SyncRecorder:
        self._catcher = warnings.catch_warnings()
        self._catcher.__enter__()
        warnings.simplefilter("always")  # every occurrence, not the first per place only
        self._show = warnings.showwarning
        warnings.showwarning = self._record
        return self

    def __exit__(self, *exc) -> None:
        self._catcher.__exit__(*exc)

    def _record(self, message, category, filename, lineno, file=None, line=None) -> None:
        if SYNC_WARNING not in str(message):
            self._show(message, category, filename, lineno, file, line)
            return
        frames = [
            f for f in traceback.extract_stack()[:-1] if f.filename != __file__ and "/warnings.py" not in f.filename
        ]
        self.sites[" <- ".join(f"{_short(f.filename)}:{f.lineno} {f.name}" for f in reversed(frames[-FRAMES:]))] += 1


def _short(filename: str) -> str:
    for marker in ("/site-packages/", "/gantrain/"):
        if marker in filename:
            head = "" if marker == "/site-packages/" else "gantrain/"
            return head + filename.split(marker, 1)[1]
    return filename


def check_steps(trainer, warmup: int, set_mode: Callable[[str], None] = torch.cuda.set_sync_debug_mode) -> None:
    """Turns the sync debug mode on for every step of ``trainer`` after the first ``warmup``
    (and off again after each): the trainer's own step method, wrapped on the instance."""
    update, calls = trainer._update, [0]

    def step(batches):
        calls[0] += 1
        if calls[0] <= warmup:
            return update(batches)
        set_mode("warn")
        try:
            return update(batches)
        finally:
            set_mode("default")

    trainer._update = step


def check_workload(
    name: str,
    batch_size: int,
    warmup: int,
    steps: int,
    overrides: list[str],
    data_root: Path,
    device: str = "cuda",
    set_mode: Callable[[str], None] = torch.cuda.set_sync_debug_mode,
) -> Counter[str]:
    from gantrain.build import build_trainer

    workload = WORKLOADS[name]
    data_dir = None
    if workload.kind == "pix2pix":
        data_dir = write_pairs(data_root / name, workload.size(1.0), (warmup + steps + 2) * batch_size)
    args = gantrain_overrides(
        workload,
        torch.device(device),
        batch_size,
        64,
        1.0,
        warmup,
        steps,
        data_dir,
        workers=4 if workload.kind == "pix2pix" else 0,
    )
    args += ["trainer.ema_decay=0.999", *overrides]  # the EMA's update is part of the step too
    cfg = compose_train(args)
    with tempfile.TemporaryDirectory() as run_dir, SyncRecorder() as recorder:
        trainer = build_trainer(cfg, run_dir, args)
        check_steps(trainer, warmup, set_mode)
        trainer.fit()
        trainer.logger.close()
    return recorder.sites


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=30, help="steps before the check (compile, autotuning)")
    parser.add_argument("--steps", type=int, default=20, help="steps checked")
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        help="an extra gantrain override, e.g. speed.compile=false (repeatable)",
    )
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print(
            "sync_check.py needs a CUDA GPU (none is visible): on the CPU nothing synchronises. The CPU "
            "stand-in is tests/test_speed.py::test_a_training_step_never_reads_a_tensor_back_to_the_host",
            file=sys.stderr,
        )
        return 2
    print(
        f"torch {torch.__version__}; {torch.cuda.get_device_name()}; batch {args.batch_size}, "
        f"{args.warmup} warm-up steps, {args.steps} checked"
        + (f"; {' '.join(args.override)}" if args.override else ""),
        flush=True,
    )
    found = 0
    with tempfile.TemporaryDirectory(prefix="gantrain-sync-") as data_root:
        for name in args.workloads:
            sites = check_workload(name, args.batch_size, args.warmup, args.steps, args.override, Path(data_root))
            found += len(sites)
            print(f"{name}: {sum(sites.values())} synchronising call(s) in {args.steps} steps", flush=True)
            for site, count in sites.most_common():
                print(f"  {count:4d}x {site}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
